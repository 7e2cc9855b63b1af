// `parity localize A B --prompt TEXT [--chat] [--tokens IDS] [--step N] [--dtype fp32|fp16|bf16]
// [--device cpu] [--json] [--out DIR]`: where, layer by layer, the two models' computations part at
// one decode step, and whether the difference is real (FP64 level) or rounding. See
// harness/diagnose/localize.h for the rule. Exit 0 whatever the verdict (it is a diagnosis, not a
// gate), 2 for bad input.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "harness/cli/command.h"
#include "harness/core/atomic_file.h"
#include "harness/core/error.h"
#include "harness/diagnose/localize.h"
#include "harness/diagnose/model_source.h"
#include "harness/session/inputs.h"
#include "harness/session/model_store.h"
#include "harness/session/out_dir.h"

namespace parity::cli {
namespace {

struct LocalizeArgs {
  std::string a, b;
  diagnose::PromptSpec prompt;
  std::optional<int64_t> step;
  std::string dtype = "fp32";
  std::string device = "cpu";
  int64_t max_new_tokens = 32;
  double saturation_fraction = 0.5;
  bool json = false;
  std::string out;
};

int RunLocalize(const LocalizeArgs& args) {
  if (!args.out.empty()) session::PrepareOutputDir(args.out, "--out");
  diagnose::ResolvedPrompt prompt = diagnose::ResolvePrompt(args.prompt, {args.a, args.b});
  diagnose::LocalizeOptions options;
  options.precision = forward::ParsePrecisionPolicy(args.dtype);
  options.device = c10::Device(args.device);
  options.step = args.step;
  options.max_new_tokens = args.max_new_tokens;
  options.saturation_fraction = args.saturation_fraction;
  options.eos_ids = prompt.eos_ids;
  options.token_text = prompt.token_text;
  session::ModelStore store;
  std::shared_ptr<const session::StoredModel> model_a = store.Open(args.a);
  std::shared_ptr<const session::StoredModel> model_b = store.Open(args.b);
  const auto [label_a, label_b] = session::DistinctLabels(args.a, args.b);
  session::CheckTokenIds(prompt.tokens, model_a->config.vocab_size, label_a, "the prompt");
  session::CheckTokenIds(prompt.tokens, model_b->config.vocab_size, label_b, "the prompt");
  if (args.step) {
    // Positions past max_position_embeddings are outside what the model was trained for (rotary
    // scaling changes there); localizing there is almost never what was meant.
    const int64_t last = static_cast<int64_t>(prompt.tokens.size()) + *args.step;
    const int64_t limit = std::min(model_a->config.max_position_embeddings,
                                   model_b->config.max_position_embeddings);
    if (*args.step < 0) throw InputError(fmt::format("--step: expected >= 0, got {}", *args.step));
    if (last >= limit) {
      throw InputError(fmt::format(
          "--step {}: position {} (prompt of {} tokens + step) is beyond max_position_embeddings "
          "{}", *args.step, last, prompt.tokens.size(), limit));
    }
  }
  diagnose::ModelSource a = diagnose::StoreSource(model_a, label_a);
  diagnose::ModelSource b = diagnose::StoreSource(model_b, label_b);
  diagnose::LocalizeResult result = diagnose::Localize(a, b, prompt.tokens, options);
  nlohmann::ordered_json json = diagnose::LocalizeToJson(result);
  // The predicted tokens with their text (the library result holds ids only).
  std::string token_line;
  if (result.divergence_token_a && result.divergence_token_b) {
    const std::string text_a = prompt.token_text(*result.divergence_token_a);
    const std::string text_b = prompt.token_text(*result.divergence_token_b);
    json["divergence"]["text_a"] = text_a;
    json["divergence"]["text_b"] = text_b;
    token_line = fmt::format("  tokens: A {} = {}, B {} = {}\n", *result.divergence_token_a,
                             nlohmann::json(text_a).dump(), *result.divergence_token_b,
                             nlohmann::json(text_b).dump());
  }
  if (!args.out.empty()) {
    // Which run of OUT this diagnosis belongs to (the report shows it only beside that run).
    json["run_id"] = session::RunIdOf(args.out);
    const std::string path = (std::filesystem::path(args.out) / "localize.json").string();
    WriteFileAtomic(path, json.dump(2) + "\n");
    spdlog::info("wrote {}", path);
  }
  if (args.json) {
    PrintJson(json.dump(2));
  } else {
    std::cout << diagnose::FormatLocalize(result) << token_line;
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
  command->add_option("A", o->a, "Reference checkpoint directory or GGUF file")->required()->check(CLI::ExistingPath);
  command->add_option("B", o->b, "Candidate checkpoint directory or GGUF file")->required()->check(CLI::ExistingPath);
  command->add_option("--prompt", o->prompt.text, "Prompt text (tokenized with A's or B's tokenizer.model)");
  command->add_flag("--chat", o->prompt.chat, "Wrap the prompt in the ChatML template");
  command->add_option("--tokens", o->prompt.token_ids, "Prompt as comma-separated token ids");
  command->add_option("--step", o->step,
                      "Decode step to localize (default: the first divergence of a free greedy "
                      "run, or step 0 when they never diverge)");
  command->add_option("--dtype", o->dtype,
                      "fp32, fp16, bf16 or fp64, or a precision policy (bf16+fp32:norm,mlp[3-5])")
      ->capture_default_str();
  command->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
  command->add_option("--max-new-tokens", o->max_new_tokens,
                      "Length of the free run that looks for the first divergence")
      ->check(AtLeastOne())
      ->capture_default_str();
  command->add_option("--saturation-fraction", o->saturation_fraction,
                      "Range watch: a point at this fraction of its precision's largest finite "
                      "value (FP16 65504) or above is a saturation risk")
      ->check(CLI::Range(1e-300, 1.0))
      ->capture_default_str();
  command->add_flag("--json", o->json, "Print one JSON object instead of the table");
  command->add_option("--out", o->out, "Also write OUT/localize.json");
  command->callback([o, &action] { action = [o] { return RunLocalize(*o); }; });
});

}  // namespace
}  // namespace parity::cli
