// `parity compare A B --prompt TEXT --dtypes fp32,fp16,bf16,fp64 --max-new-tokens N --out DIR`: the
// case-free form of `parity run`: A vs B at each dtype (fp64 in the list also turns on the FP64
// oracle). A side may name its precision as in a case's pairs, `DIR@bf16`: `parity compare M M@bf16`
// compares one model at fp32 (or each --dtypes) with itself at bf16; `A@fp32 B@bf16` is one pair.
// The arguments become a case object, validated like a case file. Unlike a case file, compare gates
// by default: a real (or precision-failure) first divergence fails, and so does the FP64 oracle's
// rule when the oracle ran. A side may be a recording instead of a checkpoint (a trace directory,
// reports/TRACES.md, or a llama.cpp KLD-base file; compare/recorded_pair.h): without prompts its
// recorded prompts are used, and a teacher-forced recording makes the mode teacher_forced with it
// as the teacher unless --mode / --teacher say otherwise.
#include <algorithm>
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
#include "harness/compare/recorded_side.h"
#include "harness/compare/suite.h"
#include "harness/core/error.h"
#include "harness/session/inputs.h"
#include "harness/forward/numerics.h"
#include "harness/forward/placement.h"
#include "harness/model/gguf_checkpoint.h"

namespace parity::cli {
namespace {

struct CompareOptions {
  std::string a;
  std::string b;
  std::vector<std::string> prompts;
  std::vector<std::string> prompt_tokens;  // "1,2,3" each
  std::vector<std::string> dtypes = {"fp32"};
  int64_t max_new_tokens = 32;
  std::string name;  // --name; default: DefaultName
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
  bool fail_on_real_divergence = true;
  std::optional<bool> require_oracle_acceptable;  // default: on when the oracle runs
  bool oracle = false;
  std::string oracle_device;
  std::optional<std::string> devices, devices_a, devices_b;
  bool range_watch = false;      // --range-watch; neither: the case's rule (fp16 sides, oracle)
  bool no_range_watch = false;   // --no-range-watch
  std::optional<double> saturation_fraction;
  std::optional<double> memory_limit_gb;
  std::string cuda_graphs = "auto";  // --cuda-graphs: "auto" | "off"
  bool dtypes_given = false;
  bool device_given = false;
  bool mode_given = false;
  bool teacher_given = false;
};

// "DIR" or "DIR@dtype": the directory and the precision named after the last '@' (when the whole
// text is not itself an existing directory).
std::pair<std::string, std::optional<std::string>> SplitSide(const std::string& text) {
  size_t at = text.rfind('@');
  if (at == std::string::npos || std::filesystem::is_directory(text) ||
      compare::IsRecordedPath(text)) {
    return {text, std::nullopt};
  }
  // A precision or a policy ("bf16+fp32:norm"); InputError naming the bad token otherwise.
  return {text.substr(0, at), forward::ParsePrecisionPolicy(text.substr(at + 1)).Text()};
}

// A stable case name for an ad hoc comparison, so that `baseline save` / `drift` of one pair of
// models never meet another pair's: both labels and a hash of both canonical paths (and the
// precisions named with '@'), e.g. "original-vs-converted-3f2a9c1e".
std::string DefaultName(const std::string& a, const std::string& b, const std::string& label_a,
                        const std::string& label_b) {
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
  return fmt::format("{}-vs-{}-{:08x}", label_a, label_b, hash & 0xffffffffu);
}

int RunCompare(const CompareOptions& o) {
  compare::ParseCudaGraphs(o.cuda_graphs, "--cuda-graphs");  // named as the user wrote it
  auto [dir_a, precision_a] = SplitSide(o.a);
  auto [dir_b, precision_b] = SplitSide(o.b);
  auto open_side = [](const std::string& dir, const std::optional<std::string>& precision)
      -> std::optional<compare::RecordedSide> {
    if (compare::IsRecordedPath(dir)) {
      if (precision) {
        throw InputError(fmt::format("compare: '{}' is a recording: it has its own precision "
                                     "(drop '@{}')", dir, *precision));
      }
      return compare::RecordedSide::Open(dir);
    }
    if (!std::filesystem::is_directory(dir) && !model::IsGgufFile(dir)) {
      throw InputError(fmt::format("compare: '{}' is neither a checkpoint directory, a GGUF file nor "
                                   "a recording (trace directory or llama.cpp KLD-base file)", dir));
    }
    return std::nullopt;
  };
  const std::optional<compare::RecordedSide> recorded_a = open_side(dir_a, precision_a);
  const std::optional<compare::RecordedSide> recorded_b = open_side(dir_b, precision_b);
  const compare::RecordedSide* recorded = recorded_a ? &*recorded_a : (recorded_b ? &*recorded_b : nullptr);
  if (o.prompts.empty() && o.prompt_tokens.empty() && !recorded) {
    throw InputError("compare: give at least one --prompt or --prompt-tokens");
  }
  std::string mode = o.mode, teacher = o.teacher;
  if (recorded && recorded->teacher_forced() && !o.mode_given) mode = "teacher_forced";
  if (mode != "free" && !o.teacher_given && (recorded_a.has_value() != recorded_b.has_value())) {
    teacher = recorded_a ? "a" : "b";  // the recording's stream is the one both read
  }
  if (precision_a && precision_b && o.dtypes_given) {
    throw InputError("compare: both sides name their precision ('@'); --dtypes would be unused");
  }
  auto absolute = [](const std::string& p) {
    return std::filesystem::absolute(p).lexically_normal().string();
  };
  const bool one_model = absolute(dir_a) == absolute(dir_b);
  auto [label_a, label_b] = session::DistinctLabels(dir_a, dir_b);
  if (one_model) {
    label_a = label_b =
        session::ModelLabel(dir_a).empty() ? std::string("model") : session::ModelLabel(dir_a);
  }
  nlohmann::ordered_json json;
  json["name"] = o.name.empty() ? DefaultName(o.a, o.b, label_a, label_b) : o.name;
  json["models"][label_a] = {{"path", absolute(dir_a)}};
  if (!one_model) json["models"][label_b] = {{"path", absolute(dir_b)}};
  if (precision_a || precision_b || one_model) {
    json["pairs"] = nlohmann::ordered_json::array(
        {{{"a", precision_a ? label_a + "@" + *precision_a : label_a},
          {"b", precision_b ? label_b + "@" + *precision_b : label_b}}});
  }
  json["prompts"] = nlohmann::ordered_json::array();
  for (const std::string& text : o.prompts) json["prompts"].push_back(text);
  for (const std::string& ids : o.prompt_tokens) {
    json["prompts"].push_back({{"tokens", session::ParseTokenIds(ids, "--prompt-tokens")}});
  }
  if (json["prompts"].empty()) {  // the recording's own prompts
    for (const io::TracePrompt& p : recorded->trace().prompts) {
      json["prompts"].push_back({{"tokens", p.prompt_tokens}});
    }
  }
  json["chat"] = o.chat;
  // Precisions or policies; a policy's module list has commas of its own (SplitPolicyList).
  std::vector<std::string> dtypes;
  for (const std::string& item : o.dtypes) {
    for (const std::string& one : forward::SplitPolicyList(item)) dtypes.push_back(one);
  }
  json["dtypes"] = dtypes;
  json["mode"] = mode;
  json["teacher"] = teacher;
  json["max_new_tokens"] = o.max_new_tokens;
  json["device"] = o.device;
  if (!o.device_given && (o.devices || o.devices_a)) {
    // The run's device (settings.device, the oracle's default) is side A's first device.
    const forward::PlacementSpec spec =
        forward::ParsePlacementSpec(o.devices_a.value_or(o.devices.value_or("")), "--devices-a");
    if (!spec.automatic) json["device"] = spec.devices.front().device.str();
  }
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
  const bool oracle =
      o.oracle || std::any_of(dtypes.begin(), dtypes.end(), [](const std::string& d) {
        return forward::TryParsePrecisionPolicy(d) ==
               std::optional<forward::PrecisionPolicy>(forward::Precision::kFP64);
      });
  thresholds["require_oracle_acceptable"] = o.require_oracle_acceptable.value_or(oracle);
  json["thresholds"] = thresholds;
  if (o.oracle) json["oracle"] = true;
  if (!o.oracle_device.empty()) json["oracle_device"] = o.oracle_device;
  if (o.devices || o.devices_a || o.devices_b) {
    const std::string device = json["device"].get<std::string>();
    json["devices"] = {{"a", o.devices_a.value_or(o.devices.value_or(device))},
                       {"b", o.devices_b.value_or(o.devices.value_or(device))}};
  }
  if (o.range_watch) json["range_watch"] = true;
  if (o.no_range_watch) json["range_watch"] = false;
  if (o.saturation_fraction) json["saturation_fraction"] = *o.saturation_fraction;
  json["cuda_graphs"] = o.cuda_graphs;

  compare::Case c = compare::ParseCase(json, "parity compare");
  c.path.reset();
  RunCommandOptions output = o.output;
  if (o.memory_limit_gb) output.memory_limit_bytes = static_cast<int64_t>(*o.memory_limit_gb * 1e9);
  return RunAndWrite(c, "compare", output);
}

CommandRegistrar compare_command("compare", [](CLI::App& app, Action& action) {
  auto o = std::make_shared<CompareOptions>();
  CLI::App* command = app.add_subcommand(
      "compare",
      "Compare two checkpoints (A is the reference) by lockstep greedy decoding at each dtype; "
      "writes OUT/summary.json and OUT/steps.jsonl (reports/SCHEMA.md). Exit 0 when every gate "
      "passes, 1 when one fails, 2 for bad input");
  command->add_option("A", o->a, "Reference checkpoint directory, optionally DIR@dtype, or a "
                                 "recording: a trace directory (reports/TRACES.md) or a llama.cpp "
                                 "KLD-base file")
      ->required();
  command->add_option("B", o->b, "Candidate checkpoint directory, optionally DIR@dtype (A@bf16: A "
                                 "itself at another precision)")
      ->required();
  command->add_option("--prompt", o->prompts, "Prompt text (repeatable)");
  command->add_option("--prompt-tokens", o->prompt_tokens,
                      "Prompt as comma-separated token ids, fed as they are (repeatable)");
  command->add_option("--dtypes", o->dtypes, "Precisions, comma-separated: fp32, fp16, bf16, fp64 "
                                              "(fp64 also runs the FP64 oracle), or precision "
                                              "policies: bf16+fp32:norm,lm_head, tf32 (CUDA)")
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
  command->add_flag("--fail-on-real-divergence,!--no-fail-on-real-divergence",
                    o->fail_on_real_divergence,
                    "Gate (on by default): a first divergence classified real or precision_failure "
                    "fails");
  command->add_flag("--require-oracle-acceptable,!--no-require-oracle-acceptable",
                    o->require_oracle_acceptable,
                    "Gate (on by default when the oracle runs): B's FP64-oracle error must be within "
                    "2x (fp32) / 3x (fp16, bf16) of A's");
  command->add_flag("--oracle", o->oracle,
                    "Run the FP64 oracle (also turned on by fp64 in --dtypes): after decoding, one "
                    "teacher-forced FP64 forward per model, models one at a time");
  CLI::Option* watch_on = command->add_flag("--range-watch", o->range_watch,
                    "Overflow and saturation watch (on by default for a side with an fp16 module, "
                    "and with the oracle): after decoding, each side runs once more over the tokens "
                    "it read, observed; per point (embedding, each layer's attention and MLP "
                    "outputs, final norm, logits) its largest |x| against its precision's range, "
                    "the first point at --saturation-fraction of it and the first out of range");
  command->add_flag("--no-range-watch", o->no_range_watch, "No range watch, not even for fp16 sides")
      ->excludes(watch_on);
  command->add_option("--saturation-fraction", o->saturation_fraction,
                      "Fraction of a precision's largest finite value (FP16 65504) from which a "
                      "point is a saturation risk (default 0.5)");
  command->add_option("--cuda-graphs", o->cuda_graphs,
                      "One-token decode steps of the pipelined GPU loop: auto (CUDA graphs where "
                      "the build and the model allow; bitwise Forward's logits) or off (Forward "
                      "eagerly)")
      ->capture_default_str();
  command->add_option("--oracle-device", o->oracle_device,
                      "Where the FP64 oracle runs: cpu, cuda or cuda:N, or a placement as for "
                      "--devices (default: --device)");
  AddPlacementOptions(command, o->devices, o->devices_a, o->devices_b);
  command->add_option("--memory-limit", o->memory_limit_gb,
                      "Plan within this many GB (decimal) per device instead of what it reports "
                      "free; a plan that does not fit is refused with the numbers (exit 2)")
      ->check(CLI::PositiveNumber);
  command->callback([o, &action, command] {
    o->dtypes_given = command->count("--dtypes") > 0;
    o->device_given = command->count("--device") > 0;
    o->mode_given = command->count("--mode") > 0;
    o->teacher_given = command->count("--teacher") > 0;
    action = [o] { return RunCompare(*o); };
  });
});

}  // namespace
}  // namespace parity::cli
