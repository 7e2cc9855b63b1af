// Weight-difference explanations: each hypothesis named on tensors changed in a known way, the
// roundings against hand-computed values, and "unexplained" when nothing fits.
#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "harness/compare/weight_explain.h"

namespace parity::compare {
namespace {

at::Tensor Random(std::vector<int64_t> shape, uint64_t seed) {
  at::manual_seed(seed);
  return at::randn(shape, at::kFloat) * 0.02;
}

// q_proj-like context: 8 heads of 8 rows.
TensorContext QContext() {
  TensorContext c;
  c.label = "layer 0 q";
  c.head_dim = 8;
  c.row_heads = 8;
  c.rope_heads = {8};
  return c;
}

TEST(WeightExplain, ScaleSignOffsetAreFittedWithTheirParameters) {
  const at::Tensor a = Random({64, 64}, 1);
  WeightExplanation e = ExplainWeightDifference(a, a * 1.01, {});
  EXPECT_EQ(e.kind, "scale") << e.sentence;
  EXPECT_NEAR(e.details["factor"].get<double>(), 1.01, 1e-7);
  EXPECT_LE(e.residual, 2 * std::ldexp(1.0, -24));
  EXPECT_NE(e.sentence.find("1.01"), std::string::npos) << e.sentence;

  e = ExplainWeightDifference(a, -a, {});
  EXPECT_EQ(e.kind, "sign_flip") << e.sentence;
  EXPECT_EQ(e.residual, 0.0);

  e = ExplainWeightDifference(a, a + 0.01, {});
  EXPECT_EQ(e.kind, "offset") << e.sentence;
  EXPECT_NEAR(e.details["offset"].get<double>(), 0.01, 1e-7);

  // A BF16 tensor scaled: accepted within BF16's own rounding (the scaled product is rounded).
  const at::Tensor a16 = a.to(at::kBFloat16);
  e = ExplainWeightDifference(a16, (a16.to(at::kFloat) * 1.5).to(at::kBFloat16), {});
  EXPECT_EQ(e.kind, "scale") << e.sentence;
  // Least squares over BF16-rounded products: within BF16's unit roundoff of the true factor.
  EXPECT_NEAR(e.details["factor"].get<double>(), 1.5, 1.5 * std::ldexp(1.0, -8));

  // A BF16 tensor scaled by 1.01: the factor is within 4 BF16 ULPs of 1, and it is still a scale
  // (a 7B-shaped run called this "unexplained" when factors that close to 1 were not tried).
  e = ExplainWeightDifference(a16, (a16.to(at::kFloat) * 1.01).to(at::kBFloat16), {});
  EXPECT_EQ(e.kind, "scale") << e.sentence;
  EXPECT_NEAR(e.details["factor"].get<double>(), 1.01, 1.01 * std::ldexp(1.0, -8));
  // Plain BF16 rounding of an FP32 tensor stays "rounded to BF16", not a scale near 1.
  e = ExplainWeightDifference(a, a.to(at::kBFloat16).to(at::kFloat), {});
  EXPECT_EQ(e.kind, "rounded_bf16") << e.sentence;
}

TEST(WeightExplain, TransposeAndSwapWithAnotherTensor) {
  const at::Tensor a = Random({64, 64}, 2);
  WeightExplanation e = ExplainWeightDifference(a, a.t().contiguous(), {});
  EXPECT_EQ(e.kind, "transpose") << e.sentence;

  const at::Tensor up = Random({176, 64}, 3);
  const at::Tensor gate = Random({176, 64}, 4);
  TensorContext context;
  context.partners.push_back({"layer 0 up", [up] { return up; }});
  e = ExplainWeightDifference(gate, up, context);
  EXPECT_EQ(e.kind, "swapped") << e.sentence;
  EXPECT_EQ(e.details["partner"], "layer 0 up");
  EXPECT_NE(e.sentence.find("layer 0 up"), std::string::npos);
}

TEST(WeightExplain, HeadBlocksRotatedOrSwapped) {
  const at::Tensor q = Random({64, 64}, 5);
  // Rotated by one head: B's head h is A's head h + 1.
  const at::Tensor rotated = at::cat({q.slice(0, 8), q.slice(0, 0, 8)});
  WeightExplanation e = ExplainWeightDifference(q, rotated, QContext());
  EXPECT_EQ(e.kind, "heads_rotated") << e.sentence;
  EXPECT_EQ(e.details["shift"], 1);
  EXPECT_EQ(e.residual, 0.0);

  at::Tensor swapped = q.clone();
  swapped.slice(0, 16, 24).copy_(q.slice(0, 40, 48));
  swapped.slice(0, 40, 48).copy_(q.slice(0, 16, 24));
  e = ExplainWeightDifference(q, swapped, QContext());
  EXPECT_EQ(e.kind, "heads_swapped") << e.sentence;
  EXPECT_EQ(e.details["swapped_heads"], nlohmann::json({2, 5}));

  // o_proj: the heads are its columns.
  TensorContext o;
  o.head_dim = 8;
  o.col_heads = 8;
  const at::Tensor cols = at::cat({q.slice(1, 56), q.slice(1, 0, 56)}, 1);  // rotated by 7
  e = ExplainWeightDifference(q, cols, o);
  EXPECT_EQ(e.kind, "heads_rotated") << e.sentence;
  EXPECT_EQ(e.details["axis"], "columns");
  EXPECT_EQ(e.details["shift"], 7);
}

TEST(WeightExplain, GgufRopePermutationAndItsInverse) {
  // n_head 2, 4 rows per head: output rows take input rows 0 2 1 3 | 4 6 5 7.
  const at::Tensor rows = at::arange(8, at::kFloat).reshape({8, 1});
  EXPECT_TRUE(GgufRopePermute(rows, 2).reshape({8}).equal(
      at::tensor({0.f, 2.f, 1.f, 3.f, 4.f, 6.f, 5.f, 7.f})));
  EXPECT_TRUE(GgufRopeUnpermute(GgufRopePermute(rows, 2), 2).equal(rows));

  const at::Tensor q = Random({64, 64}, 6);
  WeightExplanation e = ExplainWeightDifference(q, GgufRopePermute(q, 8), QContext());
  EXPECT_EQ(e.kind, "gguf_rope_permutation") << e.sentence;
  EXPECT_EQ(e.details["n_head"], 8);
  e = ExplainWeightDifference(q, GgufRopeUnpermute(q, 8), QContext());
  EXPECT_EQ(e.kind, "gguf_rope_inverse_permutation") << e.sentence;
  // K of a GQA model (4 KV heads of 8 rows) permuted with the query head count (8) by mistake:
  // still named, with that count.
  TensorContext k;
  k.head_dim = 8;
  k.row_heads = 4;
  k.rope_heads = {4, 8};
  const at::Tensor kw = Random({32, 64}, 7);
  e = ExplainWeightDifference(kw, GgufRopePermute(kw, 8), k);
  EXPECT_EQ(e.kind, "gguf_rope_permutation") << e.sentence;
  EXPECT_EQ(e.details["n_head"], 8);
}

TEST(WeightExplain, RowsExchangedAreListed) {
  const at::Tensor emb = Random({512, 64}, 8);
  at::Tensor b = emb.clone();
  b[5].copy_(emb[6]);
  b[6].copy_(emb[5]);
  WeightExplanation e = ExplainWeightDifference(emb, b, {});
  EXPECT_EQ(e.kind, "rows_exchanged") << e.sentence;
  EXPECT_EQ(e.details["pairs"], nlohmann::json({{5, 6}}));
  EXPECT_NE(e.sentence.find("rows 5 and 6 exchanged"), std::string::npos) << e.sentence;
  // A 3-cycle is not a set of exchanges: listed as moves.
  b = emb.clone();
  b[1].copy_(emb[2]);
  b[2].copy_(emb[3]);
  b[3].copy_(emb[1]);
  e = ExplainWeightDifference(emb, b, {});
  EXPECT_EQ(e.kind, "rows_permuted") << e.sentence;
  EXPECT_EQ(e.details["moved"], 3);
}

TEST(WeightExplain, RoundingsMatchHandComputedValues) {
  // e4m3fn: 3 mantissa bits; 0.3 -> 0.3125 (quantum 2^-5), 0.001 -> 2^-9 (subnormal), 1000 -> NaN.
  at::Tensor fp8 = RoundToFp8E4M3(at::tensor({0.3f, -0.3f, 0.001f, 448.f, 1000.f, 0.f}));
  EXPECT_FLOAT_EQ(fp8[0].item<float>(), 0.3125f);
  EXPECT_FLOAT_EQ(fp8[1].item<float>(), -0.3125f);
  EXPECT_FLOAT_EQ(fp8[2].item<float>(), std::ldexp(1.0f, -9));
  EXPECT_FLOAT_EQ(fp8[3].item<float>(), 448.f);
  EXPECT_TRUE(std::isnan(fp8[4].item<float>()));
  EXPECT_EQ(fp8[5].item<float>(), 0.f);
  // Q8_0: amax 1.27 -> d = 0.01 (FP16 0.01000213623046875); 0.5 -> round(50) * d.
  at::Tensor block = at::zeros({32}, at::kFloat);
  block[0] = 1.27f;
  block[1] = 0.5f;
  block[2] = -0.0149f;  // 1.49 -> 1
  at::Tensor q = RoundToQ8_0(block);
  const float d = static_cast<float>(at::Half(1.27f / 127.0f));
  EXPECT_FLOAT_EQ(q[0].item<float>(), 127 * d);
  EXPECT_FLOAT_EQ(q[1].item<float>(), 50 * d);
  EXPECT_FLOAT_EQ(q[2].item<float>(), -1 * d);
  EXPECT_EQ(q[3].item<float>(), 0.f);
}

TEST(WeightExplain, EachRoundingIsNamedExactly) {
  const at::Tensor a = Random({64, 64}, 9);
  struct Case {
    at::Tensor b;
    const char* kind;
  };
  const std::vector<Case> cases = {
      {a.to(at::kBFloat16).to(at::kFloat), "rounded_bf16"},
      {a.to(at::kHalf).to(at::kFloat), "rounded_fp16"},
      {RoundToFp8E4M3(a), "rounded_fp8_e4m3"},
      {RoundToQ8_0(a), "rounded_q8_0"},
      // Stored in the narrower dtype itself (a dtype difference): still exactly the rounding.
      {a.to(at::kBFloat16), "rounded_bf16"},
  };
  for (const Case& c : cases) {
    WeightExplanation e = ExplainWeightDifference(a, c.b, {});
    EXPECT_EQ(e.kind, c.kind) << e.sentence;
    EXPECT_EQ(e.residual, 0.0) << c.kind;
    EXPECT_TRUE(e.explained);
  }
}

TEST(WeightExplain, NoiseIsUnexplainedWithTheClosestHypothesis) {
  const at::Tensor a = Random({64, 64}, 10);
  WeightExplanation e = ExplainWeightDifference(a, a + Random({64, 64}, 11) * 0.1, {});
  EXPECT_FALSE(e.explained);
  EXPECT_EQ(e.kind, "unexplained");
  EXPECT_GT(e.residual, 1e-3);
  EXPECT_NE(e.sentence.find("closest"), std::string::npos) << e.sentence;
  // One element changed: not "a scale of 1.0000001".
  at::Tensor b = a.clone();
  b[3][4] = b[3][4] * 1.5;
  e = ExplainWeightDifference(a, b, {});
  EXPECT_EQ(e.kind, "unexplained") << e.sentence;
  e = ExplainWeightDifference(a, at::zeros_like(a), {});
  EXPECT_EQ(e.kind, "zeroed");
}

TEST(WeightExplain, LargeTensorsAreScreenedOnASampleAndConfirmedInFull) {
  const at::Tensor a = Random({1100, 4096}, 12);  // 4.5M elements > kFullTestElements
  WeightExplanation e = ExplainWeightDifference(a, a * 0.5, {});
  EXPECT_EQ(e.kind, "scale");
  EXPECT_TRUE(e.sampled);
  EXPECT_EQ(e.sample_rows, kFullTestElements / 4096);
  EXPECT_TRUE(e.confirmed_full);
  // Fits the sample, fails in full: a row outside the sample breaks the scale.
  at::Tensor b = a * 0.5;
  b[1099] = a[1099];  // the sample is rows floor(i * 1100 / 1024): 1099 is not among them
  e = ExplainWeightDifference(a, b, {});
  EXPECT_EQ(e.kind, "unexplained") << e.sentence;
}

}  // namespace
}  // namespace parity::compare
