// Per-step metrics against values worked out by hand, percentiles, ULP spacing and the near-tie rule.
#include "harness/compare/metrics.h"

#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace parity::compare {
namespace {

using forward::Precision;

// Logits whose softmax is exactly `probs` up to rounding: log p + any constant.
std::vector<double> LogitsOf(const std::vector<double>& probs, double shift) {
  std::vector<double> out;
  for (double p : probs) out.push_back(std::log(p) + shift);
  return out;
}

TEST(MetricsTest, KlJsOfThreeElementDistributions) {
  // p = [0.8, 0.1, 0.1], q = [0.4, 0.4, 0.2].
  // KL(p||q) = 0.8 ln(0.8/0.4) + 0.1 ln(0.1/0.4) + 0.1 ln(0.1/0.2)
  //          = 0.8 ln2 - 0.2 ln2 - 0.1 ln2 = 0.5 ln2 = 0.34657359027997264
  // KL(q||p) = 0.4 ln(0.4/0.8) + 0.4 ln(0.4/0.1) + 0.2 ln(0.2/0.1)
  //          = -0.4 ln2 + 0.8 ln2 + 0.2 ln2 = 0.6 ln2 = 0.41588830833596715
  // m = (p + q) / 2 = [0.6, 0.25, 0.15]
  // JS = 0.5 [0.8 ln(0.8/0.6) + 0.1 ln(0.1/0.25) + 0.1 ln(0.1/0.15)]
  //    + 0.5 [0.4 ln(0.4/0.6) + 0.4 ln(0.4/0.25) + 0.2 ln(0.2/0.15)]
  //    = 0.5 [0.230145 - 0.091629 - 0.040547] + 0.5 [-0.162186 + 0.188001 + 0.057536]
  //    = 0.5 * 0.097969 + 0.5 * 0.083351 = 0.090660 (to 6 digits)
  std::vector<double> a = LogitsOf({0.8, 0.1, 0.1}, 3.0);   // softmax is shift-invariant
  std::vector<double> b = LogitsOf({0.4, 0.4, 0.2}, -1.0);
  StepRecord r = CompareLogits(a, b, 1);
  EXPECT_NEAR(r.kl, 0.34657359027997264, 1e-14);
  EXPECT_NEAR(r.kl_reverse, 0.41588830833596715, 1e-14);
  EXPECT_NEAR(r.js, 0.090660, 1e-6);
  EXPECT_NEAR(r.js, 0.5 * (0.8 * std::log(0.8 / 0.6) + 0.1 * std::log(0.1 / 0.25) +
                           0.1 * std::log(0.1 / 0.15)) +
                        0.5 * (0.4 * std::log(0.4 / 0.6) + 0.4 * std::log(0.4 / 0.25) +
                               0.2 * std::log(0.2 / 0.15)),
              1e-14);
  // Argmax of p is 0; q's two largest logits, log(0.4) - 1, are equal: the lowest index, 0, wins.
  EXPECT_EQ(r.token_a, 0);
  EXPECT_EQ(r.token_b, 0);
  EXPECT_TRUE(r.top1_agree);
}

TEST(MetricsTest, IdenticalLogitsGiveZeroDivergence) {
  std::vector<double> a = {0.5, -1.25, 3.0, 2.0};
  StepRecord r = CompareLogits(a, a, 2);
  EXPECT_EQ(r.kl, 0.0);
  EXPECT_EQ(r.kl_reverse, 0.0);
  EXPECT_NEAR(r.js, 0.0, 1e-16);
  EXPECT_EQ(r.max_abs_diff, 0.0);
  EXPECT_EQ(r.rms_diff, 0.0);
  EXPECT_EQ(*r.nmse, 0.0);
  EXPECT_NEAR(*r.cosine, 1.0, 1e-15);
  EXPECT_EQ(r.topk_overlap, 1.0);
  EXPECT_EQ(r.noise, 0.0);
}

TEST(MetricsTest, DifferenceMetricsByHand) {
  // a = [1, 2, 3, 4], b = [1, 2, 5, 3]; b - a = [0, 0, 2, -1].
  std::vector<double> a = {1, 2, 3, 4}, b = {1, 2, 5, 3};
  StepRecord r = CompareLogits(a, b, 2);
  EXPECT_EQ(r.max_abs_diff, 2.0);
  EXPECT_DOUBLE_EQ(r.rms_diff, std::sqrt(5.0 / 4.0));  // sqrt((4 + 1) / 4)
  // var(a): mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, / 4 = 1.25;
  // mse = 1.25, so nmse = 1.
  EXPECT_DOUBLE_EQ(*r.nmse, 1.0);
  // a.b = 1 + 4 + 15 + 12 = 32; |a|^2 = 30; |b|^2 = 1 + 4 + 25 + 9 = 39.
  EXPECT_DOUBLE_EQ(*r.cosine, 32.0 / std::sqrt(30.0 * 39.0));
  EXPECT_EQ(r.token_a, 3);
  EXPECT_EQ(r.token_b, 2);
  EXPECT_FALSE(r.top1_agree);
  EXPECT_EQ(r.rank_b_in_a, 1);  // a[2] = 3: only a[3] = 4 is above it
  EXPECT_EQ(r.rank_a_in_b, 1);  // b[3] = 3: only b[2] = 5 is above it
  EXPECT_EQ(r.margin_a, 1.0);   // 4 - 3
  EXPECT_EQ(r.margin_b, 2.0);   // 5 - 3
  EXPECT_EQ(r.noise, 2.0);      // max(|4 - 3|, |3 - 5|)
  EXPECT_EQ(r.topk_overlap, 1.0);  // top-2 {3, 2} and {2, 3}
  EXPECT_EQ(CompareLogits(a, b, 1).topk_overlap, 0.0);  // {3} vs {2}
  EXPECT_EQ(CompareLogits(a, b, 100).topk_overlap, 1.0);  // k clamped to V
}

TEST(MetricsTest, TiesGoToTheLowestIndexLikeTorchArgmax) {
  std::vector<double> a = {1, 5, 5, 2};
  EXPECT_EQ(Argmax(a), 1);
  // torch.argmax documents "the indices of the first maximal value"; check libtorch agrees.
  at::Tensor t = at::tensor(at::ArrayRef<double>(a), at::kFloat);
  EXPECT_EQ(at::argmax(t).item<int64_t>(), 1);
  StepRecord r = CompareLogits(a, {5, 1, 5, 2}, 2);
  EXPECT_EQ(r.token_a, 1);
  EXPECT_EQ(r.token_b, 0);
  EXPECT_EQ(r.margin_a, 0.0);     // tie
  EXPECT_EQ(r.rank_b_in_a, 3);    // token_b = 0, a[0] = 1: a[1], a[2], a[3] are above it
  EXPECT_EQ(r.rank_a_in_b, 3);    // token_a = 1, b[1] = 1: b[0], b[2], b[3] are above it
  // Equal values rank by index: in a, token 2 (= 5) is below token 1 (= 5).
  EXPECT_EQ(CompareLogits(a, {1, 2, 9, 0}, 1).rank_b_in_a, 1);
}

TEST(MetricsTest, TopKOverlapBreaksTiesByIndex) {
  // top-2 of a = [3, 3, 3, 0] is {0, 1}; of b = [0, 3, 3, 3] is {1, 2}; overlap {1} -> 1/2.
  StepRecord r = CompareLogits({3, 3, 3, 0}, {0, 3, 3, 3}, 2);
  EXPECT_EQ(r.topk_overlap, 0.5);
}

TEST(MetricsTest, RejectsMismatchedSizes) {
  EXPECT_THROW(CompareLogits({1, 2}, {1, 2, 3}, 1), std::exception);
  EXPECT_THROW(CompareLogits(std::vector<double>{}, std::vector<double>{}, 1), std::exception);
}

TEST(MetricsTest, TensorOverloadMatchesVectors) {
  at::Tensor a = at::tensor({1.0f, 2.0f, 3.0f, 4.0f});
  at::Tensor b = at::tensor({1.0f, 2.0f, 5.0f, 3.0f});
  StepRecord r = CompareLogits(a, b, 2);
  EXPECT_EQ(r.token_b, 2);
  EXPECT_DOUBLE_EQ(r.rms_diff, std::sqrt(1.25));
}

TEST(MetricsTest, UlpSpacingMatchesTheFormats) {
  // FP32 and FP64: against std::nextafter.
  EXPECT_EQ(UlpAt(10.0, Precision::kFP32), std::nextafter(10.0f, 100.0f) - 10.0f);  // 2^-20
  EXPECT_EQ(UlpAt(-1.0, Precision::kFP32), std::nextafter(1.0f, 2.0f) - 1.0f);      // 2^-23
  EXPECT_EQ(UlpAt(3.0, Precision::kFP64), std::nextafter(3.0, 4.0) - 3.0);          // 2^-51
  // FP16 and BF16: x + ulp survives a round trip through the format; x + ulp/4 rounds back to x.
  for (auto [precision, type] : {std::pair{Precision::kFP16, at::kHalf},
                                 std::pair{Precision::kBF16, at::kBFloat16}}) {
    for (double x : {1.0, 1.5, 10.0, 17.25, 0.3125}) {
      double ulp = UlpAt(x, precision);
      auto round_trip = [type = type](double v) {
        return at::scalar_tensor(v, at::kDouble).to(type).to(at::kDouble).item<double>();
      };
      EXPECT_EQ(round_trip(x + ulp), x + ulp) << x;
      EXPECT_EQ(round_trip(x + ulp / 4), x) << x;
    }
  }
  EXPECT_EQ(UlpAt(10.0, Precision::kFP16), 0.0078125);  // 2^(3 - 10)
  EXPECT_EQ(UlpAt(10.0, Precision::kBF16), 0.0625);     // 2^(3 - 7)
  EXPECT_EQ(UlpAt(0.0, Precision::kFP16), 0.0);
  EXPECT_EQ(CoarserPrecision(Precision::kFP32, Precision::kBF16), Precision::kBF16);
  EXPECT_EQ(CoarserPrecision(Precision::kFP16, Precision::kFP32), Precision::kFP16);
  EXPECT_EQ(CoarserPrecision(Precision::kFP16, Precision::kBF16), Precision::kBF16);
}

TEST(MetricsTest, NearTieWhenTheFlipIsWithinRoundingOfTheRunPrecision) {
  // A prefers token 0 by 0.001, B prefers token 1 by 0.001: flip_gap = 0.002.
  std::vector<double> a = {10.0, 9.999, 0.0}, b = {9.999, 10.0, 0.0};
  // FP16 at magnitude 10: 4 ulps = 4 * 2^-7 = 0.03125 >= 0.002 -> near tie.
  FlipAnalysis fp16 = AnalyzeFlip(a, b, 0, 1, Precision::kFP16, 4);
  EXPECT_NEAR(fp16.flip_gap, 0.002, 1e-12);
  EXPECT_EQ(fp16.tolerance, 0.03125);
  EXPECT_TRUE(fp16.near_tie);
  // FP32 at magnitude 10: 4 ulps = 4 * 2^-20 = 3.8e-6 < 0.002 -> real: FP32 rounding cannot move
  // the two logits that far.
  FlipAnalysis fp32 = AnalyzeFlip(a, b, 0, 1, Precision::kFP32, 4);
  EXPECT_EQ(fp32.tolerance, 4.0 * std::ldexp(1.0, -20));
  EXPECT_FALSE(fp32.near_tie);
  // A confident model on one side makes the flip real even in BF16 (tolerance 4 * 2^-4 = 0.25):
  // A ties tokens 0 and 1, B prefers 1 by 1.0.
  FlipAnalysis confident = AnalyzeFlip({10.0, 10.0, 0.0}, {9.0, 10.0, 0.0}, 0, 1, Precision::kBF16, 4);
  EXPECT_EQ(confident.flip_gap, 1.0);
  EXPECT_EQ(confident.tolerance, 0.25);
  EXPECT_FALSE(confident.near_tie);
}

TEST(MetricsTest, NearTieBoundaryIsInclusive) {
  // FP16 at magnitudes in [8, 16): ulp 2^-7, tolerance 4 ulps = 2^-5. Preferences of 2^-6 on each
  // side give flip_gap exactly 2^-5 (all values exactly representable in binary).
  const double h = std::ldexp(1.0, -6);
  FlipAnalysis at_boundary = AnalyzeFlip({8 + h, 8, 0}, {8, 8 + h, 0}, 0, 1, Precision::kFP16, 4);
  EXPECT_EQ(at_boundary.flip_gap, std::ldexp(1.0, -5));
  EXPECT_EQ(at_boundary.tolerance, std::ldexp(1.0, -5));
  EXPECT_TRUE(at_boundary.near_tie);
  const double over = std::ldexp(1.0, -10);
  FlipAnalysis beyond =
      AnalyzeFlip({8 + h, 8, 0}, {8, 8 + h + over, 0}, 0, 1, Precision::kFP16, 4);
  EXPECT_FALSE(beyond.near_tie);
}

TEST(MetricsTest, MinMarginWithinNoiseHoldsAtEveryFlip) {
  // Why the rule is flip_gap vs tolerance and not "min margin <= noise": the latter is always true
  // at a flip. Check it on a clearly real flip.
  std::vector<double> a = {10.0, 5.0, 0.0}, b = {4.0, 9.0, 0.0};
  StepRecord r = CompareLogits(a, b, 1);
  ASSERT_FALSE(r.top1_agree);
  EXPECT_LE(std::min(r.margin_a, r.margin_b), r.noise);
  EXPECT_FALSE(AnalyzeFlip(a, b, r.token_a, r.token_b, Precision::kBF16, 4).near_tie);
}

TEST(MetricsTest, PercentileNearestRank) {
  // The textbook example: {15, 20, 35, 40, 50}: p30 = 20 (rank ceil(1.5) = 2), p40 = 20 (rank 2),
  // p50 = 35 (rank ceil(2.5) = 3), p100 = 50; p5 -> rank ceil(0.25) = 1 -> 15; p0 -> 15.
  std::vector<double> v = {50, 15, 40, 20, 35};  // order does not matter
  EXPECT_EQ(PercentileNearestRank(v, 30), 20);
  EXPECT_EQ(PercentileNearestRank(v, 40), 20);
  EXPECT_EQ(PercentileNearestRank(v, 50), 35);
  EXPECT_EQ(PercentileNearestRank(v, 100), 50);
  EXPECT_EQ(PercentileNearestRank(v, 5), 15);
  EXPECT_EQ(PercentileNearestRank(v, 0), 15);
  // 1..100: p99 is the 99th value, p90 the 90th; exact products are not pushed to the next rank.
  std::vector<double> hundred;
  for (int i = 1; i <= 100; ++i) hundred.push_back(i);
  EXPECT_EQ(PercentileNearestRank(hundred, 99), 99);
  EXPECT_EQ(PercentileNearestRank(hundred, 90), 90);
  EXPECT_EQ(PercentileNearestRank(hundred, 99.5), 100);
  EXPECT_THROW(PercentileNearestRank({}, 50), std::invalid_argument);
}

TEST(MetricsTest, SummarizeSteps) {
  std::vector<StepRecord> steps(4);
  const double kl[] = {0.4, 0.1, 0.3, 0.2};
  const bool agree[] = {true, true, false, true};
  for (int i = 0; i < 4; ++i) {
    steps[i].step = i;
    steps[i].kl = kl[i];
    steps[i].top1_agree = agree[i];
    steps[i].same_context = i <= 2;
    steps[i].max_abs_diff = i;
    steps[i].rms_diff = 0.5 * i;
    steps[i].topk_overlap = i == 2 ? 0.6 : 1.0;
    steps[i].cosine = 1.0 - 0.1 * i;
    if (i != 1) steps[i].nmse = 0.01 * i;
  }
  // Aggregates over the same-context steps 0..2; step 3 (after the split) is reported apart.
  RunMetrics m = SummarizeSteps(steps);
  EXPECT_EQ(m.steps, 4);
  EXPECT_EQ(m.same_context_steps, 3);
  EXPECT_EQ(m.max_kl, 0.4);
  EXPECT_DOUBLE_EQ(m.mean_kl, 0.8 / 3);
  EXPECT_EQ(m.p50_kl, 0.3);  // rank ceil(1.5) = 2 of {0.1, 0.3, 0.4}
  EXPECT_EQ(m.p90_kl, 0.4);  // rank ceil(2.7) = 3
  EXPECT_EQ(m.p99_kl, 0.4);
  EXPECT_DOUBLE_EQ(m.top1_agreement, 2.0 / 3);
  EXPECT_DOUBLE_EQ(m.topk_overlap_mean, 2.6 / 3);
  EXPECT_EQ(m.max_abs_logit_diff, 2.0);
  EXPECT_DOUBLE_EQ(m.rms_logit_diff_mean, 0.5);
  ASSERT_TRUE(m.first_divergence_step.has_value());
  EXPECT_EQ(*m.first_divergence_step, 2);
  EXPECT_DOUBLE_EQ(*m.min_cosine, 0.8);
  EXPECT_DOUBLE_EQ(*m.max_nmse, 0.02);
  EXPECT_EQ(m.after_split.steps, 1);
  EXPECT_EQ(m.after_split.max_kl, 0.2);
  EXPECT_EQ(m.after_split.mean_kl, 0.2);
  EXPECT_EQ(m.after_split.top1_agreement, 1.0);

  RunMetrics empty = SummarizeSteps({});
  EXPECT_EQ(empty.steps, 0);
  EXPECT_EQ(empty.top1_agreement, 1.0);
  EXPECT_FALSE(empty.first_divergence_step.has_value());
  EXPECT_FALSE(empty.min_cosine.has_value());
}

TEST(MetricsTest, RmsDiffOfTensors) {
  // rows [1, 2] vs [1, 4] and [0, 0] vs [3, 0]: squared diffs 0, 4, 9, 0 -> sqrt(13 / 4).
  at::Tensor x = at::tensor({1.0f, 2.0f, 0.0f, 0.0f}).view({2, 2});
  at::Tensor y = at::tensor({1.0, 4.0, 3.0, 0.0}, at::kDouble).view({2, 2});
  EXPECT_DOUBLE_EQ(RmsDiff(x, y), std::sqrt(13.0 / 4.0));
}

}  // namespace
}  // namespace parity::compare
