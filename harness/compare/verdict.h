// What a first divergence is: the one classification `compare`, `run`, `localize` and the reports
// use. Kinds:
//   rounding           A and B compute the same function; the flip is within the noise this run
//                      shows (two close tokens swapped by rounding).
//   real               A and B compute different functions, and that difference is what the evidence
//                      shows at this step.
//   precision_failure  one side's numbers broke down: inf/NaN/overflow in its logits, or (with the
//                      oracle) its error against its own FP64 run far beyond what rounding at its
//                      precision and depth makes.
//   undetermined       the evidence at hand cannot decide; the reason says what would.
//
// Evidence, strongest first (the first that applies decides):
//  1. non-finite logits on a side (NaN, inf) at or before the divergence step -> precision_failure;
//     with the range watch (compare/overflow.h), also a side whose activations leave the finite
//     range of their precision at a step at or before it (source "range_watch"), and the point
//     where they first leave it is named. A side that only comes close (saturation risk) keeps its
//     verdict: the watch reports it beside the verdict.
//  2. the FP64 oracle at the divergence step: A64 and B64 are the FP64 runs of both models on the
//     shared prefix (the same tokens both sides read), a64_err / b64_err each side's relative error
//     against its own FP64 run. rel(x, ref) = rms(x - ref) / std(ref) (std over the vocabulary).
//       - a side's error above kPrecisionFailureFactor x RoundingBudget(its precision, depth)
//         -> precision_failure (far beyond what rounding makes: overflow, saturation);
//       - rel(B64, A64) > kFp64Resolution (1e-9; FP64 runs of one function agree to ~1e-15, so
//         anything above 1e-9 is a different function) -> real; the reason says whether the FP64
//         pair itself picks different tokens here and which side agrees with FP64's argmax;
//       - else -> rounding (the exact functions agree; the flip is rounding).
//  3. the noise this run shows, with the precision and the depth:
//       rel_diff = max over the same-context steps up to the divergence of sqrt(nmse) (the two
//       sides' RMS difference relative to the logits' spread), observed_noise = max over the
//       same-context steps before the divergence of |a - b| at that step's competing tokens.
//       - rel_diff > RoundingBudget(coarser precision, depth) -> real (the two sides differ by more
//         than rounding at this precision over this many layers makes);
//       - flip_gap <= 2 x observed_noise (the flip is a difference of two such noises) -> rounding;
//       - else, when earlier steps exist -> undetermined (run the FP64 oracle to decide).
//  4. the ULP rule (weakest; only when no earlier same-context step gives a noise estimate):
//     flip_gap <= near_tie_ulps ULPs of the coarser precision -> rounding, else undetermined.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/compare/run_result.h"
#include "harness/forward/numerics.h"

namespace parity::compare {

// FP64 runs of one function agree far better than this (relative); above it, two FP64 runs compute
// different functions. The same constant as localize's.
inline constexpr double kFp64Resolution = 1e-9;

// Multiple of u * sqrt(depth) (u = unit roundoff 2^-bits of the precision) that bounds the relative
// difference rounding makes between two runs of one function, or between a run and its FP64 run.
// Calibration (measured): a 7B-shaped random BF16 InternLM2 (32 layers) is 6.5% from FP64, i.e.
// 2.9 u sqrt(32); the 24-layer test model of verdict_labelled_test gives the figures printed by that
// test. 8 leaves a factor of ~2.7 above the largest same-function figure measured.
inline constexpr double kRoundingBudgetFactor = 8;

// A side whose error against its own FP64 run exceeds this multiple of its rounding budget has
// failed numerically (the budget already holds a margin; 10x more is no longer rounding).
inline constexpr double kPrecisionFailureFactor = 10;

// The precision whose rounding budget a side gets: its policy's least precise module, except that
// TF32 matmuls (10 explicit significand bits, as FP16) make an FP32 side count as FP16.
forward::Precision BudgetPrecision(const forward::PrecisionPolicy& policy);

// The budget precision in words, for the verdict's reasons: the precision's name, except
// "tf32 (fp16-sized budget)" for a side whose FP32 matmuls run as TF32, so that an fp32-vs-tf32
// verdict says tf32 rather than an fp16 neither side ran.
std::string BudgetName(const forward::PrecisionPolicy& policy);

// Relative difference (rel as above) that rounding at `precision` over `depth` layers can make:
// kRoundingBudgetFactor * 2^-bits * sqrt(max(depth, 1)). FP64 gives kFp64Resolution at least.
double RoundingBudget(forward::Precision precision, int64_t depth);

// rms(x - ref) / std(ref) over the vocabulary; +inf when ref is constant and x differs, NaN when an
// input is not finite.
double RelativeDifference(const std::vector<double>& x, const std::vector<double>& ref);

// Number of entries that are NaN or +-inf.
int64_t CountNonFinite(const std::vector<double>& values);

// "rounding", "real", "precision_failure", "undetermined".
enum class DivergenceKind { kRounding, kReal, kPrecisionFailure, kUndetermined };
const char* DivergenceKindName(DivergenceKind kind);
// Parses a kind; the first schema's "near_tie" reads as "rounding". Null for anything else.
std::optional<DivergenceKind> ParseDivergenceKind(const std::string& name);

// FP64 logits of both models at the divergence step on the shared prefix ([V] each).
struct Fp64Logits {
  std::vector<double> a64;
  std::vector<double> b64;
};

// What a verdict knows about one side beyond its logits.
struct SideEvidence {
  std::string budget_name;            // BudgetName of the side's policy; empty: the name of its
                                      // budget precision
  const RangeWatch* range = nullptr;  // the side's range watch, when it ran
};

struct VerdictInputs {
  const std::vector<double>* a = nullptr;  // A's logits at the divergence step, [V]
  const std::vector<double>* b = nullptr;  // B's
  int64_t token_a = 0, token_b = 0;        // each side's argmax there
  forward::Precision precision_a = forward::Precision::kFP32;
  forward::Precision precision_b = forward::Precision::kFP32;
  int64_t depth = 1;                       // decoder layers (the larger of the two models)
  double near_tie_ulps = 4;                // the ULP rule's tolerance
  std::vector<StepRecord> earlier;         // the same-context steps before the divergence
  const StepRecord* at = nullptr;          // the divergence step's record (metrics of a vs b)
  std::optional<Fp64Logits> oracle;      // FP64 evidence, when the oracle ran
  // Where a side's activations first left the finite range of its precision ("layer 3 mlp"), when
  // the observation hook could tell (non-finite logits only).
  std::optional<std::string> overflow_point_a, overflow_point_b;
  SideEvidence side_a, side_b;             // budget names and range watches
};

// Classifies the flip (or non-finite step) described by `in`. Fills kind, flip_gap, tolerance and
// evidence of the returned value; the caller fills the step, tokens, texts and context.
struct Classification {
  DivergenceKind kind = DivergenceKind::kUndetermined;
  double flip_gap = 0;
  double tolerance = 0;
  VerdictEvidence evidence;
};
Classification ClassifyDivergence(const VerdictInputs& in);

// The pair's verdict on a run without a flip (every same-context step picked the same token):
// `real` when the two sides differ by more than rounding explains (the oracle: the FP64 runs
// differ beyond kFp64Resolution at some same-context step; else the observed relative difference
// beyond RoundingBudget), `precision_failure` for non-finite logits, else `rounding`.
// `fp64_rel_diff` / `a_err` / `b_err`: maxima over the same-context steps of rel(B64, A64),
// rel(a, A64), rel(b, B64), when the oracle ran.
struct RunOracleFigures {
  double fp64_rel_diff = 0;
  double a_err = 0;
  double b_err = 0;
};
// With the range watch, a side out of range at a same-context step is a precision_failure too.
Classification ClassifyWithoutFlip(const std::vector<StepRecord>& same_context_steps,
                                   forward::Precision precision_a, forward::Precision precision_b,
                                   int64_t depth, const std::optional<RunOracleFigures>& oracle,
                                   const SideEvidence& side_a = {},
                                   const SideEvidence& side_b = {});

// One line for terminals and logs: "rounding (oracle): FP64 runs of A and B agree ...".
std::string DescribeVerdict(const FirstDivergence& divergence);

}  // namespace parity::compare
