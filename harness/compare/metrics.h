// Per-step and per-run comparison metrics of two next-token logit vectors (definitions in
// reports/SCHEMA.md and BRIEF.md "Metrics worth adopting"). Everything is computed in FP64 with plain
// loops over the vocabulary, independent of libtorch's reductions, so the numbers do not depend on
// thread count or kernel choice.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/Tensor.h>

#include "harness/compare/run_result.h"
#include "harness/forward/numerics.h"

namespace parity::compare {

// Index of the largest value; the lowest index among equal maxima (as torch.argmax).
int64_t Argmax(const std::vector<double>& values);

// Logits of one step as FP64 on the CPU. `logits` is [V] (or any shape with V elements).
std::vector<double> ToDoubleVector(const at::Tensor& logits);

// Compares logits a and b (each [V]) of one step. Fills every metric field of StepRecord (token_a
// through noise, nonfinite_a/b); run, step, position, same_context and the oracle fields are left
// for the caller. A NaN or inf on either side makes the step disagree (top1_agree false) and its
// difference and divergence figures NaN.
// `top_k` >= 1 is the k of topk_overlap (clamped to V).
StepRecord CompareLogits(const std::vector<double>& a, const std::vector<double>& b, int64_t top_k);
StepRecord CompareLogits(const at::Tensor& a, const at::Tensor& b, int64_t top_k);

// Significant bits of a precision's significand (implicit bit included): FP64 53, FP32 24,
// FP16 11, BF16 8.
int SignificantBits(forward::Precision precision);
// Spacing of the precision's representable numbers at `magnitude`:
// 2^(floor(log2 |magnitude|) - (bits - 1)); 0 for magnitude 0. Below the smallest normal the
// spacing of the smallest normal binade is used (no subnormal special case: logits never get there).
double UlpAt(double magnitude, forward::Precision precision);
// The coarser (fewer significant bits) of two precisions.
forward::Precision CoarserPrecision(forward::Precision x, forward::Precision y);

// Near-tie analysis of a flip (token_a != token_b); see reports/SCHEMA.md first_divergence.
struct FlipAnalysis {
  double flip_gap = 0;   // (a[ta] - a[tb]) + (b[tb] - b[ta])
  double tolerance = 0;  // ulps * UlpAt(max(|a[ta]|, |a[tb]|, |b[ta]|, |b[tb]|), precision)
  bool near_tie = false; // flip_gap <= tolerance
};
FlipAnalysis AnalyzeFlip(const std::vector<double>& a, const std::vector<double>& b,
                         int64_t token_a, int64_t token_b, forward::Precision precision,
                         double ulps);

// Nearest-rank percentile of `values` (any order): the ceil(p / 100 * n)-th smallest (1-based,
// at least the 1st). p in [0, 100]; throws std::invalid_argument when values is empty.
double PercentileNearestRank(std::vector<double> values, double p);

// Per-run statistics over `steps` (one run's records, in step order): the aggregates over the
// same-context steps, the steps after the split apart (RunMetrics::after_split).
// first_divergence_step is the first step with top1_agree false.
RunMetrics SummarizeSteps(const std::vector<StepRecord>& steps);

// A pair's aggregate over its runs (in the given order) and their steps, as reports/SCHEMA.md
// defines pairs[]: mean/max KL and same-top-1 over the runs' same-context steps,
// identical_fraction[t] for t < max_new_tokens, pass when every run passes. `identity` supplies
// id and pair. The one aggregation of compare (SummarizePairs) and of `parity merge`.
PairSummary SummarizePair(const PairSummary& identity, const std::vector<const Run*>& runs,
                          const std::vector<StepRecord>& steps, int64_t max_new_tokens);

// Root mean square of x - y over all elements (both [V] or [T, V]), computed in FP64.
double RmsDiff(const at::Tensor& x, const at::Tensor& y);

}  // namespace parity::compare
