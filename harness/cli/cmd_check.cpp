// `parity check batch|kv-cache|device A --prompt TEXT [--dtype fp32] [--max-new-tokens N] [--json]`:
// consistency of one model with itself (harness/diagnose/consistency.h): alone vs in a left-padded
// batch, KV cache vs full recompute, CPU vs CUDA. Exit 0 when consistent, 1 when the greedy tokens
// differ, 2 for bad input or a check this build cannot run (device without CUDA).
#include <iostream>
#include <memory>
#include <string>

#include "harness/cli/command.h"
#include "harness/core/error.h"
#include "harness/diagnose/consistency.h"
#include "harness/diagnose/model_source.h"

namespace parity::cli {
namespace {

struct CheckArgs {
  std::string check;
  std::string model;
  diagnose::PromptSpec prompt;
  std::string other_prompt;  // batch: token ids of the longer row
  std::string dtype = "fp32";
  std::string device = "cpu";
  int64_t max_new_tokens = 32;
  bool json = false;
};

int RunCheck(const CheckArgs& args) {
  diagnose::ResolvedPrompt prompt = diagnose::ResolvePrompt(args.prompt, {args.model});
  diagnose::CheckOptions options;
  options.precision = forward::ParsePrecision(args.dtype);
  options.device = c10::Device(args.device);
  options.max_new_tokens = args.max_new_tokens;
  options.eos_ids = prompt.eos_ids;
  if (!args.other_prompt.empty()) {
    options.other_prompt = diagnose::ParseTokenIds(args.other_prompt, "--other-tokens");
  }
  diagnose::ModelSource source = diagnose::CheckpointSource(args.model);
  diagnose::CheckResult result;
  if (args.check == "batch") {
    result = diagnose::CheckBatchInvariance(source, prompt.tokens, options);
  } else if (args.check == "kv-cache") {
    result = diagnose::CheckKvCache(source, prompt.tokens, options);
  } else {
    result = diagnose::CheckDevice(source, prompt.tokens, options);
  }
  if (args.json) {
    PrintJson(diagnose::CheckToJson(result).dump(2));
  } else {
    std::cout << diagnose::FormatCheck(result);
  }
  if (!result.available) return kExitBadInput;  // FormatCheck / the JSON already say why
  return result.consistent ? kExitOk : kExitDifferent;
}

CommandRegistrar check_command("check", [](CLI::App& app, Action& action) {
  auto o = std::make_shared<CheckArgs>();
  CLI::App* command = app.add_subcommand(
      "check",
      "Consistency of one model with itself: batch (alone vs in a left-padded batch), kv-cache "
      "(cached vs recomputed prefix), device (CPU vs CUDA). Exit 0 consistent, 1 not, 2 bad input");
  command->add_option("CHECK", o->check, "batch, kv-cache or device")
      ->required()
      ->check(CLI::IsMember({"batch", "kv-cache", "device"}));
  command->add_option("MODEL", o->model, "Checkpoint directory or GGUF file")->required()->check(CLI::ExistingPath);
  command->add_option("--prompt", o->prompt.text, "Prompt text");
  command->add_flag("--chat", o->prompt.chat, "Wrap the prompt in the ChatML template");
  command->add_option("--tokens", o->prompt.token_ids, "Prompt as comma-separated token ids");
  command->add_option("--other-tokens", o->other_prompt,
                      "batch: the longer prompt of the other row, as token ids (default: the "
                      "prompt followed by itself without BOS)");
  command->add_option("--dtype", o->dtype, "fp32, fp16, bf16 or fp64")->capture_default_str();
  command->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
  command->add_option("--max-new-tokens", o->max_new_tokens, "Decode steps")
      ->check(AtLeastOne())
      ->capture_default_str();
  command->add_flag("--json", o->json, "Print one JSON object");
  command->callback([o, &action] { action = [o] { return RunCheck(*o); }; });
});

}  // namespace
}  // namespace parity::cli
