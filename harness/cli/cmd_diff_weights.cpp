// `parity diff-weights A B [--json] [--all] [--out DIR]`: tensor-by-tensor comparison across naming
// schemes, each differing tensor with the explanation of its difference (compare/weight_explain.h);
// --out also writes DIR/weight_diff.json, which `parity report DIR` shows next to the localization.
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "harness/cli/command.h"
#include "harness/io/checkpoint.h"
#include "harness/model/gguf_checkpoint.h"
#include "harness/model/inspect.h"
#include "harness/compare/weight_diff.h"
#include "harness/core/atomic_file.h"
#include "harness/core/error.h"

namespace parity::cli {
namespace {

struct DiffWeightsOptions {
  std::string a;
  std::string b;
  bool json = false;
  bool all = false;
  std::string out;
};

CommandRegistrar diff_weights_command("diff-weights", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<DiffWeightsOptions>();
  CLI::App* command = app.add_subcommand(
      "diff-weights",
      "Compare the tensors of two checkpoints (InternLM2 or Llama layout; wqkv compared against "
      "q/k/v; a GGUF file against an HF checkpoint: each tensor against the quantization error of "
      "its stored type). Exit 0 only when every tensor is bitwise equal (or, for GGUF, as expected "
      "for its type) and none is missing or unexpected.");
  command->add_option("A", options->a, "First checkpoint directory or GGUF file (the reference)")->required();
  command->add_option("B", options->b, "Second checkpoint directory or GGUF file")->required();
  command->add_flag("--json", options->json, "Print the report as JSON");
  command->add_flag("--all", options->all, "List bitwise-equal tensors too");
  command->add_option("--out", options->out, "Also write OUT/weight_diff.json");
  command->callback([options, &action] {
    action = [options] {
      // Each side's tensors must agree with its own config first: a checkpoint with wrong shapes
      // is broken whatever the other side holds (the diff compares tensors with each other only).
      for (const std::string* dir : {&options->a, &options->b}) {
        const model::CheckpointSummary summary =
            model::SummarizeCheckpoint(model::OpenCheckpointPath(*dir));
        if (!summary.shape_mismatches.empty()) {
          throw InputError(fmt::format(
              "{}: the tensors disagree with its config.json: {}{} (see `parity inspect {}`)",
              *dir, summary.shape_mismatches.front(),
              summary.shape_mismatches.size() > 1
                  ? fmt::format(", and {} more", summary.shape_mismatches.size() - 1)
                  : "",
              *dir));
        }
      }
      const compare::WeightDiffReport report = compare::DiffWeights(options->a, options->b);
      const nlohmann::json json = compare::WeightDiffToJson(report);
      if (!options->out.empty()) {
        std::filesystem::create_directories(options->out);
        WriteFileAtomic((std::filesystem::path(options->out) / "weight_diff.json").string(),
                        json.dump(2) + "\n");
      }
      if (options->json) {
        PrintJson(json.dump(2));
      } else {
        std::cout << compare::FormatWeightDiff(report, options->all);
      }
      return static_cast<int>(report.consistent() ? kExitOk : kExitDifferent);
    };
  });
});

}  // namespace
}  // namespace parity::cli
