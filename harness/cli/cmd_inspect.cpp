// `parity inspect DIR [--json]`: what a checkpoint is (architecture, sizes, dtypes, parameter counts
// from the config and from the tensors, files) and whether its tensors agree with the config.
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "harness/cli/command.h"
#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/io/gguf.h"
#include "harness/model/gguf_checkpoint.h"
#include "harness/model/inspect.h"

namespace parity::cli {
namespace {

struct InspectOptions {
  std::string dir;
  bool json = false;
};

// A GGUF file (llama.cpp's format): header, metadata, tensor types, block sizes, bits per weight;
// then, for an architecture Parity reads, the file as a checkpoint (the config its metadata
// describes, parameter counts, the tensors against the architecture's table).
int InspectGguf(const InspectOptions& options) {
  io::GgufFile file = io::GgufFile::Open(options.dir);
  nlohmann::json json = io::SummarizeGguf(file);
  std::string text = io::GgufSummaryText(file);
  std::optional<model::CheckpointSummary> summary;
  try {
    summary = model::SummarizeCheckpoint(model::OpenGgufCheckpoint(options.dir));
    json["checkpoint"] = summary->ToJson();
    text += "as a checkpoint:\n" + summary->ToText();
  } catch (const InputError& e) {
    json["checkpoint_error"] = e.what();
    text += fmt::format("as a checkpoint: not readable by Parity: {}\n", e.what());
  }
  if (options.json) {
    PrintJson(json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
  } else {
    std::cout << text;
  }
  if (summary && !summary->table_agrees()) {
    fmt::print(stderr, "parity: {}: the tensors disagree with the architecture's table ({} missing, "
                       "{} unexpected, {} wrong shape)\n", options.dir, summary->missing.size(),
               summary->unexpected.size(), summary->shape_mismatches.size());
    return kExitDifferent;
  }
  return kExitOk;
}

int RunInspect(const InspectOptions& options) {
  if (std::filesystem::is_regular_file(options.dir)) return InspectGguf(options);
  // A directory with only config.json (the seeds compare configs without weights): sizes and counts.
  model::CheckpointSummary summary =
      model::IsConfigOnly(options.dir) ? model::SummarizeConfigOnly(options.dir)
                                       : model::SummarizeCheckpoint(io::Checkpoint::Open(options.dir));
  if (options.json) {
    PrintJson(summary.ToJson().dump(2));
  } else {
    std::cout << summary.ToText();
  }
  // The description is printed either way; a checkpoint whose tensors disagree with its config
  // (missing, unexpected, wrong shape) is not one Parity can load, and scripts must see that.
  if (!summary.table_agrees()) {
    fmt::print(stderr, "parity: {}: the tensors disagree with config.json ({} missing, {} "
                       "unexpected, {} wrong shape)\n", options.dir, summary.missing.size(),
               summary.unexpected.size(), summary.shape_mismatches.size());
    return kExitDifferent;
  }
  return kExitOk;
}

CommandRegistrar inspect_command("inspect", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<InspectOptions>();
  CLI::App* command = app.add_subcommand(
      "inspect",
      "Describe a checkpoint: architecture, sizes, dtypes, parameter count from config.json and from "
      "the tensors (and whether they agree), tensors, shards and bytes on disk");
  command->add_option("DIR", options->dir,
                      "Checkpoint directory (config.json + safetensors), or a .gguf file")
      ->required()
      ->check(CLI::ExistingPath);
  command->add_flag("--json", options->json, "Print one JSON object instead of text");
  command->callback([options, &action] { action = [options] { return RunInspect(*options); }; });
});

}  // namespace
}  // namespace parity::cli
