#include "harness/diagnose/localize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/compare/metrics.h"
#include "harness/compare/verdict.h"
#include "harness/core/error.h"
#include "harness/decode/greedy.h"
#include "harness/forward/memory_plan.h"
#include "harness/diagnose/greedy_stream.h"
#include "harness/diagnose/range_watch.h"

namespace parity::diagnose {

std::string PointName(forward::ObservationPoint point, int64_t layer) {
  if (layer < 0) return forward::ObservationPointName(point);
  return fmt::format("layer {} {}", layer, forward::ObservationPointName(point));
}

std::vector<PointSequence> ObserveAllPositions(forward::CausalLM& model,
                                               const std::vector<int64_t>& tokens) {
  if (tokens.empty()) throw InputError("localize: no tokens to observe");
  const int64_t length = static_cast<int64_t>(tokens.size());
  std::vector<PointSequence> values;
  // value is [1, T, D] (or [1, T or 1, V] for the logits): every position, as FP64.
  forward::Observer observer = [&values, length](const forward::Observation& observation) {
    const at::Tensor& v = observation.value;
    values.push_back({observation.point, observation.layer, length - v.size(1),
                      v.select(0, 0).to(at::kCPU).to(at::kDouble).clone()});
  };
  at::Tensor ids = at::tensor(at::ArrayRef<int64_t>(tokens), at::kLong).view({1, -1});
  forward::KVCache cache;
  model.Forward(ids.to(model.numerics().device), cache, at::Tensor(), &observer);
  return values;
}

std::vector<std::vector<PointValue>> PointsAtPosition(
    const std::vector<const std::vector<PointSequence>*>& runs, int64_t position) {
  std::vector<std::vector<PointValue>> out(runs.size());
  size_t count = runs.empty() ? 0 : runs[0]->size();
  for (const auto* run : runs) count = std::min(count, run->size());
  for (size_t i = 0; i < count; ++i) {
    bool everywhere = true;
    for (const auto* run : runs) everywhere = everywhere && (*run)[i].first_position <= position;
    if (!everywhere) continue;
    for (size_t r = 0; r < runs.size(); ++r) {
      const PointSequence& s = (*runs[r])[i];
      out[r].push_back({s.point, s.layer, s.values.select(0, position - s.first_position)});
    }
  }
  // Points beyond the shortest run are kept so that ComparePoints reports the layer mismatch.
  for (size_t r = 0; r < runs.size(); ++r) {
    for (size_t i = count; i < runs[r]->size(); ++i) {
      const PointSequence& s = (*runs[r])[i];
      if (s.first_position <= position) {
        out[r].push_back({s.point, s.layer, s.values.select(0, position - s.first_position)});
      }
    }
  }
  return out;
}

double RelRmsError(const at::Tensor& x, const at::Tensor& ref) {
  const double diff = (x - ref).pow(2).mean().sqrt().item<double>();
  const double scale = ref.pow(2).mean().sqrt().item<double>();
  if (scale == 0) return diff == 0 ? 0 : std::numeric_limits<double>::infinity();
  return diff / scale;
}

std::vector<PointError> ComparePoints(const std::vector<PointValue>& a,
                                      const std::vector<PointValue>& b,
                                      const std::vector<PointValue>& a64,
                                      const std::vector<PointValue>& b64) {
  if (a.size() != b.size() || a.size() != a64.size() || a.size() != b64.size()) {
    throw InputError(fmt::format(
        "localize: the models observe different numbers of points (A {}, B {}, A fp64 {}, B fp64 "
        "{}): do they have the same number of layers?", a.size(), b.size(), a64.size(),
        b64.size()));
  }
  std::vector<PointError> errors;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::vector<const PointValue*> all = {&a[i], &b[i], &a64[i], &b64[i]};
    for (const PointValue* other : all) {
      if (other->point != a[i].point || other->layer != a[i].layer ||
          !other->value.sizes().equals(a[i].value.sizes())) {
        throw InputError(fmt::format("localize: point {} of the two models differ ({} [{}] vs {})",
                                     i, PointName(a[i].point, a[i].layer),
                                     fmt::join(a[i].value.sizes(), ", "),
                                     PointName(other->point, other->layer)));
      }
    }
    PointError e;
    e.name = PointName(a[i].point, a[i].layer);
    e.layer = a[i].layer;
    e.sub_block = forward::ObservationPointName(a[i].point);
    const at::Tensor& va = a[i].value;
    const at::Tensor& vb = b[i].value;
    e.rel_rms_error = RelRmsError(vb, va);
    e.max_abs_error = (va - vb).abs().max().item<double>();
    const double norms = va.norm().item<double>() * vb.norm().item<double>();
    if (norms > 0) e.cosine = (va * vb).sum().item<double>() / norms;
    e.a_err_vs_fp64 = RelRmsError(va, a64[i].value);
    e.b_err_vs_fp64 = RelRmsError(vb, b64[i].value);
    e.fp64_rel_diff = RelRmsError(b64[i].value, a64[i].value);
    errors.push_back(e);
  }
  return errors;
}

Departure FindFirstDeparture(const std::vector<PointError>& points) {
  Departure departure;
  for (size_t i = 0; i < points.size(); ++i) {
    const PointError& p = points[i];
    if (p.fp64_rel_diff > std::max(kFp64Resolution, p.noise_floor())) {
      departure.kind = "real";
      departure.index = static_cast<int64_t>(i);
      departure.reason = fmt::format(
          "the FP64 runs of A and B differ by {:.3g} (relative RMS) at {}, above both FP64 "
          "resolution ({:.0e}) and the run's own rounding noise ({:.3g}): the two models compute "
          "different functions from here on",
          p.fp64_rel_diff, p.name, kFp64Resolution, p.noise_floor());
      return departure;
    }
  }
  for (size_t i = 0; i < points.size(); ++i) {
    const PointError& p = points[i];
    if (p.rel_rms_error > 0) {
      departure.kind = "rounding";
      departure.index = static_cast<int64_t>(i);
      departure.reason = fmt::format(
          "A and B first differ at {} (relative RMS {:.3g}), but their FP64 runs agree there and "
          "at every later point to within the run's rounding noise: the difference is rounding "
          "(different operation order or kernels), not a different function",
          p.name, p.rel_rms_error);
      return departure;
    }
  }
  departure.reason = "A and B give bit-identical values at every observed point";
  return departure;
}

int64_t Fp64FirstDifference(const std::vector<PointError>& points) {
  for (size_t i = 0; i < points.size(); ++i) {
    if (points[i].fp64_rel_diff > kFp64Resolution) return static_cast<int64_t>(i);
  }
  return -1;
}

void ClassifyAtLogits(LocalizeResult& result, const std::vector<PointSequence>& a,
                      const std::vector<PointSequence>& b, const std::vector<PointSequence>& a64,
                      const std::vector<PointSequence>& b64, forward::Precision precision,
                      int64_t depth) {
  if (a.empty() || b.empty() || a64.empty() || b64.empty()) return;
  if (a.back().point != forward::ObservationPoint::kLogits) return;
  auto last = [](const PointSequence& p) {
    return compare::ToDoubleVector(p.values.select(0, p.values.size(0) - 1));
  };
  std::vector<double> la = last(a.back()), lb = last(b.back());
  const int64_t token_a = compare::Argmax(la), token_b = compare::Argmax(lb);
  const bool finite = compare::CountNonFinite(la) == 0 && compare::CountNonFinite(lb) == 0;
  if (token_a == token_b && finite) return;  // no flip at this step
  compare::VerdictInputs in;
  in.a = &la;
  in.b = &lb;
  in.token_a = token_a;
  in.token_b = token_b;
  in.precision_a = in.precision_b = precision;
  in.depth = depth;
  in.oracle = compare::Fp64Logits{last(a64.back()), last(b64.back())};
  compare::Classification c = compare::ClassifyDivergence(in);
  result.verdict_kind = compare::DivergenceKindName(c.kind);
  result.verdict_evidence = c.evidence;
}

namespace {

std::string TokenText(const std::function<std::string(int64_t)>& token_text, int64_t token) {
  return token_text ? token_text(token) : fmt::format("<{}>", token);
}

}  // namespace

void ComparePositions(const std::vector<PointSequence>& a, const std::vector<PointSequence>& b,
                      const std::vector<PointSequence>& a64, const std::vector<PointSequence>& b64,
                      const std::function<std::string(int64_t)>& token_text,
                      LocalizeResult& result) {
  const int64_t length = static_cast<int64_t>(result.tokens.size());
  const std::vector<const std::vector<PointSequence>*> runs = {&a, &b, &a64, &b64};
  std::optional<int64_t> real_position;
  std::vector<PointError> chosen;
  Departure chosen_departure;
  result.positions.clear();
  result.fp64_first_part = SequencePoint();
  for (int64_t p = 0; p < length; ++p) {
    std::vector<std::vector<PointValue>> values = PointsAtPosition(runs, p);
    std::vector<PointError> points = ComparePoints(values[0], values[1], values[2], values[3]);
    const Departure departure = FindFirstDeparture(points);
    const int64_t fp64_index = Fp64FirstDifference(points);
    PositionSummary summary;
    summary.position = p;
    summary.token = result.tokens[p];
    summary.departure_kind = departure.kind;
    if (departure.index >= 0) summary.departure_point = points[departure.index].name;
    if (fp64_index >= 0) summary.fp64_first_point = points[fp64_index].name;
    for (const PointError& e : points) {
      summary.max_fp64_rel_diff = std::max(summary.max_fp64_rel_diff, e.fp64_rel_diff);
      summary.max_rel_rms_error = std::max(summary.max_rel_rms_error, e.rel_rms_error);
    }
    result.positions.push_back(summary);
    if (fp64_index >= 0 && result.fp64_first_part.position < 0) {
      result.fp64_first_part.position = p;
      result.fp64_first_part.token = result.tokens[p];
      result.fp64_first_part.token_text = TokenText(token_text, result.tokens[p]);
      result.fp64_first_part.point = points[fp64_index];
    }
    if (!real_position && (departure.kind == "real" || p == length - 1)) {
      if (departure.kind == "real") real_position = p;
      chosen = std::move(points);
      chosen_departure = departure;
      result.position = p;
    }
  }
  result.position_source = real_position ? "first_real" : "last";
  result.position_token = result.tokens[result.position];
  result.position_text = TokenText(token_text, result.position_token);
  result.points = std::move(chosen);
  result.first_departure = chosen_departure;
  result.fp64_first_difference = Fp64FirstDifference(result.points);
}

namespace {

// The range watch of both sides; a precision_failure verdict then names where values left the
// range (B's first, as the candidate side, else A's).
void AddRangeWatch(LocalizeResult& result, const std::vector<PointSequence>& a,
                   const std::vector<PointSequence>& b, const forward::PrecisionPolicy& policy_a,
                   const forward::PrecisionPolicy& policy_b,
                   double saturation_fraction = compare::kDefaultSaturationFraction,
                   int64_t prompt_length = 0) {
  result.range_a = WatchRange(a, policy_a, saturation_fraction, prompt_length);
  result.range_b = WatchRange(b, policy_b, saturation_fraction, prompt_length);
  if (result.verdict_kind == std::string("precision_failure") &&
      !result.verdict_evidence.overflow_point) {
    result.verdict_evidence.overflow_point = result.range_b->first_out_of_range
                                                 ? result.range_b->first_out_of_range
                                                 : result.range_a->first_out_of_range;
  }
}
void AddRangeWatch(LocalizeResult& result, const std::vector<PointSequence>& a,
                   const std::vector<PointSequence>& b, const forward::PrecisionPolicy& policy,
                   double saturation_fraction, int64_t prompt_length) {
  AddRangeWatch(result, a, b, policy, policy, saturation_fraction, prompt_length);
}

}  // namespace

LocalizeResult LocalizeTokens(forward::CausalLM& a, forward::CausalLM& b, forward::CausalLM& a64,
                              forward::CausalLM& b64, const std::vector<int64_t>& tokens) {
  LocalizeResult result;
  result.tokens = tokens;
  result.numerics = a.numerics().Describe();
  std::vector<PointSequence> va = ObserveAllPositions(a, tokens);
  std::vector<PointSequence> vb = ObserveAllPositions(b, tokens);
  std::vector<PointSequence> va64 = ObserveAllPositions(a64, tokens);
  std::vector<PointSequence> vb64 = ObserveAllPositions(b64, tokens);
  ComparePositions(va, vb, va64, vb64, nullptr, result);
  ClassifyAtLogits(result, va, vb, va64, vb64, compare::BudgetPrecision(a.numerics().policy),
                   std::max(a.config().num_layers, b.config().num_layers));
  AddRangeWatch(result, va, vb, a.numerics().policy, b.numerics().policy);
  return result;
}

LocalizeResult Localize(const ModelSource& a, const ModelSource& b,
                        const std::vector<int64_t>& prompt, const LocalizeOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (prompt.empty()) throw InputError("localize: the prompt has no tokens");
  if (options.step && *options.step < 0) {
    throw InputError(fmt::format("--step: expected >= 0, got {}", *options.step));
  }
  const forward::Numerics numerics = forward::MakeNumerics(options.precision, options.device);
  const forward::Numerics fp64 = forward::MakeNumerics(forward::Precision::kFP64, options.device);

  std::vector<PointSequence> va, vb;
  int64_t step = 0;
  std::string step_source;
  std::vector<int64_t> stream;  // A's greedy tokens before the step
  std::optional<int64_t> token_a, token_b;
  int64_t depth = 1;
  {
    std::unique_ptr<forward::CausalLM> model_a = a.Build(numerics);
    std::unique_ptr<forward::CausalLM> model_b = b.Build(numerics);
    depth = std::max(model_a->config().num_layers, model_b->config().num_layers);
    if (options.step) {
      step = *options.step;
      step_source = "given";
      stream = GreedyStream(*model_a, prompt, step, options.eos_ids);
      if (static_cast<int64_t>(stream.size()) < step) {
        throw InputError(fmt::format(
            "--step {}: A's greedy output ends with EOS after {} tokens", step, stream.size()));
      }
    } else {
      decode::GreedyOptions greedy;
      greedy.mode = decode::GreedyMode::kFree;
      greedy.max_new_tokens = options.max_new_tokens;
      greedy.eos_ids = options.eos_ids;
      std::optional<int64_t> divergence;
      decode::GreedyResult run = decode::RunLockstep(
          *model_a, *model_b, prompt, greedy, [&](const decode::GreedyStep& s) {
            if (!divergence && s.token_a != s.token_b) {
              divergence = s.step;
              token_a = s.token_a;
              token_b = s.token_b;
            }
          });
      if (divergence) {
        step = *divergence;
        step_source = "first_divergence";
        stream.assign(run.tokens_a.begin(), run.tokens_a.begin() + step);
      } else {
        step = 0;
        step_source = "no_divergence";
      }
    }
    std::vector<int64_t> tokens = prompt;
    tokens.insert(tokens.end(), stream.begin(), stream.end());
    va = ObserveAllPositions(*model_a, tokens);
    vb = ObserveAllPositions(*model_b, tokens);
  }
  std::vector<int64_t> tokens = prompt;
  tokens.insert(tokens.end(), stream.begin(), stream.end());
  // FP64 models one at a time: at 24 layers x 1024 wide each is ~2 GB. Planned before loading.
  for (const ModelSource* source : {&a, &b}) {
    forward::RequireFits({forward::EstimateFootprint(source->config, forward::Precision::kFP64,
                                                     options.device,
                                                     static_cast<int64_t>(tokens.size()),
                                                     source->label + "@fp64")},
                         options.device, "localize: FP64 run of " + source->label);
  }
  std::vector<PointSequence> va64 = ObserveAllPositions(*a.Build(fp64), tokens);
  std::vector<PointSequence> vb64 = ObserveAllPositions(*b.Build(fp64), tokens);

  LocalizeResult result;
  result.label_a = a.label;
  result.label_b = b.label;
  result.numerics = numerics.Describe();
  result.step = step;
  result.step_source = step_source;
  result.prompt_length = static_cast<int64_t>(prompt.size());
  result.tokens = tokens;
  result.divergence_token_a = token_a;
  result.divergence_token_b = token_b;
  ComparePositions(va, vb, va64, vb64, options.token_text, result);
  ClassifyAtLogits(result, va, vb, va64, vb64, compare::BudgetPrecision(options.precision), depth);
  AddRangeWatch(result, va, vb, options.precision, options.saturation_fraction,
                result.prompt_length);
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace parity::diagnose
