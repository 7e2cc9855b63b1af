// The MoE block and the sliding-window mask against hand formulas (FP64), independent of HF's golden.
#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "harness/forward/numerics.h"
#include "harness/forward/ops.h"

namespace parity::forward {
namespace {

const Numerics kFp64 = MakeNumerics(Precision::kFP64, c10::kCPU);

// SwiGLU of one expert on one token, by hand: down(silu(gate x) * up x).
at::Tensor Swiglu(const ops::Expert& e, const at::Tensor& x) {
  at::Tensor g = at::matmul(e.gate, x), u = at::matmul(e.up, x);
  return at::matmul(e.down, g / (1 + at::exp(-g)) * u);
}

TEST(ForwardMoe, SparseMoeIsTheWeightedSumOfTheTopKExperts) {
  at::manual_seed(3);
  const int64_t tokens = 5, width = 12, inner = 7, experts = 8, top_k = 2;
  const at::Tensor x = at::randn({1, tokens, width}, at::kDouble);
  const at::Tensor router = at::randn({experts, width}, at::kDouble);
  std::vector<ops::Expert> list;
  for (int64_t e = 0; e < experts; ++e) {
    list.push_back({at::randn({inner, width}, at::kDouble) / 3, at::randn({inner, width}, at::kDouble) / 3,
                    at::randn({width, inner}, at::kDouble) / 3});
  }
  for (bool normalize : {false, true}) {
    const at::Tensor out = ops::SparseMoe(kFp64, x, router, list, top_k, normalize);
    ASSERT_EQ(out.sizes(), x.sizes());
    for (int64_t t = 0; t < tokens; ++t) {
      const at::Tensor token = x[0][t];
      std::vector<double> p(experts);
      double total = 0;
      for (int64_t e = 0; e < experts; ++e) total += p[e] = std::exp(at::dot(router[e], token).item<double>());
      std::vector<int64_t> order(experts);
      for (int64_t e = 0; e < experts; ++e) order[e] = e;
      std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
      const double chosen = p[order[0]] + p[order[1]];
      at::Tensor expected = at::zeros({width}, at::kDouble);
      for (int64_t rank = 0; rank < top_k; ++rank) {
        const int64_t e = order[rank];
        const double weight = normalize ? p[e] / chosen : p[e] / total;
        expected = expected + weight * Swiglu(list[e], token);
      }
      EXPECT_LT((out[0][t] - expected).abs().max().item<double>(), 1e-12) << "token " << t;
    }
  }
}

TEST(ForwardMoe, SlidingWindowMaskReadsTheLastWindowKeys) {
  // 3 cached + 4 new positions, window 3: query at cache index q reads keys q-2..q.
  const ops::AttentionInputs inputs =
      ops::MakeAttentionInputs(kFp64, 1, 3, 4, at::Tensor(), true, true, 3);
  ASSERT_TRUE(inputs.allowed.defined());
  for (int64_t t = 0; t < 4; ++t) {
    for (int64_t s = 0; s < 7; ++s) {
      const int64_t q = 3 + t;
      const bool expected = s <= q && q - s < 3;
      EXPECT_EQ(inputs.allowed[0][0][t][s].item<bool>(), expected) << t << "," << s;
      EXPECT_EQ(inputs.additive_mask[0][0][t][s].item<double>() == 0.0, expected) << t << "," << s;
    }
  }
  // One new token beyond the window still needs a mask; within it, none.
  EXPECT_TRUE(ops::MakeAttentionInputs(kFp64, 1, 5, 1, at::Tensor(), true, false, 3).additive_mask.defined());
  EXPECT_FALSE(ops::MakeAttentionInputs(kFp64, 1, 1, 1, at::Tensor(), true, false, 3).additive_mask.defined());
}

}  // namespace
}  // namespace parity::forward
