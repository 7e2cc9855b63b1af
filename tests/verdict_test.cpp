// The verdict rule (compare/verdict.h) on hand-made logits: each source of evidence decides in its
// order (non-finite, FP64 oracle, observed noise with dtype and depth, ULPs), and NaN/inf never
// compare equal, never vanish from a maximum and never pass a gate.
#include "harness/compare/verdict.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "harness/compare/metrics.h"
#include "harness/compare/suite.h"

namespace parity::compare {
namespace {

using forward::Precision;

// V = 6 logits with a spread of a few units; A prefers 0 over 1 by `gap_a`, B prefers 1 by `gap_b`.
std::vector<double> Logits(double first, double second) { return {first, second, 1.0, -2.0, 0.5, -1.0}; }

StepRecord EarlierStep(double noise, double nmse) {
  StepRecord s;
  s.noise = noise;
  s.nmse = nmse;
  return s;
}

TEST(VerdictTest, RoundingBudgetGrowsWithDepthAndCoarseness) {
  EXPECT_DOUBLE_EQ(RoundingBudget(Precision::kBF16, 16), 8 * std::ldexp(1.0, -8) * 4);
  EXPECT_DOUBLE_EQ(RoundingBudget(Precision::kFP32, 1), 8 * std::ldexp(1.0, -24));
  EXPECT_GT(RoundingBudget(Precision::kBF16, 32), RoundingBudget(Precision::kFP16, 32));
  EXPECT_GE(RoundingBudget(Precision::kFP64, 1), kFp64Resolution);
}

TEST(VerdictTest, OracleDecidesFirst) {
  std::vector<double> a = Logits(5.0, 4.9), b = Logits(4.9, 5.0);
  VerdictInputs in;
  in.a = &a;
  in.b = &b;
  in.token_a = 0;
  in.token_b = 1;
  in.precision_a = in.precision_b = Precision::kBF16;
  in.depth = 24;
  // Same function: A64 == B64, both sides near it.
  std::vector<double> exact = Logits(4.95, 4.95 - 1e-3);
  in.oracle = Fp64Logits{exact, exact};
  Classification c = ClassifyDivergence(in);
  EXPECT_EQ(c.kind, DivergenceKind::kRounding) << c.evidence.reason;
  EXPECT_EQ(c.evidence.source, "oracle");
  EXPECT_EQ(*c.evidence.fp64_agrees_with, "a");
  EXPECT_EQ(*c.evidence.fp64_rel_diff, 0.0);
  // Different functions: B64 differs by far more than FP64 resolution.
  in.oracle = Fp64Logits{exact, Logits(4.9, 5.0)};
  c = ClassifyDivergence(in);
  EXPECT_EQ(c.kind, DivergenceKind::kReal) << c.evidence.reason;
  EXPECT_EQ(*c.evidence.fp64_token_b, 1);
  EXPECT_NE(c.evidence.reason.find("the FP64 pair itself parts here"), std::string::npos);
  // B far from its own FP64 run (beyond BF16's budget over 24 layers): B's precision failed.
  in.oracle = Fp64Logits{exact, Logits(40.0, -30.0)};
  in.b = &exact;
  std::vector<double> wild = {-50, 60, 10, 20, -30, 5};
  in.b = &wild;
  c = ClassifyDivergence(in);
  EXPECT_EQ(c.kind, DivergenceKind::kPrecisionFailure) << c.evidence.reason;
  EXPECT_EQ(*c.evidence.failing_side, "b");
}

TEST(VerdictTest, ObservedNoiseWithDtypeAndDepth) {
  std::vector<double> a = Logits(5.0, 4.9), b = Logits(4.9, 5.0);  // flip gap 0.2
  VerdictInputs in;
  in.a = &a;
  in.b = &b;
  in.token_a = 0;
  in.token_b = 1;
  in.precision_a = in.precision_b = Precision::kBF16;
  in.depth = 24;
  StepRecord at = CompareLogits(a, b, 1);
  in.at = &at;
  // Earlier steps showed noise 0.15 at their competing tokens: 0.2 <= 2 x 0.15 -> rounding.
  in.earlier = {EarlierStep(0.15, 1e-4), EarlierStep(0.05, 1e-4)};
  Classification c = ClassifyDivergence(in);
  EXPECT_EQ(c.kind, DivergenceKind::kRounding) << c.evidence.reason;
  EXPECT_EQ(c.evidence.source, "observed_noise");
  EXPECT_EQ(c.evidence.noise_steps, 2);
  EXPECT_DOUBLE_EQ(*c.evidence.observed_noise, 0.15);
  // Quiet earlier steps: the flip is more than the noise seen -> undetermined, naming the oracle.
  in.earlier = {EarlierStep(0.01, 1e-6)};
  c = ClassifyDivergence(in);
  EXPECT_EQ(c.kind, DivergenceKind::kUndetermined) << c.evidence.reason;
  EXPECT_NE(c.evidence.reason.find("--oracle"), std::string::npos);
  // The same figures at FP32: a relative difference of ~0.03 is far beyond FP32 rounding -> real.
  in.precision_a = in.precision_b = Precision::kFP32;
  in.earlier = {EarlierStep(0.15, 1e-4)};
  c = ClassifyDivergence(in);
  EXPECT_EQ(c.kind, DivergenceKind::kReal) << c.evidence.reason;
  EXPECT_GT(*c.evidence.rel_diff, *c.evidence.rounding_budget);
}

TEST(VerdictTest, UlpRuleOnlyWithoutEarlierSteps) {
  // Step 0, BF16 at magnitude ~8: ulp 2^-4 = 0.0625, tolerance 4 ulp = 0.25.
  std::vector<double> a = Logits(8.0, 7.95), b = Logits(7.95, 8.0);  // flip gap 0.1
  VerdictInputs in;
  in.a = &a;
  in.b = &b;
  in.token_a = 0;
  in.token_b = 1;
  in.precision_a = in.precision_b = Precision::kBF16;
  in.depth = 24;
  Classification c = ClassifyDivergence(in);
  EXPECT_EQ(c.kind, DivergenceKind::kRounding) << c.evidence.reason;
  EXPECT_EQ(c.evidence.source, "ulp");
  std::vector<double> b_far = Logits(7.5, 8.0);  // flip gap 0.55 > 0.25
  in.b = &b_far;
  c = ClassifyDivergence(in);
  EXPECT_EQ(c.kind, DivergenceKind::kUndetermined) << c.evidence.reason;
}

TEST(VerdictTest, NonFiniteLogitsAreAPrecisionFailure) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> a = Logits(5.0, 4.9), b = {inf, 1.0, 0.0, 0.0, 0.0, 0.0};
  VerdictInputs in;
  in.a = &a;
  in.b = &b;
  in.token_a = 0;
  in.token_b = 0;
  in.precision_a = in.precision_b = Precision::kFP16;
  in.overflow_point_b = "layer 3 mlp";
  Classification c = ClassifyDivergence(in);
  EXPECT_EQ(c.kind, DivergenceKind::kPrecisionFailure);
  EXPECT_EQ(*c.evidence.failing_side, "b");
  EXPECT_EQ(*c.evidence.overflow_point, "layer 3 mlp");
  EXPECT_NE(c.evidence.reason.find("layer 3 mlp"), std::string::npos);
}

TEST(VerdictTest, NanNeverComparesEqualVanishesOrPasses) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> a = {1.0, 2.0, 3.0}, b = {1.0, 2.0, 3.0};
  b[0] = nan;  // B's argmax is still 2 like A's: the step must still disagree
  StepRecord r = CompareLogits(a, b, 2);
  EXPECT_FALSE(r.top1_agree);
  EXPECT_EQ(r.nonfinite_b, 1);
  EXPECT_TRUE(std::isnan(r.kl));
  EXPECT_TRUE(std::isnan(r.max_abs_diff));
  StepRecord fine = CompareLogits(a, a, 2);
  r.step = 1;
  fine.step = 0;
  RunMetrics m = SummarizeSteps({fine, r});
  EXPECT_TRUE(std::isnan(m.max_kl));            // never vanishes from a maximum
  EXPECT_TRUE(std::isnan(m.max_abs_logit_diff));
  EXPECT_TRUE(std::isnan(m.p99_kl));
  EXPECT_EQ(m.first_divergence_step, 1);
  EXPECT_EQ(m.nonfinite_steps, 1);
  EXPECT_EQ(m.top1_agreement, 0.5);
  compare::Run run;
  run.id = "p0";
  run.metrics = m;
  Thresholds t;
  t.max_kl = 1e9;
  t.max_abs_logit_diff = 1e9;
  auto failures = CheckGates(run, t);
  EXPECT_EQ(failures.size(), 2u);  // NaN fails every gate on it
  EXPECT_TRUE(std::isnan(MaxPropagatingNan(1.0, nan)));
  EXPECT_TRUE(std::isnan(MaxPropagatingNan(nan, 1.0)));
}

TEST(VerdictTest, AggregatesCoverSameContextStepsAndReportTheRestApart) {
  std::vector<double> a = {1.0, 2.0, 3.0}, b = {1.0, 2.2, 3.0}, c = {3.0, 2.0, 1.0};
  StepRecord s0 = CompareLogits(a, b, 1), s1 = CompareLogits(a, c, 1), s2 = CompareLogits(a, c, 1);
  s0.step = 0;
  s1.step = 1;  // the divergence: still same-context
  s2.step = 2;
  s2.same_context = false;  // after the split
  RunMetrics m = SummarizeSteps({s0, s1, s2});
  EXPECT_EQ(m.same_context_steps, 2);
  EXPECT_EQ(m.top1_agreement, 0.5);
  EXPECT_DOUBLE_EQ(m.max_kl, std::max(s0.kl, s1.kl));
  EXPECT_EQ(m.after_split.steps, 1);
  EXPECT_DOUBLE_EQ(m.after_split.max_kl, s2.kl);
  EXPECT_EQ(m.after_split.top1_agreement, 0.0);
}

}  // namespace
}  // namespace parity::compare
