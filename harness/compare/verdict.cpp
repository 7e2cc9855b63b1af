#include "harness/compare/verdict.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "harness/compare/metrics.h"
#include "harness/compare/range_watch.h"

namespace parity::compare {
namespace {

std::string Num(double value) { return fmt::format("{:.3g}", value); }

// NaN-propagating max: a NaN never vanishes from a maximum.
double MaxNan(double x, double y) {
  if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<double>::quiet_NaN();
  return std::max(x, y);
}

const char* Side(bool a, bool b) { return a && b ? "both" : (a ? "a" : "b"); }

std::string NameOf(const SideEvidence& side, forward::Precision precision) {
  return side.budget_name.empty() ? forward::PrecisionName(precision) : side.budget_name;
}

// The coarser side's budget in words ("bf16", "tf32 (fp16-sized budget)"); both names when the
// two sides share a budget precision under different names ("fp16 / tf32 (fp16-sized budget)").
std::string CoarserName(forward::Precision a, forward::Precision b, const SideEvidence& side_a,
                        const SideEvidence& side_b) {
  const forward::Precision coarser = CoarserPrecision(a, b);
  const std::string name_a = NameOf(side_a, a), name_b = NameOf(side_b, b);
  if (a == b) return name_a == name_b ? name_a : name_a + " / " + name_b;
  return coarser == a ? name_a : name_b;
}

// The first point where a side's activations leave their range at a step <= `step` (null without
// a watch).
std::optional<std::string> OutOfRangeBy(const SideEvidence& side, int64_t step) {
  return side.range ? FirstOutOfRangeBy(*side.range, step) : std::nullopt;
}

}  // namespace

std::string BudgetName(const forward::PrecisionPolicy& policy) {
  const forward::Precision budget = BudgetPrecision(policy);
  if (policy.tf32 && budget != policy.Coarsest()) {
    return fmt::format("tf32 ({}-sized budget)", forward::PrecisionName(budget));
  }
  return forward::PrecisionName(budget);
}

forward::Precision BudgetPrecision(const forward::PrecisionPolicy& policy) {
  const forward::Precision coarsest = policy.Coarsest();
  if (policy.tf32 && (coarsest == forward::Precision::kFP32 || coarsest == forward::Precision::kFP64)) {
    return forward::Precision::kFP16;
  }
  return coarsest;
}

double RoundingBudget(forward::Precision precision, int64_t depth) {
  const double unit_roundoff = std::ldexp(1.0, -SignificantBits(precision));
  const double budget =
      kRoundingBudgetFactor * unit_roundoff * std::sqrt(static_cast<double>(std::max<int64_t>(depth, 1)));
  return std::max(budget, kFp64Resolution);
}

double RelativeDifference(const std::vector<double>& x, const std::vector<double>& ref) {
  const size_t n = std::min(x.size(), ref.size());
  if (n == 0) return 0;
  double mean = 0;
  for (size_t i = 0; i < n; ++i) mean += ref[i];
  mean /= static_cast<double>(n);
  double sum_sq = 0, var = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = x[i] - ref[i];
    sum_sq += d * d;
    var += (ref[i] - mean) * (ref[i] - mean);
  }
  if (std::isnan(sum_sq) || std::isnan(var) || std::isinf(sum_sq) || std::isinf(var)) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  if (var == 0) return sum_sq == 0 ? 0 : std::numeric_limits<double>::infinity();
  return std::sqrt(sum_sq / var);
}

int64_t CountNonFinite(const std::vector<double>& values) {
  int64_t count = 0;
  for (double v : values) count += std::isfinite(v) ? 0 : 1;
  return count;
}

const char* DivergenceKindName(DivergenceKind kind) {
  switch (kind) {
    case DivergenceKind::kRounding: return "rounding";
    case DivergenceKind::kReal: return "real";
    case DivergenceKind::kPrecisionFailure: return "precision_failure";
    case DivergenceKind::kUndetermined: return "undetermined";
  }
  return "undetermined";
}

std::optional<DivergenceKind> ParseDivergenceKind(const std::string& name) {
  if (name == "rounding" || name == "near_tie") return DivergenceKind::kRounding;
  if (name == "real") return DivergenceKind::kReal;
  if (name == "precision_failure") return DivergenceKind::kPrecisionFailure;
  if (name == "undetermined") return DivergenceKind::kUndetermined;
  return std::nullopt;
}

Classification ClassifyDivergence(const VerdictInputs& in) {
  const std::vector<double>& a = *in.a;
  const std::vector<double>& b = *in.b;
  const forward::Precision coarser = CoarserPrecision(in.precision_a, in.precision_b);
  Classification c;
  VerdictEvidence& e = c.evidence;
  e.precision = CoarserName(in.precision_a, in.precision_b, in.side_a, in.side_b);
  e.depth = in.depth;
  const std::string name_a = NameOf(in.side_a, in.precision_a);
  const std::string name_b = NameOf(in.side_b, in.precision_b);
  FlipAnalysis flip = AnalyzeFlip(a, b, in.token_a, in.token_b, coarser, in.near_tie_ulps);
  c.flip_gap = flip.flip_gap;
  c.tolerance = flip.tolerance;

  // 1. Non-finite logits, at this step or an earlier same-context one.
  bool bad_a = CountNonFinite(a) > 0, bad_b = CountNonFinite(b) > 0;
  for (const StepRecord& s : in.earlier) {
    bad_a = bad_a || s.nonfinite_a > 0;
    bad_b = bad_b || s.nonfinite_b > 0;
  }
  // The range watch, when it ran: where each side's activations first leave their range by the
  // divergence step (it names the point for non-finite logits too).
  const int64_t step = in.at ? in.at->step : std::numeric_limits<int64_t>::max();
  const std::optional<std::string> out_a = OutOfRangeBy(in.side_a, step);
  const std::optional<std::string> out_b = OutOfRangeBy(in.side_b, step);
  if (bad_a || bad_b) {
    c.kind = DivergenceKind::kPrecisionFailure;
    e.source = "non_finite";
    e.failing_side = Side(bad_a, bad_b);
    std::optional<std::string> point = bad_a ? in.overflow_point_a : in.overflow_point_b;
    if (const std::optional<std::string>& watched = bad_a ? out_a : out_b) point = watched;
    e.overflow_point = point;
    e.reason = fmt::format(
        "{} logits contain inf or NaN{}: the {} computation overflowed or broke down, so its tokens "
        "mean nothing from here",
        bad_a && bad_b ? "both sides'" : (bad_a ? "A's" : "B's"),
        point ? fmt::format(" (values first leave the finite range at {})", *point) : "",
        bad_a ? name_a : name_b);
    return c;
  }
  if (out_a || out_b) {
    c.kind = DivergenceKind::kPrecisionFailure;
    e.source = "range_watch";
    e.failing_side = Side(out_a.has_value(), out_b.has_value());
    e.overflow_point = out_a ? out_a : out_b;
    const RangeWatch& watch = out_a ? *in.side_a.range : *in.side_b.range;
    e.reason = fmt::format(
        "{}'s activations leave the finite range of {} at {} by this step, though its logits stay "
        "finite: its numbers broke down there (range watch: {})",
        out_a ? "A" : "B", out_a ? name_a : name_b, *e.overflow_point,
        DescribeRangeWatch(out_a ? "A" : "B", watch));
    return c;
  }

  // 2. The FP64 oracle.
  if (in.oracle) {
    const Fp64Logits& o = *in.oracle;
    e.source = "oracle";
    e.fp64_rel_diff = RelativeDifference(o.b64, o.a64);
    e.fp64_token_a = Argmax(o.a64);
    e.fp64_token_b = Argmax(o.b64);
    const bool agrees_a = *e.fp64_token_a == in.token_a, agrees_b = *e.fp64_token_a == in.token_b;
    e.fp64_agrees_with = agrees_a || agrees_b ? Side(agrees_a, agrees_b) : "neither";
    e.a_err_vs_fp64 = RelativeDifference(a, o.a64);
    e.b_err_vs_fp64 = RelativeDifference(b, o.b64);
    e.budget_a = RoundingBudget(in.precision_a, in.depth);
    e.budget_b = RoundingBudget(in.precision_b, in.depth);
    const bool over_a = !(*e.a_err_vs_fp64 <= kPrecisionFailureFactor * *e.budget_a);
    const bool over_b = !(*e.b_err_vs_fp64 <= kPrecisionFailureFactor * *e.budget_b);
    std::string fp64_words =
        *e.fp64_agrees_with == "neither"
            ? fmt::format("FP64 picks token {}, neither side's", *e.fp64_token_a)
            : fmt::format("FP64 picks {}'s token", *e.fp64_agrees_with == "a" ? "A" : "B");
    if (over_a || over_b) {
      c.kind = DivergenceKind::kPrecisionFailure;
      e.failing_side = Side(over_a, over_b);
      const bool side_a = over_a;
      e.reason = fmt::format(
          "{}'s error against its own FP64 run is {} (relative), more than {}x the {} that "
          "rounding at {} over {} layers makes: that side's precision failed (overflow, saturation "
          "or cancellation), not the conversion",
          side_a ? "A" : "B", Num(side_a ? *e.a_err_vs_fp64 : *e.b_err_vs_fp64),
          kPrecisionFailureFactor, Num(side_a ? *e.budget_a : *e.budget_b),
          side_a ? name_a : name_b, in.depth);
    } else if (!(*e.fp64_rel_diff <= kFp64Resolution)) {
      c.kind = DivergenceKind::kReal;
      const bool fp64_diverges = *e.fp64_token_a != *e.fp64_token_b;
      e.reason = fmt::format(
          "the FP64 runs of A and B differ by {} (relative) on the same tokens, far above FP64's "
          "resolution ({:.0e}): A and B compute different functions; {}",
          Num(*e.fp64_rel_diff), kFp64Resolution,
          fp64_diverges
              ? fmt::format("the FP64 pair itself parts here (tokens {} vs {})",
                            *e.fp64_token_a, *e.fp64_token_b)
              : fmt::format("the FP64 pair agrees on this token ({}), and the sides' rounding "
                            "errors ({} / {}) decide the flip on top of that difference",
                            fp64_words, Num(*e.a_err_vs_fp64), Num(*e.b_err_vs_fp64)));
    } else {
      c.kind = DivergenceKind::kRounding;
      e.reason = fmt::format(
          "the FP64 runs of A and B agree ({} relative) on the same tokens: one function, rounded "
          "differently; {}; the sides' errors against FP64 ({} / {}) are within rounding at {} "
          "over {} layers ({} / {})",
          Num(*e.fp64_rel_diff), fp64_words, Num(*e.a_err_vs_fp64), Num(*e.b_err_vs_fp64),
          e.precision, in.depth, Num(*e.budget_a), Num(*e.budget_b));
    }
    return c;
  }

  // 3. The noise this run shows.
  e.rounding_budget = RoundingBudget(coarser, in.depth);
  e.noise_steps = static_cast<int64_t>(in.earlier.size());
  double rel = in.at && in.at->nmse ? std::sqrt(*in.at->nmse) : RelativeDifference(b, a);
  double noise = 0;
  for (const StepRecord& s : in.earlier) {
    rel = MaxNan(rel, s.nmse ? std::sqrt(*s.nmse) : 0.0);
    noise = MaxNan(noise, s.noise);
  }
  e.rel_diff = rel;
  if (!in.earlier.empty()) e.observed_noise = noise;
  if (!(rel <= *e.rounding_budget)) {
    c.kind = DivergenceKind::kReal;
    e.source = "observed_noise";
    e.reason = fmt::format(
        "A and B differ by {} (RMS relative to the logits' spread) over {} same-context step(s), "
        "more than rounding at {} over {} layers makes ({}): they compute different functions",
        Num(rel), e.noise_steps + 1, e.precision, in.depth, Num(*e.rounding_budget));
    return c;
  }
  if (!in.earlier.empty()) {
    e.source = "observed_noise";
    if (c.flip_gap <= 2 * noise) {
      c.kind = DivergenceKind::kRounding;
      e.reason = fmt::format(
          "flip gap {} is within twice the noise seen at the competing tokens over {} earlier "
          "same-context step(s) ({}), and the two sides' difference ({}) is within rounding at {} "
          "over {} layers ({})",
          Num(c.flip_gap), e.noise_steps, Num(noise), Num(rel), e.precision, in.depth,
          Num(*e.rounding_budget));
    } else {
      c.kind = DivergenceKind::kUndetermined;
      e.reason = fmt::format(
          "flip gap {} exceeds twice the noise seen at the competing tokens over {} earlier "
          "same-context step(s) ({}), though the two sides' difference ({}) is within rounding at "
          "{} over {} layers ({}); the FP64 oracle (--oracle) would decide",
          Num(c.flip_gap), e.noise_steps, Num(noise), Num(rel), e.precision, in.depth,
          Num(*e.rounding_budget));
    }
    return c;
  }

  // 4. The ULP rule: no earlier step to measure noise on.
  e.source = "ulp";
  if (flip.near_tie) {
    c.kind = DivergenceKind::kRounding;
    e.reason = fmt::format(
        "no earlier same-context step to measure noise on; flip gap {} is within {} ULPs of {} "
        "({}) and the sides' difference ({}) within rounding's reach ({}) (weak evidence: the FP64 "
        "oracle, --oracle, would confirm)",
        Num(c.flip_gap), in.near_tie_ulps, e.precision, Num(c.tolerance), Num(rel),
        Num(*e.rounding_budget));
  } else {
    c.kind = DivergenceKind::kUndetermined;
    e.reason = fmt::format(
        "no earlier same-context step to measure noise on; flip gap {} exceeds {} ULPs of {} ({}), "
        "which depth alone can explain (the sides' difference {} is within rounding's reach {}); "
        "the FP64 oracle (--oracle) would decide",
        Num(c.flip_gap), in.near_tie_ulps, e.precision, Num(c.tolerance), Num(rel),
        Num(*e.rounding_budget));
  }
  return c;
}

Classification ClassifyWithoutFlip(const std::vector<StepRecord>& steps,
                                   forward::Precision precision_a, forward::Precision precision_b,
                                   int64_t depth, const std::optional<RunOracleFigures>& oracle,
                                   const SideEvidence& side_a, const SideEvidence& side_b) {
  const forward::Precision coarser = CoarserPrecision(precision_a, precision_b);
  Classification c;
  VerdictEvidence& e = c.evidence;
  e.precision = CoarserName(precision_a, precision_b, side_a, side_b);
  e.depth = depth;
  e.noise_steps = static_cast<int64_t>(steps.size());
  double rel = 0, noise = 0;
  bool bad_a = false, bad_b = false;
  for (const StepRecord& s : steps) {
    rel = MaxNan(rel, s.nmse ? std::sqrt(*s.nmse) : 0.0);
    noise = MaxNan(noise, s.noise);
    bad_a = bad_a || s.nonfinite_a > 0;
    bad_b = bad_b || s.nonfinite_b > 0;
  }
  e.rel_diff = rel;
  e.observed_noise = noise;
  e.rounding_budget = RoundingBudget(coarser, depth);
  if (bad_a || bad_b) {
    c.kind = DivergenceKind::kPrecisionFailure;
    e.source = "non_finite";
    e.failing_side = Side(bad_a, bad_b);
    const int64_t last = steps.empty() ? 0 : steps.back().step;
    const std::optional<std::string> point = OutOfRangeBy(bad_a ? side_a : side_b, last);
    e.overflow_point = point;
    e.reason = fmt::format("{} logits contain inf or NaN{}",
                           bad_a && bad_b ? "both sides'" : (bad_a ? "A's" : "B's"),
                           point ? fmt::format(" (values first leave the finite range at {})",
                                               *point)
                                 : "");
    return c;
  }
  {
    const int64_t last = steps.empty() ? -1 : steps.back().step;
    const std::optional<std::string> out_a = OutOfRangeBy(side_a, last);
    const std::optional<std::string> out_b = OutOfRangeBy(side_b, last);
    if (out_a || out_b) {
      c.kind = DivergenceKind::kPrecisionFailure;
      e.source = "range_watch";
      e.failing_side = Side(out_a.has_value(), out_b.has_value());
      e.overflow_point = out_a ? out_a : out_b;
      e.reason = fmt::format(
          "no token flipped in {} same-context steps, but {}'s activations leave the finite range "
          "of {} at {}, though its logits stay finite: its numbers broke down there",
          steps.size(), out_a ? "A" : "B",
          NameOf(out_a ? side_a : side_b, out_a ? precision_a : precision_b), *e.overflow_point);
      return c;
    }
  }
  if (oracle) {
    e.source = "oracle";
    e.fp64_rel_diff = oracle->fp64_rel_diff;
    e.a_err_vs_fp64 = oracle->a_err;
    e.b_err_vs_fp64 = oracle->b_err;
    e.budget_a = RoundingBudget(precision_a, depth);
    e.budget_b = RoundingBudget(precision_b, depth);
    if (!(oracle->fp64_rel_diff <= kFp64Resolution)) {
      c.kind = DivergenceKind::kReal;
      e.reason = fmt::format(
          "no token flipped in {} same-context steps, but the FP64 runs of A and B differ by up "
          "to {} (relative) on the same tokens, far above FP64's resolution ({:.0e}): A and B "
          "compute different functions",
          steps.size(), Num(oracle->fp64_rel_diff), kFp64Resolution);
    } else {
      c.kind = DivergenceKind::kRounding;
      e.reason = fmt::format("no token flipped in {} same-context steps, and the FP64 runs of A "
                             "and B agree ({} relative): one function, rounded differently",
                             steps.size(), Num(oracle->fp64_rel_diff));
    }
    return c;
  }
  e.source = "observed_noise";
  if (!(rel <= *e.rounding_budget)) {
    c.kind = DivergenceKind::kReal;
    e.reason = fmt::format(
        "no token flipped in {} same-context steps, but A and B differ by {} (RMS relative to the "
        "logits' spread), more than rounding at {} over {} layers makes ({}): they compute "
        "different functions",
        steps.size(), Num(rel), e.precision, depth, Num(*e.rounding_budget));
  } else {
    c.kind = DivergenceKind::kRounding;
    e.reason = fmt::format(
        "no token flipped in {} same-context steps, and A and B differ by {} at most, within "
        "rounding at {} over {} layers ({})",
        steps.size(), Num(rel), e.precision, depth, Num(*e.rounding_budget));
  }
  return c;
}

std::string DescribeVerdict(const FirstDivergence& d) {
  return fmt::format("{} ({}): {}", d.kind, d.evidence.source, d.evidence.reason);
}

}  // namespace parity::compare
