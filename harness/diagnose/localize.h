// Layer localization: at one decode step, compare every observed point of two models (embedding,
// each layer's attention and MLP blocks, final norm, logits) at every position of the same
// teacher-forced tokens (prompt and generated), and against each model's own FP64 run, to find
// where, in position and in depth, the two computations part and whether they compute different
// functions ("real") or only round differently ("rounding").
//
// Why every position: a fault that enters at an earlier position (an embedding row of a prompt
// token, a rotary difference at position 1) first shows at a later position only where attention
// reads it, so a comparison at the last position alone names the wrong layer.
//
// Errors at a point and a position, with a and b the two runs' hidden vectors there ([D], or [V] for
// the logits) and a64, b64 the FP64 runs' vectors there:
//   rel(x, ref) = rms(x - ref) / rms(ref)           (0 when both are 0)
//   rel_rms_error = rel(b, a)            max_abs_error = max |a - b|     cosine = cos(a, b)
//   a_err_vs_fp64 = rel(a, a64)          b_err_vs_fp64 = rel(b, b64)     fp64_rel_diff = rel(b64, a64)
//   noise_floor   = max(a_err_vs_fp64, b_err_vs_fp64): the rounding error each run makes anyway.
//
// First departure, in forward order:
//  1. "real": the first point where fp64_rel_diff > max(kFp64Resolution, noise_floor): the exact
//     functions differ (beyond FP64's own rounding, 1e-9 leaves six orders of magnitude above FP64's
//     ~1e-16 relative error even after amplification over many layers) AND by more than the run
//     precision resolves (a difference smaller than the run's own rounding noise, e.g. one weight
//     rounded to BF16 compared at BF16, cannot be told from rounding and is not called real).
//     Note: rel_rms_error <= a_err + b_err + fp64_rel_diff (triangle inequality), so an A-vs-B error
//     above 2 x noise_floor always comes with fp64_rel_diff above the floor: the A-vs-B curve
//     leaving the floor and the FP64 test agree; the FP64 test is the one used because it also
//     names the point when the run precision is FP64 (floor 0).
//  2. else "rounding": the first point where the two runs differ at all (rel_rms_error > 0): where
//     rounding differences between the two code paths enter (e.g. fused vs split QKV GEMM), and
//     every error after it is within the noise floor's reach.
//  3. else "none": bit-identical at every point.
// Independently, fp64_first_difference names the first point with fp64_rel_diff > kFp64Resolution
// (also when it stays below the floor and is therefore not "real").
// Over positions: the rule runs at each position in order; the first position whose departure is
// "real" is the one reported (its curve is `points`); when no position is real, the last position's
// curve and departure are reported (where the next token is predicted). Separately, fp64_first_part
// is the earliest (position, point) where the FP64 runs part at all. Causality makes positions
// independent in the forward direction: a difference entering at position p cannot reach p' < p.
// The logits point exists only at positions where both models compute logits (HF Llama's last
// position only), so a fault in the LM head of such a model is first seen at the last position.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "harness/compare/run_result.h"
#include "harness/diagnose/model_source.h"
#include "harness/diagnose/range_watch.h"
#include "harness/forward/causal_lm.h"
#include "harness/forward/numerics.h"

namespace parity::diagnose {

inline constexpr double kFp64Resolution = 1e-9;

// One observed point's vector at one position, as FP64 on the CPU.
struct PointValue {
  forward::ObservationPoint point;
  int64_t layer;     // as in the tensor names; -1 for global points
  at::Tensor value;  // [D] or [V], kDouble, CPU
};
// One observed point at every position it was computed for.
struct PointSequence {
  forward::ObservationPoint point;
  int64_t layer;
  int64_t first_position = 0;  // position of values' row 0 (T - 1 for last-position-only logits)
  at::Tensor values;           // [T - first_position, D or V], kDouble, CPU
};
// "embedding", "layer 2 attention", "layer 2 mlp", "final_norm", "logits"
std::string PointName(forward::ObservationPoint point, int64_t layer);

// Runs `model` on `tokens` (one sequence, fresh cache) and returns every observed point's values at
// every position, in forward order.
std::vector<PointSequence> ObserveAllPositions(forward::CausalLM& model,
                                               const std::vector<int64_t>& tokens);
// The points of all four runs observed at `position`, as the vectors ComparePoints takes (points
// that some run did not compute there, e.g. last-position-only logits, are left out).
std::vector<std::vector<PointValue>> PointsAtPosition(
    const std::vector<const std::vector<PointSequence>*>& runs, int64_t position);

struct PointError {
  std::string name;
  int64_t layer = -1;
  std::string sub_block;  // "embedding" | "attention" | "mlp" | "final_norm" | "logits"
  double rel_rms_error = 0;
  double max_abs_error = 0;
  std::optional<double> cosine;  // null when a vector is zero
  double a_err_vs_fp64 = 0;
  double b_err_vs_fp64 = 0;
  double fp64_rel_diff = 0;
  double noise_floor() const { return std::max(a_err_vs_fp64, b_err_vs_fp64); }
};

// Relative RMS error of x against ref: rms(x - ref) / rms(ref); 0 when both are zero, +inf when
// only ref is.
double RelRmsError(const at::Tensor& x, const at::Tensor& ref);

// Point-by-point errors. All four lists must observe the same points in the same order (InputError
// otherwise, e.g. when the two models have different layer counts).
std::vector<PointError> ComparePoints(const std::vector<PointValue>& a,
                                      const std::vector<PointValue>& b,
                                      const std::vector<PointValue>& a64,
                                      const std::vector<PointValue>& b64);

struct Departure {
  std::string kind = "none";  // "real" | "rounding" | "none"
  int64_t index = -1;         // into the points; -1 for "none"
  std::string reason;         // one sentence with the numbers that decided it
};
// The rule in the header comment.
Departure FindFirstDeparture(const std::vector<PointError>& points);
// Index of the first point with fp64_rel_diff > kFp64Resolution; -1 when none.
int64_t Fp64FirstDifference(const std::vector<PointError>& points);

// The earliest (position, point) where the FP64 runs part (fp64_rel_diff > kFp64Resolution).
struct SequencePoint {
  int64_t position = -1;  // -1: the FP64 runs agree everywhere
  int64_t token = -1;     // tokens[position]
  std::string token_text;
  PointError point;
};

// One position's summary: where (if anywhere) the runs part there.
struct PositionSummary {
  int64_t position = 0;
  int64_t token = 0;
  std::string departure_kind;      // FindFirstDeparture at this position: real | rounding | none
  std::string departure_point;     // its point name; "" for none
  std::string fp64_first_point;    // first point with an FP64 difference; "" for none
  double max_fp64_rel_diff = 0;    // over this position's points
  double max_rel_rms_error = 0;
};

struct LocalizeOptions {
  forward::PrecisionPolicy precision = forward::Precision::kFP32;  // both sides' (a policy)
  c10::Device device = c10::Device(c10::kCPU);
  std::optional<int64_t> step;   // null: the first divergence of a free greedy run (or step 0)
  int64_t max_new_tokens = 32;   // length of that free run
  std::vector<int64_t> eos_ids;  // ends a greedy stream
  double saturation_fraction = 0.5;  // the range watch's saturation risk (compare/range_watch.h)
  // Token id to text for outputs; null: "<id>".
  std::function<std::string(int64_t)> token_text;
};

struct LocalizeResult {
  std::string label_a, label_b;
  std::string numerics;           // forward::Numerics::Describe() of the run precision
  int64_t step = 0;               // decode step localized (step t predicts token prompt_length + t)
  std::string step_source;        // "given" | "first_divergence" | "no_divergence"
  int64_t prompt_length = 0;
  std::vector<int64_t> tokens;    // the teacher-forced input: prompt + A's first `step` tokens
  // The position whose curve `points` holds: the first position with a real departure, else the
  // last one; its token and text.
  int64_t position = 0;
  std::string position_source;    // "first_real" | "last"
  int64_t position_token = 0;
  std::string position_text;
  std::optional<int64_t> divergence_token_a, divergence_token_b;  // at the first divergence
  std::vector<PointError> points;
  Departure first_departure;
  int64_t fp64_first_difference = -1;  // index into `points` (at `position`)
  SequencePoint fp64_first_part;       // over all positions
  std::vector<PositionSummary> positions;
  // The verdict on the flip at this step by the rule compare uses (compare/verdict.h), from the
  // logits point of both runs and both FP64 runs: null when A and B pick the same token there.
  std::optional<std::string> verdict_kind;  // "rounding" | "real" | "precision_failure" | ...
  compare::VerdictEvidence verdict_evidence;
  // Overflow and saturation watch of each side's run over every position (range_watch.h); a
  // precision_failure verdict names range_b's (else range_a's) first out-of-range point.
  std::optional<RangeWatch> range_a, range_b;
  double seconds = 0;             // wall time of Localize
};

// Fills result.verdict_kind / verdict_evidence from the four runs' logits points (the last point of
// each list). `precision` is the run precision of both sides.
void ClassifyAtLogits(LocalizeResult& result, const std::vector<PointSequence>& a,
                      const std::vector<PointSequence>& b, const std::vector<PointSequence>& a64,
                      const std::vector<PointSequence>& b64, forward::Precision precision,
                      int64_t depth);

// The whole procedure: choose the step, build the teacher-forced tokens, observe both models at the
// run precision and in FP64, compare. Models are built one or two at a time (never four at once).
LocalizeResult Localize(const ModelSource& a, const ModelSource& b,
                        const std::vector<int64_t>& prompt, const LocalizeOptions& options);
// The comparison part alone, on models already built (tests).
LocalizeResult LocalizeTokens(forward::CausalLM& a, forward::CausalLM& b, forward::CausalLM& a64,
                              forward::CausalLM& b64, const std::vector<int64_t>& tokens);
// The comparison over all positions of observations already made (fills points, position,
// first_departure, fp64_first_difference, fp64_first_part, positions; token texts by `token_text`).
void ComparePositions(const std::vector<PointSequence>& a, const std::vector<PointSequence>& b,
                      const std::vector<PointSequence>& a64, const std::vector<PointSequence>& b64,
                      const std::function<std::string(int64_t)>& token_text, LocalizeResult& result);

// JSON: {"first_departure": {"layer", "sub_block", "name", "kind", "reason", ...}, "points": [...],
// ...}; first_departure's layer / sub_block / name are null for kind "none".
nlohmann::ordered_json LocalizeToJson(const LocalizeResult& result);
// The error curve as a terminal table plus a verdict line.
std::string FormatLocalize(const LocalizeResult& result);

}  // namespace parity::diagnose
