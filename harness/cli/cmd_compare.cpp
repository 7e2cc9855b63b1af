// `parity compare A B --prompt TEXT --dtypes fp32,fp16,bf16,fp64 --max-new-tokens N --out DIR`: the
// case-free form of `parity run`: A vs B at each dtype (fp64 in the list also turns on the FP64
// oracle). The arguments become a case object, validated like a case file.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/cli/command.h"
#include "harness/cli/run_output.h"
#include "harness/compare/case.h"
#include "harness/compare/suite.h"
#include "harness/core/error.h"
#include "harness/session/inputs.h"

namespace parity::cli {
namespace {

struct CompareOptions {
  std::string a;
  std::string b;
  std::vector<std::string> prompts;
  std::vector<std::string> prompt_tokens;  // "1,2,3" each
  std::vector<std::string> dtypes = {"fp32"};
  int64_t max_new_tokens = 32;
  std::string name;  // --name; default: DefaultName(a, b)
  RunCommandOptions output;
  std::string mode = "free";
  std::string teacher = "a";
  bool chat = false;
  std::string device = "cpu";
  int64_t seed = 0;
  int64_t top_k = 5;
  double near_tie_ulps = 4;
  std::optional<double> max_kl, mean_kl, p99_kl, max_abs_logit_diff, min_top1_agreement;
  std::optional<int64_t> min_first_divergence_step;
  bool fail_on_real_divergence = false;
  bool require_oracle_acceptable = false;
};

// A stable case name for an ad hoc comparison, so that `baseline save` / `drift` of one pair of
// models never meet another pair's: both labels and a hash of both canonical paths, e.g.
// "original-vs-converted-3f2a9c1e".
std::string DefaultName(const std::string& a, const std::string& b,
                        const std::pair<std::string, std::string>& labels) {
  auto canonical = [](const std::string& p) {
    std::error_code ec;
    std::filesystem::path path = std::filesystem::weakly_canonical(std::filesystem::absolute(p), ec);
    return ec ? std::filesystem::absolute(p).string() : path.string();
  };
  uint64_t hash = 1469598103934665603ull;  // FNV-1a
  for (char c : canonical(a) + '\n' + canonical(b)) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return fmt::format("{}-vs-{}-{:08x}", labels.first, labels.second, hash & 0xffffffffu);
}

int RunCompare(const CompareOptions& o) {
  const auto labels = session::DistinctLabels(o.a, o.b);
  const auto& [label_a, label_b] = labels;
  auto absolute = [](const std::string& p) { return std::filesystem::absolute(p).string(); };
  nlohmann::ordered_json json;
  json["name"] = o.name.empty() ? DefaultName(o.a, o.b, labels) : o.name;
  json["models"][label_a] = {{"path", absolute(o.a)}};
  json["models"][label_b] = {{"path", absolute(o.b)}};
  json["prompts"] = nlohmann::ordered_json::array();
  for (const std::string& text : o.prompts) json["prompts"].push_back(text);
  for (const std::string& ids : o.prompt_tokens) {
    json["prompts"].push_back({{"tokens", session::ParseTokenIds(ids, "--prompt-tokens")}});
  }
  json["chat"] = o.chat;
  json["dtypes"] = o.dtypes;
  json["mode"] = o.mode;
  json["teacher"] = o.teacher;
  json["max_new_tokens"] = o.max_new_tokens;
  json["device"] = o.device;
  json["seed"] = o.seed;
  json["top_k"] = o.top_k;
  json["near_tie_ulps"] = o.near_tie_ulps;
  nlohmann::ordered_json thresholds = nlohmann::ordered_json::object();
  if (o.max_kl) thresholds["max_kl"] = *o.max_kl;
  if (o.mean_kl) thresholds["mean_kl"] = *o.mean_kl;
  if (o.p99_kl) thresholds["p99_kl"] = *o.p99_kl;
  if (o.max_abs_logit_diff) thresholds["max_abs_logit_diff"] = *o.max_abs_logit_diff;
  if (o.min_top1_agreement) thresholds["min_top1_agreement"] = *o.min_top1_agreement;
  if (o.min_first_divergence_step) {
    thresholds["min_first_divergence_step"] = *o.min_first_divergence_step;
  }
  thresholds["fail_on_real_divergence"] = o.fail_on_real_divergence;
  thresholds["require_oracle_acceptable"] = o.require_oracle_acceptable;
  json["thresholds"] = thresholds;

  compare::Case c = compare::ParseCase(json, "parity compare");
  c.path.reset();
  return RunAndWrite(c, "compare", o.output);
}

CommandRegistrar compare_command("compare", [](CLI::App& app, Action& action) {
  auto o = std::make_shared<CompareOptions>();
  CLI::App* command = app.add_subcommand(
      "compare",
      "Compare two checkpoints (A is the reference) by lockstep greedy decoding at each dtype; "
      "writes OUT/summary.json and OUT/steps.jsonl (reports/SCHEMA.md). Exit 0 when every gate "
      "passes, 1 when one fails, 2 for bad input");
  command->add_option("A", o->a, "Reference checkpoint directory")->required()->check(CLI::ExistingDirectory);
  command->add_option("B", o->b, "Candidate checkpoint directory")->required()->check(CLI::ExistingDirectory);
  command->add_option("--prompt", o->prompts, "Prompt text (repeatable)");
  command->add_option("--prompt-tokens", o->prompt_tokens,
                      "Prompt as comma-separated token ids, fed as they are (repeatable)");
  command->add_option("--dtypes", o->dtypes, "Precisions, comma-separated: fp32, fp16, bf16, fp64 "
                                              "(or float32, float16/half, bfloat16, float64; fp64 "
                                              "also runs the FP64 oracle)")
      ->delimiter(',')
      ->capture_default_str();
  command->add_option("--max-new-tokens", o->max_new_tokens, "Decode steps at most")
      ->check(AtLeastOne())
      ->capture_default_str();
  command->add_option("--name", o->name,
                      "Case name recorded in the summary (baselines and drift are per name); "
                      "default: both model labels and a hash of both paths");
  AddRunOutputOptions(command, o->output);
  command->add_option("--mode", o->mode, "free or teacher_forced")->capture_default_str();
  command->add_option("--teacher", o->teacher, "teacher_forced: whose greedy stream both read (a or b)")
      ->capture_default_str();
  command->add_flag("--chat", o->chat, "Wrap text prompts in the ChatML template");
  command->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
  command->add_option("--seed", o->seed, "at::manual_seed before every run")->capture_default_str();
  command->add_option("--top-k", o->top_k, "k of the top-k overlap")->capture_default_str();
  command->add_option("--near-tie-ulps", o->near_tie_ulps,
                      "Near-tie tolerance in ULPs of the run precision")
      ->capture_default_str();
  command->add_option("--max-kl", o->max_kl, "Gate: max per-step KL");
  command->add_option("--mean-kl", o->mean_kl, "Gate: mean per-step KL");
  command->add_option("--p99-kl", o->p99_kl, "Gate: p99 of per-step KL");
  command->add_option("--max-abs-logit-diff", o->max_abs_logit_diff, "Gate: max |logit difference|");
  command->add_option("--min-top1-agreement", o->min_top1_agreement, "Gate: same-top-1 rate");
  command->add_option("--min-first-divergence-step", o->min_first_divergence_step,
                      "Gate: a divergence must come at this step or later");
  command->add_flag("--fail-on-real-divergence", o->fail_on_real_divergence,
                    "Gate: a first divergence that is not a near-tie fails");
  command->add_flag("--require-oracle-acceptable", o->require_oracle_acceptable,
                    "Gate: B's FP64-oracle error must be within 2x (fp32) / 3x (fp16, bf16) of A's");
  command->callback([o, &action] {
    action = [o] {
      if (o->prompts.empty() && o->prompt_tokens.empty()) {
        throw InputError("compare: give at least one --prompt or --prompt-tokens");
      }
      return RunCompare(*o);
    };
  });
});

}  // namespace
}  // namespace parity::cli
