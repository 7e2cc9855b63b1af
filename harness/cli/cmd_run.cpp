// `parity run CASE --out DIR`: runs a comparison case (cases/*.json), writes DIR/summary.json and
// DIR/steps.jsonl, prints the table, and exits 1 when a gate fails.
#include <functional>
#include <memory>
#include <optional>
#include <string>


#include "harness/cli/command.h"
#include "harness/cli/run_output.h"
#include "harness/compare/case.h"
#include "harness/compare/suite.h"
#include "harness/decode/greedy.h"
#include "harness/forward/placement.h"
#include "harness/report/shard.h"

namespace parity::cli {
namespace {

struct RunOptions {
  std::string case_path;
  RunCommandOptions output;
  std::optional<std::string> device;
  std::optional<int64_t> max_new_tokens;
  std::optional<std::string> mode;
  std::optional<std::string> shard;  // "i/N"
  std::optional<std::string> oracle_device;
  std::optional<std::string> devices, devices_a, devices_b;
  std::optional<double> memory_limit_gb;
  std::optional<std::string> cuda_graphs;  // "auto" | "off"
};

int RunCaseCommand(const RunOptions& options) {
  compare::Case c = compare::LoadCase(options.case_path);
  if (options.device) c.device = *options.device;
  if (options.max_new_tokens) c.max_new_tokens = *options.max_new_tokens;
  if (options.mode) c.mode = decode::ParseGreedyMode(*options.mode);
  if (options.oracle_device) c.oracle_device = *options.oracle_device;
  if (options.cuda_graphs) c.cuda_graphs = compare::ParseCudaGraphs(*options.cuda_graphs, "--cuda-graphs");
  // Placements (forward/placement.h): checked here, planned against memory at run time.
  if (options.devices) c.devices_a = c.devices_b = *options.devices;
  if (options.devices_a) c.devices_a = *options.devices_a;
  if (options.devices_b) c.devices_b = *options.devices_b;
  for (const auto& [flag, text] : {std::pair{"--devices-a", c.devices_a}, {"--devices-b", c.devices_b},
                                   {"--oracle-device", c.oracle_device}}) {
    if (!text.empty()) forward::ParsePlacementSpec(text, flag);
  }
  RunCommandOptions output = options.output;
  if (options.memory_limit_gb) {
    output.memory_limit_bytes = static_cast<int64_t>(*options.memory_limit_gb * 1e9);
  }
  std::optional<report::ShardSpec> shard;
  std::function<bool(int64_t)> include_prompt;
  std::function<void()> after_run;
  if (options.shard) {
    shard = report::ParseShard(*options.shard);
    include_prompt = [spec = *shard](int64_t i) { return report::InShard(i, spec); };
    after_run = [&] {
      report::WriteShardInfo(options.output.out, *shard, static_cast<int64_t>(c.prompts.size()));
    };
  }
  return RunAndWrite(c, "run", output, include_prompt, after_run);
}

CommandRegistrar run_command("run", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* command = app.add_subcommand(
      "run",
      "Run a comparison case: lockstep greedy decoding of each pair on each prompt, per-step logit "
      "metrics, first divergence; writes OUT/summary.json and OUT/steps.jsonl (reports/SCHEMA.md). "
      "Exit 0 when every gate passes, 1 when one fails, 2 for bad input");
  command->add_option("CASE", options->case_path, "Case file (cases/*.json)")
      ->required()
      ->check(CLI::ExistingFile);
  AddRunOutputOptions(command, options->output);
  command->add_option("--device", options->device, "Override the case's device: cpu, cuda, cuda:N");
  command->add_option("--max-new-tokens", options->max_new_tokens,
                      "Override the case's max_new_tokens")
      ->check(AtLeastOne());
  command->add_option("--mode", options->mode, "Override the case's mode: free or teacher_forced");
  command->add_option("--oracle-device", options->oracle_device,
                      "Override the case's oracle_device: where the FP64 oracle runs (cpu, cuda, "
                      "cuda:N, or a placement as for --devices)");
  AddPlacementOptions(command, options->devices, options->devices_a, options->devices_b);
  command->add_option("--memory-limit", options->memory_limit_gb,
                      "Plan within this many GB (decimal) per device instead of what it reports "
                      "free; a plan that does not fit is refused with the numbers (exit 2)")
      ->check(CLI::PositiveNumber);
  command->add_option("--cuda-graphs", options->cuda_graphs,
                      "Override the case's cuda_graphs: auto (CUDA graphs of the one-token step "
                      "where the pipelined GPU loop can record them; bitwise Forward's logits) or "
                      "off (Forward eagerly)");
  command->add_option("--shard", options->shard,
                      "Run the slice i/N of the prompts (index % N == i) and record it in "
                      "OUT/shard.json, for `parity merge`");
  command->callback([options, &action] { action = [options] { return RunCaseCommand(*options); }; });
});

}  // namespace
}  // namespace parity::cli
