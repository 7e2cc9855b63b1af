// `parity inspect DIR [--json]`: what a checkpoint is (architecture, sizes, dtypes, parameter counts
// from the config and from the tensors, files) and whether its tensors agree with the config.
#include <iostream>
#include <memory>

#include "harness/cli/command.h"
#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/model/inspect.h"

namespace parity::cli {
namespace {

struct InspectOptions {
  std::string dir;
  bool json = false;
};

int RunInspect(const InspectOptions& options) {
  // A directory with only config.json (the seeds compare configs without weights): sizes and counts.
  model::CheckpointSummary summary =
      model::IsConfigOnly(options.dir) ? model::SummarizeConfigOnly(options.dir)
                                       : model::SummarizeCheckpoint(io::Checkpoint::Open(options.dir));
  if (options.json) {
    PrintJson(summary.ToJson().dump(2));
  } else {
    std::cout << summary.ToText();
  }
  return kExitOk;
}

CommandRegistrar inspect_command("inspect", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<InspectOptions>();
  CLI::App* command = app.add_subcommand(
      "inspect",
      "Describe a checkpoint: architecture, sizes, dtypes, parameter count from config.json and from "
      "the tensors (and whether they agree), tensors, shards and bytes on disk");
  command->add_option("DIR", options->dir, "Checkpoint directory (config.json + safetensors)")
      ->required()
      ->check(CLI::ExistingDirectory);
  command->add_flag("--json", options->json, "Print one JSON object instead of text");
  command->callback([options, &action] { action = [options] { return RunInspect(*options); }; });
});

}  // namespace
}  // namespace parity::cli
