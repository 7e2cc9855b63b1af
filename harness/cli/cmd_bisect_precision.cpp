// `parity bisect-precision A[@POLICY] B[@POLICY] --prompt TEXT [--max-new-tokens 64] [--max-kl X]
// [--device cpu] [--json] [--out DIR]`: which modules' upgrade to FP32 removes a pair's divergence
// (harness/diagnose/precision_bisect.h). `M M@bf16` (or `M@fp32 M@bf16`) bisects one model at two
// precisions; `ORIG@bf16 CONV` an original and its conversion at BF16 (B takes A's precision when
// it names none; A defaults to fp32). Prints the search as a table and the answer as a sentence.
// Exit 0 when an answer is found or the pair does not diverge, 1 when raising everything to FP32
// does not remove the divergence (not a precision effect), 2 for bad input.
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "harness/cli/command.h"
#include "harness/core/atomic_file.h"
#include "harness/core/error.h"
#include "harness/diagnose/model_source.h"
#include "harness/diagnose/precision_bisect.h"
#include "harness/session/inputs.h"
#include "harness/session/model_store.h"
#include "harness/session/out_dir.h"

namespace parity::cli {
namespace {

struct BisectArgs {
  std::string a, b;
  diagnose::PromptSpec prompt;
  int64_t max_new_tokens = 64;
  std::optional<double> max_kl;
  std::string device = "cpu";
  bool json = false;
  std::string out;
  std::string cache_dir;
};

// "DIR" or "DIR@POLICY" (the last '@', unless the whole text is a directory).
std::pair<std::string, std::optional<forward::PrecisionPolicy>> SplitSide(const std::string& text) {
  const size_t at = text.rfind('@');
  if (at == std::string::npos || std::filesystem::is_directory(text)) return {text, std::nullopt};
  return {text.substr(0, at), forward::ParsePrecisionPolicy(text.substr(at + 1))};
}

int RunBisect(const BisectArgs& args) {
  if (!args.out.empty()) session::PrepareOutputDir(args.out, "--out");
  auto [dir_a, policy_a] = SplitSide(args.a);
  auto [dir_b, policy_b] = SplitSide(args.b);
  for (const std::string& dir : {dir_a, dir_b}) {
    if (!std::filesystem::is_directory(dir)) {
      throw InputError(fmt::format("bisect-precision: '{}' is not a checkpoint directory", dir));
    }
  }
  if (args.max_kl && !(*args.max_kl >= 0)) {
    throw InputError(fmt::format("--max-kl: expected a number >= 0, got {}", *args.max_kl));
  }
  diagnose::BisectOptions options;
  options.precision_a = policy_a.value_or(forward::Precision::kFP32);
  options.precision_b = policy_b.value_or(options.precision_a);
  options.device = c10::Device(args.device);
  options.max_new_tokens = args.max_new_tokens;
  options.max_kl = args.max_kl;
  forward::MakeNumerics(options.precision_a, options.device);  // tf32 on cpu etc.: exit 2 now
  forward::MakeNumerics(options.precision_b, options.device);
  const auto absolute = [](const std::string& p) {
    return std::filesystem::absolute(p).lexically_normal().string();
  };
  if (absolute(dir_a) == absolute(dir_b) && options.precision_a == options.precision_b) {
    throw InputError(fmt::format("bisect-precision: compares {}@{} with itself; name a lower "
                                 "precision for B (e.g. {}@bf16)", dir_a,
                                 options.precision_a.Text(), dir_b));
  }
  diagnose::ResolvedPrompt prompt = diagnose::ResolvePrompt(args.prompt, {dir_a, dir_b});
  session::ModelStore store(args.cache_dir);
  std::shared_ptr<const session::StoredModel> model_a = store.Open(dir_a);
  std::shared_ptr<const session::StoredModel> model_b = store.Open(dir_b);
  auto [label_a, label_b] = session::DistinctLabels(dir_a, dir_b);
  session::CheckTokenIds(prompt.tokens, model_a->config.vocab_size, label_a, "the prompt");
  session::CheckTokenIds(prompt.tokens, model_b->config.vocab_size, label_b, "the prompt");
  options.eos_ids = prompt.eos_ids;
  const diagnose::BisectResult result = diagnose::BisectPrecision(
      diagnose::StoreSource(model_a, label_a), diagnose::StoreSource(model_b, label_b),
      prompt.tokens, options);
  nlohmann::ordered_json json = diagnose::BisectToJson(result);
  if (!args.out.empty()) {
    const std::string path = (std::filesystem::path(args.out) / "bisect_precision.json").string();
    WriteFileAtomic(path, json.dump(2) + "\n");
    spdlog::info("wrote {}", path);
  }
  if (args.json) {
    PrintJson(json.dump(2));
  } else {
    std::cout << diagnose::FormatBisect(result);
  }
  return result.status == "not_precision" ? kExitDifferent : kExitOk;
}

CommandRegistrar bisect_precision_command("bisect-precision", [](CLI::App& app, Action& action) {
  auto o = std::make_shared<BisectArgs>();
  CLI::App* command = app.add_subcommand(
      "bisect-precision",
      "Find a small set of modules (by kind, then by layer range) whose upgrade to FP32 removes a "
      "pair's divergence: M M@bf16, M@fp32 M@fp16, or ORIG@bf16 CONV");
  command->add_option("A", o->a, "Reference: DIR or DIR@POLICY (default fp32)")->required();
  command->add_option("B", o->b, "Candidate: DIR or DIR@POLICY (default: A's precision)")
      ->required();
  command->add_option("--prompt", o->prompt.text, "Prompt text (tokenized with A's or B's tokenizer)");
  command->add_flag("--chat", o->prompt.chat, "Wrap the prompt in the chat template");
  command->add_option("--tokens", o->prompt.token_ids, "Prompt as comma-separated token ids");
  command->add_option("--max-new-tokens", o->max_new_tokens, "Steps each run compares")
      ->check(AtLeastOne())
      ->capture_default_str();
  command->add_option("--max-kl", o->max_kl,
                      "Also require max per-step KL (nats) <= this for a set to suffice");
  command->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
  command->add_option("--cache-dir", o->cache_dir, "Conversion cache directory");
  command->add_flag("--json", o->json, "Print one JSON object instead of the table");
  command->add_option("--out", o->out, "Also write OUT/bisect_precision.json");
  command->callback([o, &action] { action = [o] { return RunBisect(*o); }; });
});

}  // namespace
}  // namespace parity::cli
