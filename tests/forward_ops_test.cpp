// The forward layer's ops against hand-written formulas: RMSNorm, rotary (both styles, dynamic NTK,
// linear scaling), the score scaling, masks and positions, the numerics (emulated FP16 rounding).
#include <cmath>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "harness/forward/numerics.h"
#include "harness/forward/ops.h"
#include "harness/forward/rotary.h"
#include "harness/model/config.h"

namespace parity::forward {
namespace {

const Numerics kFp64 = MakeNumerics(Precision::kFP64, c10::kCPU);
const Numerics kFp32 = MakeNumerics(Precision::kFP32, c10::kCPU);
const Numerics kFp16 = MakeNumerics(Precision::kFP16, c10::kCPU);

// Row-major copy of a tensor's values as doubles.
std::vector<double> Values(const at::Tensor& x) {
  at::Tensor flat = x.to(at::kDouble).contiguous().reshape({-1});
  return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
}

double MaxAbsDiff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

model::ModelConfig RopeConfig(int64_t head_dim, double theta, int64_t max_positions) {
  model::ModelConfig config;
  config.head_dim = head_dim;
  config.rope_theta = theta;
  config.max_position_embeddings = max_positions;
  return config;
}

TEST(ForwardNumerics, ParsesAndDescribesPrecisions) {
  EXPECT_EQ(ParsePrecision("fp16"), Precision::kFP16);
  EXPECT_EQ(ParsePrecision("BFloat16"), Precision::kBF16);
  EXPECT_EQ(ParsePrecision("float64"), Precision::kFP64);
  EXPECT_THROW(ParsePrecision("fp8"), InputError);
  EXPECT_TRUE(kFp16.emulated);
  EXPECT_EQ(kFp16.storage, c10::kFloat);
  EXPECT_EQ(kFp16.Describe(), "fp16 (emulated on cpu)");
  EXPECT_EQ(kFp64.upcast, c10::kDouble);
  EXPECT_EQ(kFp64.logits_type, c10::kDouble);
  EXPECT_FALSE(MakeNumerics(Precision::kBF16, c10::kCPU).emulated);
  EXPECT_EQ(kFp16.Lowest(), -65504.0);
}

TEST(ForwardNumerics, EmulatedRoundGivesHalfValues) {
  at::Tensor x = at::tensor({1.0, 1.0 + 1.0 / 4096, 3.14159265, 70000.0}, at::kFloat);
  std::vector<double> rounded = Values(kFp16.Round(x));
  EXPECT_EQ(rounded[0], 1.0);
  EXPECT_EQ(rounded[1], 1.0);  // 1 + 2^-12 is below half an FP16 ulp at 1 (2^-10 / 2)
  EXPECT_EQ(rounded[2], 3.140625);
  EXPECT_TRUE(std::isinf(rounded[3]));  // beyond FP16's 65504
  EXPECT_TRUE(kFp32.Round(x).equal(x));
}

TEST(ForwardOps, RmsNormMatchesHandFormulaInFp64) {
  at::manual_seed(1);
  const int64_t rows = 3, width = 24;
  const double eps = 1e-5;
  at::Tensor x = at::randn({rows, width}, at::kDouble) * 3.0;
  at::Tensor weight = at::rand({width}, at::kDouble) + 0.5;
  std::vector<double> xs = Values(x), ws = Values(weight), expected(rows * width);
  for (int64_t r = 0; r < rows; ++r) {
    double sum_squares = 0;
    for (int64_t c = 0; c < width; ++c) sum_squares += xs[r * width + c] * xs[r * width + c];
    const double inverse_rms = 1.0 / std::sqrt(sum_squares / width + eps);
    for (int64_t c = 0; c < width; ++c) {
      expected[r * width + c] = ws[c] * (xs[r * width + c] * inverse_rms);
    }
  }
  EXPECT_LT(MaxAbsDiff(Values(ops::RmsNorm(kFp64, x, weight, eps)), expected), 1e-14);
}

TEST(ForwardOps, RmsNormEmulatedFp16RoundsCastBackAndProduct) {
  at::manual_seed(2);
  at::Tensor x = kFp16.Round(at::randn({4, 32}));
  at::Tensor weight = kFp16.Round(at::rand({32}) + 0.5);
  at::Tensor out = ops::RmsNorm(kFp16, x, weight, 1e-6);
  EXPECT_TRUE(out.equal(out.to(at::kHalf).to(at::kFloat)));
  // Within one FP16 rounding of the normalised value and one of the product: 2 * 2^-11 relative.
  at::Tensor exact = ops::RmsNorm(kFp64, x.to(at::kDouble), weight.to(at::kDouble), 1e-6);
  at::Tensor relative = (out.to(at::kDouble) - exact).abs() / exact.abs().clamp_min(1e-3);
  EXPECT_LE(relative.max().item<double>(), 2.0 * std::pow(2.0, -11) * 1.01);
  // Not the FP32 result: the rounding happened.
  EXPECT_FALSE(out.equal(ops::RmsNorm(kFp32, x, weight, 1e-6)));
}

// The rotated vector as the rotate_half formula says, from cos/sin of p * base^(-2i/d).
std::vector<double> HandRotary(const std::vector<double>& x, int64_t position, double base,
                               int64_t dim) {
  std::vector<double> out(dim);
  const int64_t half = dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double angle = position * std::pow(base, -2.0 * i / dim);
    out[i] = x[i] * std::cos(angle) - x[i + half] * std::sin(angle);
    out[i + half] = x[i + half] * std::cos(angle) + x[i] * std::sin(angle);
  }
  return out;
}

TEST(ForwardRotary, BothStylesMatchHandFormulaInFp64) {
  const int64_t dim = 16, length = 6;
  const model::ModelConfig config = RopeConfig(dim, 10000.0, 64);
  at::manual_seed(3);
  at::Tensor x = at::randn({1, 2, length, dim}, at::kDouble);  // [B, heads, T, d]
  at::Tensor positions = at::arange(20, 20 + length, at::kLong).unsqueeze(0);
  for (RotaryStyle style : {RotaryStyle::kPrecomputedTable, RotaryStyle::kPerStep}) {
    Rotary rotary(config, kFp64, style);
    CosSin cs = rotary.Compute(positions, 20 + length);
    ASSERT_EQ(cs.cos.sizes(), (std::vector<int64_t>{1, 1, length, dim}));
    at::Tensor rotated = ops::ApplyRotary(kFp64, x, cs.cos, cs.sin);
    for (int64_t head = 0; head < 2; ++head) {
      for (int64_t t = 0; t < length; ++t) {
        std::vector<double> expected = HandRotary(Values(x[0][head][t]), 20 + t, 10000.0, dim);
        EXPECT_LT(MaxAbsDiff(Values(rotated[0][head][t]), expected), 1e-13)
            << "style " << int(style) << " head " << head << " t " << t;
      }
    }
  }
}

TEST(ForwardRotary, Fp32TablesAreFp32CosOfFp32Angles) {
  // Both references compute the angle p * inv_freq and its cos in FP32: |error| <= p * 2^-23 + ulp.
  const int64_t dim = 32;
  const model::ModelConfig config = RopeConfig(dim, 1e6, 128);
  at::Tensor positions = at::arange(0, 100, at::kLong).unsqueeze(0);
  for (RotaryStyle style : {RotaryStyle::kPrecomputedTable, RotaryStyle::kPerStep}) {
    Rotary rotary(config, kFp32, style);
    CosSin cs = rotary.Compute(positions, 100);
    EXPECT_EQ(cs.cos.scalar_type(), at::kFloat);
    Rotary exact(config, kFp64, style);
    CosSin reference = exact.Compute(positions, 100);
    EXPECT_LT(MaxAbsDiff(Values(cs.cos), Values(reference.cos)), 100 * std::pow(2.0, -23));
    EXPECT_GT(MaxAbsDiff(Values(cs.cos), Values(reference.cos)), 0.0);  // really FP32
  }
}

TEST(ForwardRotary, DynamicNtkBaseMatchesHandCalculation) {
  // base' = 10000 * ((2 * 100 / 64) - 1) ^ (16 / 14), evaluated by hand (Python double):
  const double hand = 23665.980178829905;
  EXPECT_NEAR(InternLM2DynamicBase(10000.0, 2.0, 100, 64, 16), hand, hand * 1e-15);
  // HF evaluates it in FP32 tensor arithmetic: within FP32 rounding of the same value.
  const double hf = HfDynamicBase(10000.0, 2.0, 100, 64, 16, c10::kFloat, c10::kCPU).item<double>();
  EXPECT_NEAR(hf, hand, hand * 4 * std::pow(2.0, -24));
  // Below max_position_embeddings HF clamps seq_len to it: base' = base.
  EXPECT_EQ(HfDynamicBase(10000.0, 2.0, 10, 64, 16, c10::kDouble, c10::kCPU).item<double>(), 10000.0);
  // The real InternLM2-7B rope (theta 1e6, factor 2, max 32768, d 128) at seq_len 40000:
  EXPECT_NEAR(InternLM2DynamicBase(1e6, 2.0, 40000, 32768, 128), 1449795.7419935765, 1e-6);
}

TEST(ForwardRotary, DynamicNtkAppliesOnlyAboveMaxPositions) {
  const int64_t dim = 16, max_positions = 64;
  model::ModelConfig config = RopeConfig(dim, 10000.0, max_positions);
  config.rope_scaling.type = model::RopeScaling::Type::kDynamic;
  config.rope_scaling.factor = 2.0;
  const double hand = 23665.980178829905;  // base' at seq_len 100 (see above)
  at::Tensor x = at::randn({1, 1, 1, dim}, at::kDouble);
  for (RotaryStyle style : {RotaryStyle::kPrecomputedTable, RotaryStyle::kPerStep}) {
    Rotary rotary(config, kFp64, style);
    EXPECT_EQ(rotary.EffectiveBase(64), 10000.0);
    EXPECT_NEAR(rotary.EffectiveBase(100), hand, hand * 1e-14);
    // One new token at position 99 with 100 keys: rotated with base'.
    at::Tensor position = at::full({1, 1}, 99, at::kLong);
    CosSin cs = rotary.Compute(position, 100);
    at::Tensor rotated = ops::ApplyRotary(kFp64, x, cs.cos, cs.sin);
    EXPECT_LT(MaxAbsDiff(Values(rotated), HandRotary(Values(x), 99, hand, dim)), 1e-12);
    EXPECT_GT(MaxAbsDiff(Values(rotated), HandRotary(Values(x), 99, 10000.0, dim)), 1e-3);
    // Position 50 with 51 keys: the plain base.
    at::Tensor early = at::full({1, 1}, 50, at::kLong);
    cs = rotary.Compute(early, 51);
    rotated = ops::ApplyRotary(kFp64, x, cs.cos, cs.sin);
    EXPECT_LT(MaxAbsDiff(Values(rotated), HandRotary(Values(x), 50, 10000.0, dim)), 1e-13);
  }
  // InternLM2's seq_len is the keys' length (padding included); HF's is max(position) + 1. A left-
  // padded batch whose positions stay below max_positions while the keys exceed it tells them apart.
  at::Tensor position = at::full({1, 1}, 50, at::kLong);
  Rotary table(config, kFp64, RotaryStyle::kPrecomputedTable);
  Rotary per_step(config, kFp64, RotaryStyle::kPerStep);
  at::Tensor by_table = ops::ApplyRotary(kFp64, x, table.Compute(position, 100).cos,
                                         table.Compute(position, 100).sin);
  at::Tensor by_step = ops::ApplyRotary(kFp64, x, per_step.Compute(position, 100).cos,
                                        per_step.Compute(position, 100).sin);
  EXPECT_LT(MaxAbsDiff(Values(by_table), HandRotary(Values(x), 50, hand, dim)), 1e-12);
  EXPECT_LT(MaxAbsDiff(Values(by_step), HandRotary(Values(x), 50, 10000.0, dim)), 1e-13);
}

TEST(ForwardRotary, LinearScalingDividesPositions) {
  const int64_t dim = 16;
  model::ModelConfig config = RopeConfig(dim, 10000.0, 64);
  config.rope_scaling.type = model::RopeScaling::Type::kLinear;
  config.rope_scaling.factor = 4.0;
  at::Tensor x = at::randn({1, 1, 1, dim}, at::kDouble);
  at::Tensor position = at::full({1, 1}, 36, at::kLong);
  for (RotaryStyle style : {RotaryStyle::kPrecomputedTable, RotaryStyle::kPerStep}) {
    Rotary rotary(config, kFp64, style);
    CosSin cs = rotary.Compute(position, 37);
    at::Tensor rotated = ops::ApplyRotary(kFp64, x, cs.cos, cs.sin);
    // Position 36 / 4 = 9 with the plain base.
    EXPECT_LT(MaxAbsDiff(Values(rotated), HandRotary(Values(x), 9, 10000.0, dim)), 1e-13);
  }
}

TEST(ForwardRotary, TableGrowsBeyondItsInitialRows) {
  // max_position_embeddings above the initial table size: rows are added on demand and agree with
  // the per-step computation (FP64, where both are exact to rounding).
  const model::ModelConfig config = RopeConfig(8, 10000.0, 10000);
  Rotary table(config, kFp64, RotaryStyle::kPrecomputedTable);
  Rotary per_step(config, kFp64, RotaryStyle::kPerStep);
  at::Tensor positions = at::tensor({5, 4500, 9999}, at::kLong).unsqueeze(0);
  EXPECT_LT(MaxAbsDiff(Values(table.Compute(positions, 10000).cos),
                       Values(per_step.Compute(positions, 10000).cos)),
            1e-11);
}

TEST(ForwardOps, DivisionAndMultiplicationByRootHeadDimDifferInFp32) {
  // InternLM2 divides the scores by sqrt(d), HF Llama multiplies by d ** -0.5. For d = 32,
  // sqrt(32) is not a power of two, so the two differ in the last bit on some inputs; for d = 64
  // (sqrt = 8) they are identical. Each stays within one FP32 ulp of the exact quotient.
  at::manual_seed(4);
  at::Tensor scores = at::randn({100000}) * 10;
  for (int64_t dim : {32, 64}) {
    at::Tensor divided = ops::ScaleScores(kFp32, scores, dim, ops::ScoreScaling::kDivideBySqrt);
    at::Tensor multiplied =
        ops::ScaleScores(kFp32, scores, dim, ops::ScoreScaling::kMultiplyByInverse);
    const int64_t differing = divided.ne(multiplied).sum().item<int64_t>();
    if (dim == 32) {
      EXPECT_GT(differing, 100) << "division and multiplication gave the same bits everywhere";
    } else {
      EXPECT_EQ(differing, 0);
    }
    at::Tensor exact = scores.to(at::kDouble) / std::sqrt(double(dim));
    at::Tensor ulp = exact.abs() * std::pow(2.0, -23);
    EXPECT_TRUE(((divided.to(at::kDouble) - exact).abs() <= ulp).all().item<bool>());
    EXPECT_TRUE(((multiplied.to(at::kDouble) - exact).abs() <= ulp).all().item<bool>());
  }
}

TEST(ForwardOps, RepeatKvMapsQueryHeadToKvHeadDividedByGroups) {
  at::Tensor kv = at::arange(3, at::kDouble).view({1, 3, 1, 1}).expand({1, 3, 2, 4});
  at::Tensor repeated = ops::RepeatKv(kv, 4);  // 12 query heads
  ASSERT_EQ(repeated.size(1), 12);
  for (int64_t head = 0; head < 12; ++head) {
    EXPECT_EQ(repeated[0][head][1][2].item<double>(), double(head / 4)) << head;
  }
}

TEST(ForwardOps, LeftPaddingPositionsAndMask) {
  // Row 0: two padding tokens, then three real ones; row 1: five real tokens.
  at::Tensor mask = at::tensor({0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, at::kLong).view({2, 5});
  ops::AttentionInputs inputs = ops::MakeAttentionInputs(kFp32, 2, 0, 5, mask, true, true);
  EXPECT_TRUE(inputs.padded);
  EXPECT_EQ(Values(inputs.positions), (std::vector<double>{1, 1, 0, 1, 2, 0, 1, 2, 3, 4}));
  const float lowest = std::numeric_limits<float>::lowest();
  // Real query 3 of row 0 reads keys 2 and 3 only.
  EXPECT_EQ(Values(inputs.additive_mask[0][0][3]),
            (std::vector<double>{lowest, lowest, 0, 0, lowest}));
  // Padding query 0 of row 0 may read everything (no fully masked row).
  EXPECT_EQ(Values(inputs.additive_mask[0][0][0]), (std::vector<double>(5, 0.0)));
  EXPECT_EQ(Values(inputs.additive_mask[1][0][1]),
            (std::vector<double>{0, 0, lowest, lowest, lowest}));
  EXPECT_TRUE(inputs.allowed.logical_not().equal(inputs.additive_mask.ne(0)));
  // One decode step after the prefix, row 0 still padded: position 3 for row 0, 5 for row 1.
  at::Tensor step_mask = at::cat({mask, at::ones({2, 1}, at::kLong)}, 1);
  ops::AttentionInputs step = ops::MakeAttentionInputs(kFp16, 2, 5, 1, step_mask, true, false);
  EXPECT_EQ(Values(step.positions), (std::vector<double>{3, 5}));
  EXPECT_EQ(Values(step.additive_mask[0][0][0]),
            (std::vector<double>{-65504, -65504, 0, 0, 0, 0}));
  // Nothing masked: no additive mask at all for one unpadded token.
  ops::AttentionInputs plain = ops::MakeAttentionInputs(kFp32, 1, 7, 1, at::Tensor(), true, true);
  EXPECT_FALSE(plain.additive_mask.defined());
  EXPECT_FALSE(plain.allowed.defined());
  EXPECT_EQ(Values(plain.positions), (std::vector<double>{7}));
  EXPECT_THROW(ops::MakeAttentionInputs(kFp32, 2, 0, 4, mask, true, false), InputError);
}

TEST(ForwardOps, EagerAttentionMatchesHandSoftmaxInFp64) {
  at::manual_seed(5);
  const int64_t dim = 8, length = 3;
  at::Tensor q = at::randn({1, 2, length, dim}, at::kDouble);
  at::Tensor k = at::randn({1, 1, length, dim}, at::kDouble);  // one KV head for two query heads
  at::Tensor v = at::randn({1, 1, length, dim}, at::kDouble);
  ops::AttentionInputs inputs = ops::MakeAttentionInputs(kFp64, 1, 0, length, at::Tensor(), true, false);
  at::Tensor out =
      ops::EagerAttention(kFp64, q, k, v, inputs, ops::ScoreScaling::kDivideBySqrt);
  std::vector<double> ks = Values(k), vs = Values(v);
  for (int64_t head = 0; head < 2; ++head) {
    for (int64_t t = 0; t < length; ++t) {
      std::vector<double> qs = Values(q[0][head][t]);
      std::vector<double> weights;
      double total = 0;
      for (int64_t s = 0; s <= t; ++s) {  // causal
        double dot = 0;
        for (int64_t i = 0; i < dim; ++i) dot += qs[i] * ks[s * dim + i];
        weights.push_back(std::exp(dot / std::sqrt(double(dim))));
        total += weights.back();
      }
      std::vector<double> expected(dim, 0.0);
      for (int64_t s = 0; s <= t; ++s) {
        for (int64_t i = 0; i < dim; ++i) expected[i] += weights[s] / total * vs[s * dim + i];
      }
      EXPECT_LT(MaxAbsDiff(Values(out[0][head][t]), expected), 1e-14) << head << " " << t;
    }
  }
}

TEST(ForwardOps, SdpaNeedsLibtorch2) {
  at::Tensor q = at::randn({1, 2, 3, 8}, at::kDouble);
  at::Tensor k = at::randn({1, 1, 3, 8}, at::kDouble);
  ops::AttentionInputs inputs = ops::MakeAttentionInputs(kFp64, 1, 0, 3, at::Tensor(), true, true);
  if (!ops::SdpaAvailable()) {
    try {
      ops::SdpaAttention(kFp64, q, k, k, inputs);
      FAIL() << "expected InputError";
    } catch (const InputError& error) {
      EXPECT_NE(std::string(error.what()).find("sdpa needs libtorch 2.x"), std::string::npos);
    }
    return;
  }
  at::Tensor eager = ops::EagerAttention(kFp64, q, k, k, inputs, ops::ScoreScaling::kMultiplyByInverse);
  EXPECT_LT(MaxAbsDiff(Values(ops::SdpaAttention(kFp64, q, k, k, inputs)), Values(eager)), 1e-13);
}

}  // namespace
}  // namespace parity::forward
