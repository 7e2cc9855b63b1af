#include "harness/cli/run_output.h"

#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "harness/cli/command.h"
#include "harness/core/error.h"
#include "harness/core/interrupt.h"
#include "harness/report/report.h"
#include "harness/session/out_dir.h"

namespace parity::cli {

void AddPlacementOptions(CLI::App* command, std::optional<std::string>& devices,
                         std::optional<std::string>& devices_a,
                         std::optional<std::string>& devices_b) {
  command->add_option(
      "--devices", devices,
      "Each side's layers over these devices, planned from their free memory before loading: "
      "cuda:0,cuda:1 (layers in proportion to free memory), cuda:0=20,cuda:1=12 (layer counts), "
      "cuda:0@40GB,cuda:1 (memory caps), auto (the fewest GPUs that hold the model)");
  command->add_option("--devices-a", devices_a, "Side A's placement (as --devices), e.g. cuda:0");
  command->add_option("--devices-b", devices_b, "Side B's placement (as --devices), e.g. cuda:1");
}

void AddRunOutputOptions(CLI::App* command, RunCommandOptions& options) {
  command->add_option("--out", options.out,
                      "Output directory: new, empty, or holding an earlier run of the same case "
                      "(whose files are replaced)")
      ->required();
  command->add_option("--cache-dir", options.cache_dir,
                      "Where converted models are cached (default $PARITY_CACHE, else "
                      "~/.cache/parity; `parity cache clear` empties it)");
  command->add_flag("--replace", options.replace,
                    "Replace a run of another case that OUT holds");
  command->add_flag("--json", options.json,
                    "Print one JSON object (paths written, verdict) instead of the table");
  command->add_flag("--save-traces", options.save_traces,
                    "Write each model side's logit trace (reports/TRACES.md) into OUT/traces/ "
                    "(listed in summary.json \"traces\"); a trace can stand as a side of "
                    "compare/run");
  command->add_flag("--save-kld-base", options.save_kld_base,
                    "Write each model side's logits as a llama.cpp KL-divergence base file "
                    "(llama-perplexity --kl-divergence-base) into OUT/kld-base/; prompts of one "
                    "length P, max_new_tokens >= P - 2");
}

int RunAndWrite(const compare::Case& c, const std::string& command,
                const RunCommandOptions& options,
                std::function<bool(int64_t prompt_index)> include_prompt,
                std::function<void()> after_run) {
  // The output directory is checked first (a file, read-only, foreign files, another case) and
  // claimed only once RunCase has checked the device, the models and the prompts.
  session::CheckRunDirectory(options.out, c.name, options.replace);
  std::optional<session::RunClaim> claim;
  compare::SuiteOptions suite;
  suite.cache_dir = options.cache_dir;
  suite.out_dir = options.out;
  suite.save_traces = options.save_traces;
  suite.save_kld_base = options.save_kld_base;
  suite.memory_limit_bytes = options.memory_limit_bytes;
  suite.claim_output = [&] {
    claim = session::ClaimRunDirectory(options.out, c.name, command, options.replace);
    return claim->run_id;
  };
  suite.include_prompt = std::move(include_prompt);
  compare::RunOutputs outputs;
  try {
    outputs = compare::RunCase(c, suite);
  } catch (const Interrupted&) {
    if (claim) session::FinishRunDirectory(*claim, c.name, command, "interrupted");
    throw;
  } catch (...) {
    if (claim) session::FinishRunDirectory(*claim, c.name, command, "failed");
    throw;
  }
  if (after_run) after_run();
  int exit_code = compare::FinishRun(options.out, outputs, /*print_table=*/!options.json);
  report::ReportPaths paths = report::WriteReports(options.out);
  spdlog::info("wrote {} and {}", paths.markdown, paths.html);
  const bool interrupted = outputs.summary.interrupted;
  session::FinishRunDirectory(*claim, c.name, command, interrupted ? "interrupted" : "finished");
  if (options.json) {
    namespace fs = std::filesystem;
    const fs::path out(options.out);
    nlohmann::ordered_json json = {
        {"command", command},
        {"case", c.name},
        {"run_id", claim->run_id},
        {"out", fs::absolute(out).string()},
        {"summary", (out / "summary.json").string()},
        {"steps", (out / "steps.jsonl").string()},
        {"report_md", paths.markdown},
        {"report_html", paths.html},
        {"runs", outputs.summary.runs.size()},
        {"pass", outputs.summary.verdict.pass},
        {"failures", outputs.summary.verdict.failures.size()},
        {"interrupted", interrupted},
        {"exit_code", exit_code}};
    PrintJson(json.dump(2));
  }
  return exit_code;
}

}  // namespace parity::cli
