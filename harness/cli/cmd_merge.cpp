// `parity merge DIR... --out DIR`: combine the outputs of `parity run --shard i/N` into one run
// (summary.json, steps.jsonl, report.md, report.html). Exits like `parity run`: 1 when the merged
// verdict fails.
#include <filesystem>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/cli/command.h"
#include "harness/compare/run_result.h"
#include "harness/core/error.h"
#include "harness/report/merge.h"
#include "harness/report/report.h"
#include "harness/session/out_dir.h"

namespace parity::cli {
namespace {

struct MergeOptions {
  std::vector<std::string> dirs;
  std::string out;
  bool no_report = false;
  bool replace = false;
  bool json = false;
};

int RunMerge(const MergeOptions& options) {
  std::error_code ec;
  for (const std::string& dir : options.dirs) {
    if (std::filesystem::equivalent(dir, options.out, ec)) {
      throw InputError(fmt::format("--out '{}' is one of the shard directories; write the merged "
                                   "run elsewhere", options.out));
    }
  }
  compare::RunOutputs merged = report::MergeShardDirs(options.dirs);
  const std::string& name = merged.summary.case_ref.name;
  const session::RunClaim claim =
      session::ClaimRunDirectory(options.out, name, "merge", options.replace);
  merged.summary.run_id = claim.run_id;
  compare::WriteRunOutputs(options.out, merged);
  const int exit_code = merged.summary.verdict.pass ? kExitOk : kExitDifferent;
  nlohmann::ordered_json json = {{"command", "merge"},
                                 {"case", name},
                                 {"run_id", claim.run_id},
                                 {"shards", options.dirs.size()},
                                 {"out", options.out},
                                 {"runs", merged.summary.runs.size()},
                                 {"pass", merged.summary.verdict.pass},
                                 {"exit_code", exit_code}};
  if (!options.json) {
    fmt::print("merged {} shard(s) of case '{}' into {}: {} run{}, verdict {}\n",
               options.dirs.size(), name, options.out, merged.summary.runs.size(),
               merged.summary.runs.size() == 1 ? "" : "s",
               merged.summary.verdict.pass ? "PASS" : "FAIL");
  }
  if (!options.no_report) {
    report::ReportPaths paths = report::WriteReports(options.out);
    json["report_md"] = paths.markdown;
    json["report_html"] = paths.html;
    if (!options.json) fmt::print("wrote {}\nwrote {}\n", paths.markdown, paths.html);
  }
  session::FinishRunDirectory(claim, name, "merge", "finished");
  if (options.json) PrintJson(json.dump(2));
  return exit_code;
}

CommandRegistrar merge_command("merge", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<MergeOptions>();
  CLI::App* command = app.add_subcommand(
      "merge", "Combine shard outputs (parity run --shard i/N) into one run: summary.json and "
               "steps.jsonl with the verdict recomputed, plus the reports");
  command->add_option("DIR", options->dirs, "Shard output directories")
      ->required()
      ->check(CLI::ExistingDirectory);
  command->add_option("--out", options->out, "Directory for the merged run")->required();
  command->add_flag("--no-report", options->no_report, "Do not write report.md / report.html");
  command->add_flag("--replace", options->replace, "Replace a run of another case that OUT holds");
  command->add_flag("--json", options->json, "Print one JSON object (paths written, verdict)");
  command->callback([options, &action] { action = [options] { return RunMerge(*options); }; });
});

}  // namespace
}  // namespace parity::cli
