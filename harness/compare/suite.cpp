#include "harness/compare/suite.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "harness/compare/metrics.h"
#include "harness/compare/pair_placement.h"
#include "harness/compare/overflow.h"
#include "harness/compare/recorded_pair.h"
#include "harness/compare/recorded_side.h"
#include "harness/compare/save_traces.h"
#include "harness/compare/verdict.h"
#include "harness/core/error.h"
#include "harness/core/interrupt.h"
#include "harness/core/version.h"
#include "harness/forward/attention_backend.h"
#include "harness/forward/memory_plan.h"
#include "harness/decode/tokenizer.h"
#include "harness/decode/pipeline.h"
#include "harness/model/config.h"
#include "harness/report/terminal.h"
#include "harness/session/inputs.h"
#include "harness/session/model_store.h"

namespace parity::compare {
namespace {

// Oracle figures of one run, from the side logits and both FP64 runs (all [n, V] FP64).
OracleResult MeasureOracle(const at::Tensor& logits_a, const at::Tensor& logits_b,
                           const at::Tensor& a64, const at::Tensor& b64, int64_t comparable,
                           const RunRequest& request) {
  OracleResult o;
  o.reference_model = request.pair.a.model;
  o.a_rms_error_vs_fp64 = RmsDiff(logits_a, a64);
  o.b_rms_error_vs_fp64 = RmsDiff(logits_b, b64);
  o.comparable_steps = comparable;
  o.a_rms_error_vs_reference = RmsDiff(logits_a.slice(0, 0, comparable), a64.slice(0, 0, comparable));
  o.b_rms_error_vs_reference = RmsDiff(logits_b.slice(0, 0, comparable), a64.slice(0, 0, comparable));
  o.fp64_models_rms_diff = RmsDiff(a64.slice(0, 0, comparable), b64.slice(0, 0, comparable));
  o.multiplier = request.precision_b == forward::Precision::kFP32 ? 2.0 : 3.0;
  o.rule = fmt::format("rms(b - fp64 of {}) <= {} * rms(a - fp64 of {}) over the comparable steps",
                       request.pair.a.model, o.multiplier, request.pair.a.model);
  if (request.precision_a == request.precision_b) {
    o.acceptable = o.b_rms_error_vs_reference <= o.multiplier * o.a_rms_error_vs_reference;
  } else {
    o.rule += " (not applied: a and b differ in precision)";
  }
  return o;
}

// Per-row RMS of x - y ([n, V] each): [n].
std::vector<double> RowRms(const at::Tensor& x, const at::Tensor& y) {
  at::Tensor rms = (x - y).pow(2).mean(1).sqrt().contiguous();
  const double* data = rms.data_ptr<double>();
  return std::vector<double>(data, data + rms.numel());
}

std::string FormatValue(double value) { return fmt::format("{:.4g}", value); }

}  // namespace

RunOutcome StartOutcome(const RunRequest& request, int64_t depth) {
  RunOutcome outcome;
  Run& run = outcome.run;
  run.id = request.id;
  run.prompt_index = request.prompt_index;
  run.prompt = request.prompt_text;
  run.chat = request.chat;
  run.prompt_tokens = request.prompt_tokens;
  run.pair = request.pair;
  run.thresholds = request.thresholds;
  outcome.depth = depth;
  return outcome;
}

FirstDivergence MakeFirstDivergence(const StepRecord& record, const std::vector<int64_t>& prompt,
                                    const std::vector<int64_t>& context, const TextDecoder& text) {
  FirstDivergence d;
  d.step = record.step;
  d.position = record.position;
  d.token_a = record.token_a;
  d.token_b = record.token_b;
  d.text_a = text.token_text(record.token_a);
  d.text_b = text.token_text(record.token_b);
  d.context = text.decode(context);
  d.margin_a = record.margin_a;
  d.margin_b = record.margin_b;
  d.noise = record.noise;
  const int64_t previous = context.empty() ? prompt.back() : context.back();
  d.after_newline = text.token_text(previous).find('\n') != std::string::npos;
  return d;
}

TextDecoder IdTextDecoder() {
  TextDecoder decoder;
  decoder.token_text = [](int64_t id) { return fmt::format("<{}>", id); };
  decoder.decode = [](const std::vector<int64_t>& ids) {
    std::string out;
    for (int64_t id : ids) out += fmt::format("<{}>", id);
    return out;
  };
  return decoder;
}

std::string PairId(const Pair& pair) {
  return fmt::format("{}@{}/{}@{}", pair.a.model, pair.a.precision, pair.b.model, pair.b.precision);
}

std::string RunId(int64_t prompt_index, const Pair& pair) {
  return fmt::format("p{}/{}", prompt_index, PairId(pair));
}

namespace {

// A side's budget name and range watch for the verdict (pointing into `outcome`).
SideEvidence SideOf(const RunOutcome& outcome, const RunRequest& request, bool a_side) {
  const std::optional<RangeWatch>& range = a_side ? outcome.run.range_a : outcome.run.range_b;
  return {a_side ? request.budget_name_a : request.budget_name_b, range ? &*range : nullptr};
}

// Classifies outcome.run.first_divergence from the run's own evidence and, when given, the FP64
// logits at the divergence step.
void Classify(RunOutcome& outcome, const RunRequest& request,
              const std::optional<Fp64Logits>& oracle,
              const std::optional<RunOracleFigures>& run_oracle) {
  Run& run = outcome.run;
  if (!run.first_divergence) {
    std::vector<StepRecord> same;
    for (const StepRecord& s : outcome.steps) {
      if (s.same_context) same.push_back(s);
    }
    Classification c =
        ClassifyWithoutFlip(same, request.precision_a, request.precision_b, outcome.depth,
                            run_oracle, SideOf(outcome, request, true),
                            SideOf(outcome, request, false));
    run.verdict_kind = DivergenceKindName(c.kind);
    run.verdict_evidence = c.evidence;
    return;
  }
  FirstDivergence& d = *outcome.run.first_divergence;
  const int64_t index = d.step;  // steps are recorded from step 0, one per step
  VerdictInputs in;
  in.a = &outcome.divergence_a;
  in.b = &outcome.divergence_b;
  in.token_a = d.token_a;
  in.token_b = d.token_b;
  in.precision_a = request.precision_a;
  in.precision_b = request.precision_b;
  in.depth = outcome.depth;
  in.near_tie_ulps = request.near_tie_ulps;
  for (int64_t i = 0; i < index; ++i) {
    if (outcome.steps[i].same_context) in.earlier.push_back(outcome.steps[i]);
  }
  in.at = &outcome.steps[index];
  in.oracle = oracle;
  in.overflow_point_a = outcome.overflow_point_a;
  in.overflow_point_b = outcome.overflow_point_b;
  in.side_a = SideOf(outcome, request, true);
  in.side_b = SideOf(outcome, request, false);
  Classification c = ClassifyDivergence(in);
  d.kind = DivergenceKindName(c.kind);
  d.flip_gap = c.flip_gap;
  d.tolerance = c.tolerance;
  d.evidence = c.evidence;
  run.verdict_kind = d.kind;
  run.verdict_evidence = d.evidence;
}

// A side's logits as a [V] FP64 vector from row `index` of [steps, V].
std::vector<double> Row(const at::Tensor& rows, int64_t index) {
  return ToDoubleVector(rows.select(0, index));
}

}  // namespace

namespace {

using PairDecoder = std::function<decode::GreedyResult(const decode::GreedyCallback&)>;
// Where a side's activations first leave their range, on the tokens it read (null: not known).
using OverflowFinder =
    std::function<std::optional<std::string>(bool a_side, const std::vector<int64_t>& tokens)>;
// A side's range watch over the `stream` it read after the prompt, for `steps` steps (null: not
// available).
using RangeWatcher = std::function<std::optional<RangeWatch>(
    bool a_side, const std::vector<int64_t>& stream, int64_t steps)>;

// Decodes with `decode`, measures every step, takes the range watch (request.range_watch), and
// classifies the first divergence from the run's own evidence.
RunOutcome MeasurePair(const PairDecoder& decode, int64_t depth, const OverflowFinder& overflow,
                       const RangeWatcher& watch, const RunRequest& request,
                       const TextDecoder& text, bool keep_logits) {
  RunOutcome outcome = StartOutcome(request, depth);
  Run& run = outcome.run;

  const bool teacher_forced = request.greedy.mode == decode::GreedyMode::kTeacherForced;
  std::vector<at::Tensor> rows_a, rows_b;
  std::vector<int64_t> context;  // tokens both sides read before the current step, while the same

  auto on_step = [&](const decode::GreedyStep& step) {
    std::vector<double> a = ToDoubleVector(step.logits_a);
    std::vector<double> b = ToDoubleVector(step.logits_b);
    StepRecord record = CompareLogits(a, b, request.top_k);
    record.run = request.id;
    record.step = step.step;
    record.position = step.position;
    record.same_context = step.same_context;
    if (!record.top1_agree && !run.first_divergence) {
      run.first_divergence = MakeFirstDivergence(record, request.prompt_tokens, context, text);
      outcome.divergence_a = std::move(a);
      outcome.divergence_b = std::move(b);
    }
    bool teacher_a = !teacher_forced || request.greedy.teacher_is_a;
    context.push_back(teacher_a ? record.token_a : record.token_b);
    if (keep_logits) {
      rows_a.push_back(step.logits_a.to(at::kCPU));
      rows_b.push_back(step.logits_b.to(at::kCPU));
    }
    outcome.steps.push_back(std::move(record));
  };
  decode::GreedyResult result = decode(on_step);
  run.engine_a = result.engine_a;
  run.engine_b = result.engine_b;

  run.tokens_a = result.tokens_a;
  run.tokens_b = result.tokens_b;
  outcome.input_a = result.input_a;
  outcome.input_b = result.input_b;
  auto strip_eos = [&](std::vector<int64_t> ids) {
    const auto& eos = request.greedy.eos_ids;
    ids.erase(std::remove_if(ids.begin(), ids.end(),
                             [&](int64_t id) { return std::find(eos.begin(), eos.end(), id) != eos.end(); }),
              ids.end());
    return ids;
  };
  run.text_a = text.decode(strip_eos(result.tokens_a));
  run.text_b = text.decode(strip_eos(result.tokens_b));
  run.metrics = SummarizeSteps(outcome.steps);
  if (!rows_a.empty()) {
    outcome.logits_a = at::stack(rows_a);
    outcome.logits_b = at::stack(rows_b);
  }

  if (request.range_watch && watch && !outcome.steps.empty()) {
    const int64_t steps = static_cast<int64_t>(outcome.steps.size());
    run.range_a = watch(true, result.input_a, steps);
    run.range_b = watch(false, result.input_b, steps);
  }
  // A side whose logits went non-finite: find where its activations first left their range (the
  // range watch, when it ran, names the point itself).
  if (run.first_divergence && overflow && !request.range_watch) {
    const StepRecord& at_step = outcome.steps[run.first_divergence->step];
    auto tokens_read = [&](const std::vector<int64_t>& stream) {
      std::vector<int64_t> tokens = request.prompt_tokens;
      const size_t n = std::min<size_t>(stream.size(), static_cast<size_t>(at_step.step));
      tokens.insert(tokens.end(), stream.begin(), stream.begin() + n);
      return tokens;
    };
    if (at_step.nonfinite_a > 0) outcome.overflow_point_a = overflow(true, tokens_read(result.input_a));
    if (at_step.nonfinite_b > 0) outcome.overflow_point_b = overflow(false, tokens_read(result.input_b));
  }
  Classify(outcome, request, std::nullopt, std::nullopt);
  return outcome;
}

}  // namespace

RunOutcome RunPair(forward::CausalLM& model_a, forward::CausalLM& model_b, const RunRequest& request,
                   const TextDecoder& text, const OracleModels* oracle) {
  auto start = std::chrono::steady_clock::now();
  PairDecoder decode = [&](const decode::GreedyCallback& on_step) {
    return decode::RunLockstep(model_a, model_b, request.prompt_tokens, request.greedy, on_step);
  };
  OverflowFinder overflow = [&](bool a_side, const std::vector<int64_t>& tokens) {
    return FindOverflowPoint(a_side ? model_a : model_b, tokens);
  };
  RangeWatcher watch = [&](bool a_side, const std::vector<int64_t>& stream, int64_t steps) {
    return std::optional<RangeWatch>(WatchSideRange(a_side ? model_a : model_b,
                                                    request.prompt_tokens, stream, steps,
                                                    request.saturation_fraction));
  };
  const int64_t depth = std::max(model_a.config().num_layers, model_b.config().num_layers);
  RunOutcome outcome = MeasurePair(decode, depth, overflow, watch, request, text,
                                   request.keep_logits || oracle != nullptr);
  Run& run = outcome.run;
  const int64_t decode_keys = static_cast<int64_t>(request.prompt_tokens.size()) + 1;
  run.attention_a = forward::DescribeAttention(model_a.config(), model_a.variants(),
                                               model_a.numerics(), decode_keys);
  run.attention_b = forward::DescribeAttention(model_b.config(), model_b.variants(),
                                               model_b.numerics(), decode_keys);
  if (oracle != nullptr && !outcome.steps.empty()) {
    at::Tensor a64 = OracleLogits(*oracle->a64, outcome, request, true);
    at::Tensor b64 = (oracle->b64 == oracle->a64 && outcome.input_a == outcome.input_b)
                         ? a64
                         : OracleLogits(*oracle->b64, outcome, request, false);
    ApplyOracle(outcome, a64, b64, request);
  }
  run.pass = CheckGates(run, request.thresholds).empty();
  run.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return outcome;
}

RunOutcome RunDecodedPair(const decode::SideRun& a, const decode::SideRun& b, int64_t depth,
                          const RunRequest& request, const TextDecoder& text,
                          const std::optional<RangeWatch>& range_a,
                          const std::optional<RangeWatch>& range_b) {
  auto start = std::chrono::steady_clock::now();
  PairDecoder decode = [&](const decode::GreedyCallback& on_step) {
    return decode::CompareDecoded(a, b, request.prompt_tokens, request.greedy, on_step);
  };
  RangeWatcher watch = [&](bool a_side, const std::vector<int64_t>&, int64_t) {
    return a_side ? range_a : range_b;
  };
  RunOutcome outcome =
      MeasurePair(decode, depth, nullptr, watch, request, text, request.keep_logits);
  outcome.run.pass = CheckGates(outcome.run, request.thresholds).empty();
  outcome.run.elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return outcome;
}

at::Tensor OracleLogits(forward::CausalLM& model64, const RunOutcome& outcome,
                        const RunRequest& request, bool a_side) {
  const int64_t n = static_cast<int64_t>(outcome.steps.size());
  return decode::TeacherForcedLogits(model64, request.prompt_tokens,
                                     a_side ? outcome.input_a : outcome.input_b, n)
      .to(at::kDouble);
}

void ApplyOracle(RunOutcome& outcome, const at::Tensor& a64_in, const at::Tensor& b64_in,
                 const RunRequest& request) {
  const int64_t n = static_cast<int64_t>(outcome.steps.size());
  if (n == 0) return;
  TORCH_CHECK(outcome.logits_a.defined() && outcome.logits_a.size(0) == n,
              "ApplyOracle needs every step's logits (RunRequest::keep_logits)");
  at::Tensor logits_a = outcome.logits_a.to(at::kDouble), logits_b = outcome.logits_b.to(at::kDouble);
  at::Tensor a64 = a64_in.to(at::kDouble), b64 = b64_in.to(at::kDouble);
  std::vector<double> err_a = RowRms(logits_a, a64), err_b = RowRms(logits_b, b64);
  for (int64_t i = 0; i < n; ++i) {
    outcome.steps[i].err_a_fp64 = err_a[i];
    outcome.steps[i].err_b_fp64 = err_b[i];
  }
  Run& run = outcome.run;
  run.oracle = MeasureOracle(logits_a, logits_b, a64, b64, run.metrics.same_context_steps, request);
  // The FP64 evidence: at the divergence step, and over the same-context steps for the run.
  RunOracleFigures figures;
  for (int64_t i = 0; i < run.metrics.same_context_steps && i < n; ++i) {
    std::vector<double> row_a64 = Row(a64, i), row_b64 = Row(b64, i);
    figures.fp64_rel_diff = MaxPropagatingNan(figures.fp64_rel_diff,
                                              RelativeDifference(row_b64, row_a64));
    figures.a_err = MaxPropagatingNan(figures.a_err, RelativeDifference(Row(logits_a, i), row_a64));
    figures.b_err = MaxPropagatingNan(figures.b_err, RelativeDifference(Row(logits_b, i), row_b64));
  }
  std::optional<Fp64Logits> at_divergence;
  if (run.first_divergence) {
    const int64_t index = run.first_divergence->step;
    at_divergence = Fp64Logits{Row(a64, index), Row(b64, index)};
  }
  Classify(outcome, request, at_divergence, figures);
  run.pass = CheckGates(run, request.thresholds).empty();
}

std::vector<Failure> CheckGates(const Run& run, const Thresholds& t) {
  std::vector<Failure> failures;
  // `!(value <= limit)` so that a NaN measurement fails the gate instead of slipping through.
  auto at_most = [&](const char* gate, double value, const std::optional<double>& limit) {
    // A metric this run could not compute (a top-k trace side) fails its gate, saying why.
    const std::string metric = std::string(gate) == "max_abs_logit_diff" ? "max_abs_diff" : "kl";
    auto missing = std::find_if(run.unavailable_metrics.begin(), run.unavailable_metrics.end(),
                                [&](const UnavailableMetric& u) { return u.metric == metric; });
    if (limit && missing != run.unavailable_metrics.end()) {
      failures.push_back({run.id, gate, std::nullopt, *limit,
                          fmt::format("{}: {} cannot be checked: {}", run.id, gate, missing->reason)});
      return;
    }
    if (limit && !(value <= *limit)) {
      failures.push_back({run.id, gate, value, *limit,
                          fmt::format("{}: {} {} > {}", run.id, gate, FormatValue(value),
                                      FormatValue(*limit))});
    }
  };
  const RunMetrics& m = run.metrics;
  at_most("max_kl", m.max_kl, t.max_kl);
  at_most("mean_kl", m.mean_kl, t.mean_kl);
  at_most("p99_kl", m.p99_kl, t.p99_kl);
  at_most("max_abs_logit_diff", m.max_abs_logit_diff, t.max_abs_logit_diff);
  if (t.min_top1_agreement && !(m.top1_agreement >= *t.min_top1_agreement)) {
    failures.push_back({run.id, "min_top1_agreement", m.top1_agreement, *t.min_top1_agreement,
                        fmt::format("{}: top1_agreement {} < {}", run.id,
                                    FormatValue(m.top1_agreement),
                                    FormatValue(*t.min_top1_agreement))});
  }
  if (t.min_first_divergence_step && run.first_divergence &&
      run.first_divergence->step < *t.min_first_divergence_step) {
    failures.push_back({run.id, "min_first_divergence_step",
                        static_cast<double>(run.first_divergence->step),
                        static_cast<double>(*t.min_first_divergence_step),
                        fmt::format("{}: first divergence at step {} < {}", run.id,
                                    run.first_divergence->step, *t.min_first_divergence_step)});
  }
  // The run's verdict (the first divergence's, or without a flip whether the logits differ by
  // more than rounding); schema-1 runs have only the first divergence's kind.
  const std::optional<std::string> kind =
      run.verdict_kind ? run.verdict_kind
                       : (run.first_divergence ? std::optional<std::string>(run.first_divergence->kind)
                                               : std::nullopt);
  if (t.fail_on_real_divergence && kind && (*kind == "real" || *kind == "precision_failure")) {
    const VerdictEvidence& e =
        run.verdict_kind ? run.verdict_evidence : run.first_divergence->evidence;
    failures.push_back({run.id, "fail_on_real_divergence", std::nullopt, std::nullopt,
                        run.first_divergence
                            ? fmt::format("{}: fail_on_real_divergence: {} divergence at step "
                                          "{}: {}",
                                          run.id, *kind, run.first_divergence->step, e.reason)
                            : fmt::format("{}: fail_on_real_divergence: {}: {}", run.id, *kind,
                                          e.reason)});
  }
  if (t.require_oracle_acceptable && run.oracle && run.oracle->acceptable == false) {
    const OracleResult& o = *run.oracle;
    failures.push_back({run.id, "require_oracle_acceptable", std::nullopt, std::nullopt,
                        fmt::format("{}: FP64 oracle: b error {} > {} x a error {}", run.id,
                                    FormatValue(o.b_rms_error_vs_reference), o.multiplier,
                                    FormatValue(o.a_rms_error_vs_reference))});
  }
  return failures;
}

std::vector<PairSummary> SummarizePairs(const std::vector<Run>& runs,
                                        const std::vector<StepRecord>& steps,
                                        int64_t max_new_tokens) {
  // Pairs in order of their first run, each with its runs in order.
  std::vector<PairSummary> identities;
  std::map<std::string, std::vector<const Run*>> runs_of_pair;
  for (const Run& run : runs) {
    const std::string id = PairId(run.pair);
    if (!runs_of_pair.count(id)) {
      PairSummary identity;
      identity.id = id;
      identity.pair = run.pair;
      identities.push_back(identity);
    }
    runs_of_pair[id].push_back(&run);
  }
  std::vector<PairSummary> pairs;
  for (const PairSummary& identity : identities) {
    pairs.push_back(SummarizePair(identity, runs_of_pair[identity.id], steps, max_new_tokens));
  }
  return pairs;
}

namespace {

nlohmann::json ConfigSummary(const model::ModelConfig& config) {
  return {{"vocab_size", config.vocab_size},
          {"hidden_size", config.hidden_size},
          {"num_layers", config.num_layers},
          {"num_heads", config.num_heads},
          {"num_kv_heads", config.num_kv_heads},
          {"head_dim", config.head_dim},
          {"intermediate_size", config.intermediate_size},
          {"torch_dtype", config.torch_dtype},
          {"rope_theta", config.rope_theta}};
}

// A case's models by label, from the session store, which knows them by what they are (source
// content, conversion, precision, device); the labels only name them here and in the outputs.
// Models with a path are opened at once (which checks their tensors against their configs);
// converted ones only by Convert, once the prompts and the device have been checked.
class ModelPool {
 public:
  ModelPool(const Case& c, session::ModelStore& store, c10::Device device)
      : case_(c), store_(store), device_(device) {
    for (const CaseModel& model : c.models) {
      // Recorded sides (traces, KLD-base files) are no checkpoints: RunCase replays them.
      if (!model.convert_from && !IsRecordedPath(model.path)) {
        models_[model.label] = store_.Open(model.path);
      }
    }
  }
  // Converts (through the store's conversion cache) the case's convert_from models.
  void Convert() {
    for (const CaseModel& model : case_.models) {
      if (!model.convert_from) continue;
      models_[model.label] = store_.OpenConverted(models_.at(*model.convert_from)->source_path,
                                                  "internlm2-to-llama");
    }
  }

  bool Has(const std::string& label) const { return models_.count(label) > 0; }
  const std::string& path(const std::string& label) const { return models_.at(label)->path; }
  // A converted model's config once converted; before, its source's (same vocabulary and sizes).
  const model::ModelConfig& config(const std::string& label) const {
    auto it = models_.find(label);
    if (it != models_.end()) return it->second->config;
    return models_.at(*case_.Model(label).convert_from)->config;
  }

  // `device`: the case's device unless given (the FP64 oracle may run elsewhere).
  forward::CausalLM& Get(const std::string& label, const forward::PrecisionPolicy& precision,
                         std::optional<c10::Device> device = std::nullopt) {
    const c10::Device where = device.value_or(device_);
    return Get(label, precision, forward::Placement::Single(where, config(label).num_layers));
  }
  // The model with its layers placed as planned (compare/pair_placement.h).
  forward::CausalLM& Get(const std::string& label, const forward::PrecisionPolicy& precision,
                         const forward::Placement& placement) {
    const session::StoredModel& model = *models_.at(label);
    load_keys_[Key(label, precision, placement)] =
        session::ModelStore::LoadKey(model, precision, placement);
    return store_.Get(model, precision, placement);
  }
  // "label@precision", with "@placement" unless it is the case's device alone.
  std::string Key(const std::string& label, const forward::PrecisionPolicy& precision,
                  const forward::Placement& placement) const {
    std::string key = fmt::format("{}@{}", label, precision.Text());
    if (placement.stages.size() != 1 || placement.first_device() != device_) {
      key += "@" + placement.Key();
    }
    return key;
  }

  // Releases every loaded model whose key ("label@precision[@device]") is not in `keep`.
  void KeepOnly(const std::set<std::string>& keep) {
    std::set<std::string> store_keys;
    for (const std::string& key : keep) {
      if (auto it = load_keys_.find(key); it != load_keys_.end()) store_keys.insert(it->second);
    }
    store_.KeepOnly(store_keys);
  }

 private:
  const Case& case_;
  session::ModelStore& store_;
  c10::Device device_;
  std::map<std::string, std::shared_ptr<const session::StoredModel>> models_;
  std::map<std::string, std::string> load_keys_;  // pool key -> store LoadKey
};

// A plain FP64 side (the oracle's own precision: no oracle beside it).
bool IsFp64(const forward::PrecisionPolicy& precision) {
  return precision == forward::PrecisionPolicy(forward::Precision::kFP64);
}

SideSpec MakeSide(const CaseSide& side, c10::Device device) {
  forward::Numerics numerics = forward::MakeNumerics(side.precision, device);
  return {side.model, side.precision.Text(), numerics.Describe(), numerics.emulated};
}

// Progress of a pair decoded one side after the other (nothing else is logged until both sides
// are done): "original@fp32 (side a) decoded alone: prompt 2/4".
void LogDecodedAlone(const CaseSide& side, bool side_a, size_t done, size_t total) {
  spdlog::info("{} (side {}) decoded alone: prompt {}/{}", SideLabel(side), side_a ? "a" : "b", done,
               total);
}

}  // namespace


RunOutputs RunCase(const Case& c, const SuiteOptions& options) {
  c10::Device device(c.device);
  // Deterministic kernels, cuBLAS's fixed workspace, no NaN fill of new memory (decode/pipeline.h).
  decode::pipeline::UseRunDeterminism();

  RunOutputs outputs;
  Summary& summary = outputs.summary;
  summary.verdict.gated = false;  // set by the first run with a gate on
  summary.parity_version = ParityVersion();
  summary.libtorch_version = LibtorchVersion();
  summary.case_ref = {c.name, c.path};
  if (c.path) summary.case_ref.path = std::filesystem::absolute(*c.path).lexically_normal().string();
  Settings& s = summary.settings;
  s.device = c.device;
  s.mode = decode::GreedyModeName(c.mode);
  s.teacher = c.teacher_is_a ? "a" : "b";
  s.max_new_tokens = c.max_new_tokens;
  s.seed = c.seed;
  s.chat = c.chat;
  s.top_k = c.top_k;
  s.near_tie_ulps = c.near_tie_ulps;
  s.oracle = c.oracle;
  s.range_watch = c.range_watch ? (*c.range_watch ? "on" : "off") : "auto";
  s.saturation_fraction = c.saturation_fraction;
  s.cuda_graphs = decode::GraphModeName(c.cuda_graphs);
  s.deterministic_algorithms = at::globalContext().deterministicAlgorithms();
  s.num_threads = at::get_num_threads();
  s.attention_backend = forward::DescribeAttentionSettings();
  summary.thresholds = c.thresholds;

  // Bad input is refused before anything expensive: the device, then the models' files (opening
  // checks tensors against configs), then the prompts; only then are models converted.
  for (const CasePair& case_pair : c.pairs) {
    forward::MakeNumerics(case_pair.a.precision, device);
    forward::MakeNumerics(case_pair.b.precision, device);
  }
  // Placements (forward/placement.h): each side's, and the oracle's; their devices checked now.
  const forward::PlacementSpec spec_a = forward::ParsePlacementSpec(c.SideDevices(true), "devices (side a)");
  const forward::PlacementSpec spec_b = forward::ParsePlacementSpec(c.SideDevices(false), "devices (side b)");
  const forward::PlacementSpec spec_oracle =
      forward::ParsePlacementSpec(c.OracleDevices(), "oracle_device");
  for (const forward::PlacementSpec* spec : {&spec_a, &spec_b, &spec_oracle}) {
    for (const forward::DeviceRequest& r : spec->devices) {
      forward::MakeNumerics(forward::Precision::kFP32, r.device);
    }
  }
  session::ModelStore store(options.cache_dir);
  ModelPool pool(c, store, device);
  // Recorded sides replay their recordings (compare/recorded_pair.h).
  std::map<std::string, RecordedSide> recorded;
  for (const CaseModel& model : c.models) {
    if (!model.convert_from && IsRecordedPath(model.path)) {
      recorded.emplace(model.label, RecordedSide::Open(model.path));
    }
  }
  for (const CaseModel& model : c.models) {
    if (model.convert_from && recorded.count(*model.convert_from)) {
      throw InputError(fmt::format("models.{}: convert_from \"{}\" is a recording, not a checkpoint",
                                   model.label, *model.convert_from));
    }
  }
  auto vocab_of = [&](const std::string& label) {
    auto it = recorded.find(label);
    return it != recorded.end() ? it->second.trace().vocab_size : pool.config(label).vocab_size;
  };

  // The tokenizer of the first model that has one (a converted copy carries the original's).
  std::optional<decode::Tokenizer> tokenizer;
  for (const CaseModel& model : c.models) {
    if (pool.Has(model.label) && session::HasTokenizer(pool.path(model.label))) {
      tokenizer = decode::Tokenizer::Load(pool.path(model.label));
      break;
    }
  }
  TextDecoder text = IdTextDecoder();
  std::vector<int64_t> eos_ids;
  for (const CaseModel& model : c.models) {
    if (recorded.count(model.label)) continue;
    eos_ids = pool.config(model.label).eos_token_ids;
    break;
  }
  if (tokenizer) {
    text.token_text = [&](int64_t id) { return tokenizer->TokenText(id); };
    text.decode = [&](const std::vector<int64_t>& ids) { return tokenizer->Decode(ids); };
    if (!tokenizer->eos_ids().empty()) eos_ids = tokenizer->eos_ids();
  }

  const std::string where = c.path.value_or(c.name);
  auto included = [&](size_t i) {
    return !options.include_prompt || options.include_prompt(static_cast<int64_t>(i));
  };
  std::vector<std::vector<int64_t>> prompt_tokens(c.prompts.size());
  int64_t included_prompts = 0;
  for (size_t i = 0; i < c.prompts.size(); ++i) {
    if (!included(i)) continue;
    ++included_prompts;
    const CasePrompt& prompt = c.prompts[i];
    std::vector<int64_t> ids = prompt.tokens;
    if (prompt.text) {
      if (!tokenizer) {
        throw InputError(fmt::format("{}: prompts[{}]: a text prompt needs a tokenizer.model in a "
                                     "model directory; give token ids instead", where, i));
      }
      ids = prompt.chat ? tokenizer->EncodeChat(*prompt.text) : tokenizer->Encode(*prompt.text, true);
    }
    for (const CaseModel& model : c.models) {
      session::CheckTokenIds(ids, vocab_of(model.label), model.label,
                             fmt::format("{}: prompts[{}]", where, i));
    }
    prompt_tokens[i] = ids;
  }

  // A recorded side must suit the mode and hold every prompt; a KLD-base file needs equal lengths.
  for (const CasePair& cp : c.pairs) {
    RecordedPairInputs in;
    if (auto it = recorded.find(cp.a.model); it != recorded.end()) in.a = &it->second;
    if (auto it = recorded.find(cp.b.model); it != recorded.end()) in.b = &it->second;
    if (!in.a && !in.b) continue;
    if (vocab_of(cp.a.model) != vocab_of(cp.b.model)) {
      throw InputError(fmt::format("pair {}/{}: vocabularies of {} and {} tokens; a recording is "
                                   "compared with the model it was made from (same vocabulary)",
                                   SideLabel(cp.a), SideLabel(cp.b), vocab_of(cp.a.model),
                                   vocab_of(cp.b.model)));
    }
    if (c.oracle) {
      spdlog::info("pair {}/{}: no FP64 oracle (a side is a recording, which has no FP64 run)",
                   SideLabel(cp.a), SideLabel(cp.b));
    }
    std::vector<RunRequest> probe;
    for (size_t i = 0; i < c.prompts.size(); ++i) {
      if (!included(i)) continue;
      RunRequest r;
      r.prompt_index = static_cast<int64_t>(i);
      r.prompt_tokens = prompt_tokens[i];
      r.greedy.mode = c.mode;
      r.greedy.teacher_is_a = c.teacher_is_a;
      probe.push_back(r);
    }
    CheckRecordedPair(in, probe);
  }
  const SaveRequest save{options.out_dir, options.save_traces || c.save_traces,
                         options.save_kld_base || c.save_kld_base};
  if (save.out_dir.empty() && (save.traces || save.kld_base)) {
    throw InputError("save_traces / save_kld_base: no output directory to write them into");
  }
  if (save.kld_base) {
    std::vector<std::vector<int64_t>> included_prompts_tokens;
    for (size_t i = 0; i < c.prompts.size(); ++i) {
      if (included(i)) included_prompts_tokens.push_back(prompt_tokens[i]);
    }
    CheckKldBaseRequest(included_prompts_tokens, c.max_new_tokens);
  }
  std::set<std::string> saved_names;

  if (options.claim_output) summary.run_id = options.claim_output();
  pool.Convert();
  for (const CaseModel& model : c.models) {
    if (auto it = recorded.find(model.label); it != recorded.end()) {
      summary.models[model.label] = it->second.Info();
      continue;
    }
    const model::ModelConfig& config = pool.config(model.label);
    ModelInfo info;
    info.path = pool.path(model.label);
    info.architecture = model::ArchitectureName(config.arch);
    info.convert_from = model.convert_from;
    info.variants = forward::DescribeVariants(forward::ReferenceVariants(config.arch));
    info.config = ConfigSummary(config);
    summary.models[model.label] = info;
  }

  const int64_t total_runs = static_cast<int64_t>(c.pairs.size()) * included_prompts;
  int64_t longest_prompt = 0;
  for (const auto& ids : prompt_tokens) {
    longest_prompt = std::max<int64_t>(longest_prompt, static_cast<int64_t>(ids.size()));
  }
  const int64_t sequence = longest_prompt + c.max_new_tokens;
  summary.settings.oracle_device = c.oracle ? c.OracleDevices() : "";

  // Memory, planned before anything is loaded (compare/pair_placement.h): a pair runs in lockstep
  // when both its models fit together, else one side after the other; each FP64 oracle model runs
  // alone. Each plan says what goes where and why, and goes into summary.json.
  std::vector<std::optional<PairPlacement>> placements(c.pairs.size());
  for (size_t p = 0; p < c.pairs.size(); ++p) {
    const CasePair& cp = c.pairs[p];
    if (recorded.count(cp.a.model) || recorded.count(cp.b.model)) continue;  // one model at most
    PairPlacementRequest request;
    request.model_a = cp.a.model;
    request.model_b = cp.b.model;
    request.label_a = SideLabel(cp.a);
    request.label_b = SideLabel(cp.b);
    request.config_a = &pool.config(cp.a.model);
    request.config_b = &pool.config(cp.b.model);
    request.precision_a = cp.a.precision;
    request.precision_b = cp.b.precision;
    request.spec_a = spec_a;
    request.spec_b = spec_b;
    request.spec_oracle = spec_oracle;
    request.sequence_length = sequence;
    request.oracle = c.oracle && !IsFp64(cp.a.precision) && !IsFp64(cp.b.precision);
    request.same_model = cp.a.model == cp.b.model;
    request.memory_limit = options.memory_limit_bytes;
    placements[p] = PlanPair(request);
    for (const auto& entry : PairPlacementJson(
             fmt::format("{}/{}", request.label_a, request.label_b), request, *placements[p])) {
      summary.placements.push_back(entry);
    }
  }

  int64_t done = 0;
  for (size_t p = 0; p < c.pairs.size() && !summary.interrupted; ++p) {
    const CasePair& case_pair = c.pairs[p];
    const RecordedSide* recorded_a =
        recorded.count(case_pair.a.model) ? &recorded.at(case_pair.a.model) : nullptr;
    const RecordedSide* recorded_b =
        recorded.count(case_pair.b.model) ? &recorded.at(case_pair.b.model) : nullptr;
    const std::optional<PairPlacement>& placed = placements[p];
    auto side_spec = [&](const CaseSide& side, const RecordedSide* rec, bool a_side) {
      if (rec) return SideSpec{side.model, rec->precision_text(), rec->Describe(), false};
      return MakeSide(side, placed ? (a_side ? placed->a : placed->b).first_device() : device);
    };
    Pair pair{side_spec(case_pair.a, recorded_a, true), side_spec(case_pair.b, recorded_b, false)};
    // A recorded side has no FP64 run: no oracle for its pairs (the evidence says so).
    const bool oracle = c.oracle && !recorded_a && !recorded_b &&
                        !IsFp64(case_pair.a.precision) && !IsFp64(case_pair.b.precision);
    // The range watch: as the case says, else on with the oracle or an fp16 module on a side; a
    // recorded side has no activations to watch.
    const bool range_watch =
        !recorded_a && !recorded_b &&
        c.range_watch.value_or(c.oracle || UsesFp16(case_pair.a.precision) ||
                               UsesFp16(case_pair.b.precision));
    const int64_t depth = std::max(recorded_a ? 0 : pool.config(case_pair.a.model).num_layers,
                                   recorded_b ? 0 : pool.config(case_pair.b.model).num_layers);
    std::vector<RunRequest> requests;
    for (size_t i = 0; i < c.prompts.size(); ++i) {
      if (!included(i)) continue;
      RunRequest request;
      request.prompt_index = static_cast<int64_t>(i);
      request.id = RunId(request.prompt_index, pair);
      request.prompt_text = c.prompts[i].text;
      request.chat = c.prompts[i].text && c.prompts[i].chat;
      request.prompt_tokens = prompt_tokens[i];
      request.pair = pair;
      request.precision_a = BudgetPrecision(case_pair.a.precision);
      request.precision_b = BudgetPrecision(case_pair.b.precision);
      request.greedy.mode = c.mode;
      request.greedy.max_new_tokens = c.max_new_tokens;
      request.greedy.eos_ids = eos_ids;
      request.greedy.teacher_is_a = c.teacher_is_a;
      request.greedy.graphs = c.cuda_graphs;
      request.top_k = c.top_k;
      request.near_tie_ulps = c.near_tie_ulps;
      request.thresholds = case_pair.thresholds;
      request.keep_logits = oracle || save.traces || save.kld_base;
      request.budget_name_a = BudgetName(case_pair.a.precision);
      request.budget_name_b = BudgetName(case_pair.b.precision);
      request.range_watch = range_watch;
      request.saturation_fraction = c.saturation_fraction;
      requests.push_back(request);
    }
    std::vector<RunOutcome> outcomes;
    try {
    if (recorded_a || recorded_b) {
      pool.KeepOnly({});
      RecordedPairInputs in;
      in.a = recorded_a;
      in.b = recorded_b;
      in.model = [&](bool a_side) -> forward::CausalLM& {
        const CaseSide& side = a_side ? case_pair.a : case_pair.b;
        return pool.Get(side.model, side.precision);
      };
      in.depth = depth;
      in.seed = c.seed;
      outcomes = RunRecordedPair(in, requests, text);
    } else if (placed->lockstep) {
      pool.KeepOnly({pool.Key(case_pair.a.model, case_pair.a.precision, placed->a),
                     pool.Key(case_pair.b.model, case_pair.b.precision, placed->b)});
      forward::CausalLM& model_a = pool.Get(case_pair.a.model, case_pair.a.precision, placed->a);
      forward::CausalLM& model_b = pool.Get(case_pair.b.model, case_pair.b.precision, placed->b);
      for (const RunRequest& request : requests) {
        at::manual_seed(c.seed);
        try {
          outcomes.push_back(RunPair(model_a, model_b, request, text));
        } catch (const Interrupted&) {
          // SIGINT: keep this pair's finished runs (without their oracle) and stop.
          summary.interrupted = true;
          break;
        }
      }
    } else {
      // One side after the other: A (or the teacher) first, every prompt, then B.
      const bool forced = c.mode == decode::GreedyMode::kTeacherForced;
      const bool first_is_a = !forced || c.teacher_is_a;
      const CaseSide& first = first_is_a ? case_pair.a : case_pair.b;
      const CaseSide& second = first_is_a ? case_pair.b : case_pair.a;
      std::vector<decode::SideRun> first_runs, second_runs;
      // Each side's range watch, taken while its model is loaded, on the stream it read.
      std::vector<std::optional<RangeWatch>> first_ranges, second_ranges;
      auto watch_side = [&](forward::CausalLM& model, const RunRequest& request,
                            const decode::SideRun& stream, size_t steps) {
        return range_watch ? std::optional<RangeWatch>(WatchSideRange(
                                 model, request.prompt_tokens, stream.tokens,
                                 static_cast<int64_t>(steps), c.saturation_fraction))
                           : std::nullopt;
      };
      pool.KeepOnly({});
      forward::CausalLM& first_model =
          pool.Get(first.model, first.precision, first_is_a ? placed->a : placed->b);
      for (const RunRequest& request : requests) {
        at::manual_seed(c.seed);
        first_runs.push_back(decode::DecodeAlone(first_model, request.prompt_tokens, request.greedy));
        first_ranges.push_back(watch_side(first_model, request, first_runs.back(),
                                          first_runs.back().logits.size()));
        LogDecodedAlone(first, first_is_a, first_runs.size(), requests.size());
      }
      pool.KeepOnly({});
      forward::CausalLM& second_model =
          pool.Get(second.model, second.precision, first_is_a ? placed->b : placed->a);
      for (size_t r = 0; r < requests.size(); ++r) {
        at::manual_seed(c.seed);
        try {
          const RunRequest& request = requests[r];
          second_runs.push_back(
              forced ? decode::FollowAlone(second_model, request.prompt_tokens, first_runs[r])
                     : decode::DecodeAlone(second_model, request.prompt_tokens, request.greedy));
          // A follower read the teacher's stream.
          second_ranges.push_back(watch_side(second_model, request,
                                             forced ? first_runs[r] : second_runs.back(),
                                             second_runs.back().logits.size()));
        } catch (const Interrupted&) {
          // SIGINT: the runs whose two sides are both decoded are finished; measure and keep them.
          summary.interrupted = true;
          break;
        }
        LogDecodedAlone(second, !first_is_a, second_runs.size(), requests.size());
      }
      pool.KeepOnly({});
      for (size_t r = 0; r < second_runs.size(); ++r) {
        const decode::SideRun& a = first_is_a ? first_runs[r] : second_runs[r];
        const decode::SideRun& b = first_is_a ? second_runs[r] : first_runs[r];
        const std::optional<RangeWatch> none;
        const std::optional<RangeWatch>& second_range =
            r < second_ranges.size() ? second_ranges[r] : none;
        const std::optional<RangeWatch>& range_a = first_is_a ? first_ranges[r] : second_range;
        const std::optional<RangeWatch>& range_b = first_is_a ? second_range : first_ranges[r];
        outcomes.push_back(RunDecodedPair(a, b, depth, requests[r], text, range_a, range_b));
      }
    }
    if (oracle && !summary.interrupted) {
      // The run-precision models go before the FP64 ones come; each FP64 model alone, one
      // teacher-forced forward per stream.
      pool.KeepOnly({});
      std::vector<at::Tensor> a64(outcomes.size()), b64(outcomes.size());
      const bool same_model = case_pair.a.model == case_pair.b.model;
      for (const bool a_side : {true, false}) {
        if (!a_side && same_model) break;
        const std::string& label = a_side ? case_pair.a.model : case_pair.b.model;
        auto started = std::chrono::steady_clock::now();
        const forward::Placement& placement64 = a_side ? *placed->oracle_a : *placed->oracle_b;
        forward::CausalLM& model64 = pool.Get(label, forward::Precision::kFP64, placement64);
        const double load_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        started = std::chrono::steady_clock::now();
        for (size_t r = 0; r < outcomes.size(); ++r) {
          if (outcomes[r].steps.empty()) continue;
          ThrowIfInterrupted();  // SIGINT: between two teacher-forced FP64 forwards
          if (a_side || same_model) a64[r] = OracleLogits(model64, outcomes[r], requests[r], true);
          if (!a_side || same_model) {
            b64[r] = same_model && outcomes[r].input_a == outcomes[r].input_b
                         ? a64[r]
                         : OracleLogits(model64, outcomes[r], requests[r], false);
          }
        }
        spdlog::info("FP64 oracle: {}@fp64 on {}: loaded in {:.1f} s, {} teacher-forced run(s) in "
                     "{:.1f} s", label, placement64.Describe(), load_s, outcomes.size(),
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        pool.KeepOnly({});
      }
      for (size_t r = 0; r < outcomes.size(); ++r) {
        if (!outcomes[r].steps.empty()) ApplyOracle(outcomes[r], a64[r], b64[r], requests[r]);
      }
    }
    } catch (const Interrupted&) {
      // SIGINT while decoding the first side alone (no run of this pair is finished: `outcomes` is
      // empty) or running the oracle (every run is decoded and measured: kept without its oracle,
      // as in lockstep; ApplyOracle runs only once all FP64 logits are in).
      summary.interrupted = true;
    }
    if (summary.interrupted) {
      spdlog::warn("interrupted: keeping the {} finished run(s)", done + outcomes.size());
    } else {
      auto path_of = [&](const std::string& label, const RecordedSide* rec) {
        return rec ? rec->path() : pool.path(label);
      };
      for (SavedTrace& t : SavePairTraces(save, c, case_pair, pair, requests, outcomes,
                                          path_of(case_pair.a.model, recorded_a),
                                          path_of(case_pair.b.model, recorded_b), recorded_a,
                                          recorded_b, saved_names)) {
        summary.traces.push_back(std::move(t));
      }
    }
    for (size_t r = 0; r < outcomes.size(); ++r) {
      RunOutcome& outcome = outcomes[r];
      ++done;
      const Run& run = outcome.run;
      spdlog::info("[{}/{}] {}: {} steps, {}, max KL {:.3g}, {:.1f} s", done, total_runs, run.id,
                   run.metrics.steps,
                   run.first_divergence
                       ? fmt::format("first divergence at step {}: {}", run.first_divergence->step,
                                     DescribeVerdict(*run.first_divergence))
                       : std::string("no divergence"),
                   run.metrics.max_kl, run.elapsed_s);
      if (AnyGate(requests[r].thresholds)) summary.verdict.gated = true;
      for (Failure& failure : CheckGates(run, requests[r].thresholds)) {
        summary.verdict.failures.push_back(std::move(failure));
      }
      summary.runs.push_back(run);
      outputs.steps.insert(outputs.steps.end(), outcome.steps.begin(), outcome.steps.end());
    }
  }
  pool.KeepOnly({});
  summary.verdict.pass = summary.verdict.failures.empty();
  summary.pairs = SummarizePairs(summary.runs, outputs.steps, c.max_new_tokens);
  summary.created_utc = NowUtc();
  return outputs;
}

int FinishRun(const std::string& out_dir, const RunOutputs& outputs, bool print_table) {
  WriteRunOutputs(out_dir, outputs);
  if (print_table) std::cout << report::FormatSummaryTable(outputs.summary) << std::flush;
  spdlog::info("wrote {}/summary.json and {}/steps.jsonl", out_dir, out_dir);
  if (outputs.summary.interrupted) {
    spdlog::warn("interrupted: {} holds the {} run(s) that finished, marked interrupted",
                 out_dir, outputs.summary.runs.size());
    return kExitInterrupted;
  }
  return outputs.summary.verdict.pass ? kExitOk : kExitDifferent;
}

}  // namespace parity::compare
