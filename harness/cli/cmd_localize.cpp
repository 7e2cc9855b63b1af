// `parity localize A B --prompt TEXT [--chat] [--tokens IDS] [--step N] [--dtype fp32|fp16|bf16]
// [--device cpu] [--json] [--out DIR]`: where, layer by layer, the two models' computations part at
// one decode step, and whether the difference is real (FP64 level) or rounding. See
// harness/diagnose/localize.h for the rule. Exit 0 whatever the verdict (it is a diagnosis, not a
// gate), 2 for bad input.
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

#include "harness/cli/command.h"
#include "harness/core/atomic_file.h"
#include "harness/core/error.h"
#include "harness/diagnose/localize.h"
#include "harness/diagnose/model_source.h"

namespace parity::cli {
namespace {

struct LocalizeArgs {
  std::string a, b;
  diagnose::PromptSpec prompt;
  std::optional<int64_t> step;
  std::string dtype = "fp32";
  std::string device = "cpu";
  int64_t max_new_tokens = 32;
  bool json = false;
  std::string out;
};

int RunLocalize(const LocalizeArgs& args) {
  diagnose::ResolvedPrompt prompt = diagnose::ResolvePrompt(args.prompt, {args.a, args.b});
  diagnose::LocalizeOptions options;
  options.precision = forward::ParsePrecision(args.dtype);
  options.device = c10::Device(args.device);
  options.step = args.step;
  options.max_new_tokens = args.max_new_tokens;
  options.eos_ids = prompt.eos_ids;
  options.token_text = prompt.token_text;
  diagnose::ModelSource a = diagnose::CheckpointSource(args.a);
  diagnose::ModelSource b = diagnose::CheckpointSource(args.b);
  if (a.label == b.label) {
    a.label = "A";
    b.label = "B";
  }
  diagnose::LocalizeResult result = diagnose::Localize(a, b, prompt.tokens, options);
  nlohmann::ordered_json json = diagnose::LocalizeToJson(result);
  if (!args.out.empty()) {
    std::filesystem::create_directories(args.out);
    const std::string path = (std::filesystem::path(args.out) / "localize.json").string();
    WriteFileAtomic(path, json.dump(2) + "\n");
    spdlog::info("wrote {}", path);
  }
  if (args.json) {
    PrintJson(json.dump(2));
  } else {
    std::cout << diagnose::FormatLocalize(result);
  }
  return kExitOk;
}

CommandRegistrar localize_command("localize", [](CLI::App& app, Action& action) {
  auto o = std::make_shared<LocalizeArgs>();
  CLI::App* command = app.add_subcommand(
      "localize",
      "Find the first layer / sub-block where two models' computations part at one decode step "
      "(default: their first greedy divergence), with each model's FP64 run as the oracle: real "
      "difference or rounding");
  command->add_option("A", o->a, "Reference checkpoint directory")->required()->check(CLI::ExistingDirectory);
  command->add_option("B", o->b, "Candidate checkpoint directory")->required()->check(CLI::ExistingDirectory);
  command->add_option("--prompt", o->prompt.text, "Prompt text (tokenized with A's or B's tokenizer.model)");
  command->add_flag("--chat", o->prompt.chat, "Wrap the prompt in the ChatML template");
  command->add_option("--tokens", o->prompt.token_ids, "Prompt as comma-separated token ids");
  command->add_option("--step", o->step,
                      "Decode step to localize (default: the first divergence of a free greedy "
                      "run, or step 0 when they never diverge)");
  command->add_option("--dtype", o->dtype, "fp32, fp16, bf16 or fp64")->capture_default_str();
  command->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
  command->add_option("--max-new-tokens", o->max_new_tokens,
                      "Length of the free run that looks for the first divergence")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_flag("--json", o->json, "Print one JSON object instead of the table");
  command->add_option("--out", o->out, "Also write OUT/localize.json");
  command->callback([o, &action] { action = [o] { return RunLocalize(*o); }; });
});

}  // namespace
}  // namespace parity::cli
