// diff-weights explanation cost on 7B-shaped tensors: one [14336, 4096] BF16 tensor (gate/up of an
// internlm2_5-7b / Llama-3-8B-sized model) explained against a copy changed in a known way, per
// hypothesis family: a scale (screened on a row sample, then confirmed on all 58.7M elements), rows
// exchanged (found by row hashing), and noise (every hypothesis fails: the most expensive case).
// A [4096, 4096] square tensor (o_proj) adds the transpose and column tests.
//
//   build/parity_bench --benchmark_filter=WeightExplain
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include "harness/compare/weight_explain.h"

namespace parity::compare {
namespace {

at::Tensor Weight(int64_t rows, int64_t cols) {
  at::manual_seed(0);
  return (at::randn({rows, cols}, at::kFloat) * 0.02).to(at::kBFloat16);
}

void Run(benchmark::State& state, int64_t rows, int64_t cols, int kind) {
  const at::Tensor a = Weight(rows, cols);
  at::Tensor b;
  if (kind == 0) {
    b = (a.to(at::kFloat) * 1.5).to(at::kBFloat16);
  } else if (kind == 1) {
    b = a.clone();
    b[5].copy_(a[6]);
    b[6].copy_(a[5]);
  } else {
    b = (a.to(at::kFloat) + at::randn_like(a, at::kFloat) * 0.001).to(at::kBFloat16);
  }
  std::string kind_seen;
  for (auto _ : state) {
    WeightExplanation e = ExplainWeightDifference(a, b, {});
    kind_seen = e.kind;
    benchmark::DoNotOptimize(e.residual);
  }
  state.SetLabel(kind_seen);
}

void BM_WeightExplain_Gate7B_Scale(benchmark::State& s) { Run(s, 14336, 4096, 0); }
void BM_WeightExplain_Gate7B_RowsExchanged(benchmark::State& s) { Run(s, 14336, 4096, 1); }
void BM_WeightExplain_Gate7B_Unexplained(benchmark::State& s) { Run(s, 14336, 4096, 2); }
void BM_WeightExplain_O7B_Unexplained(benchmark::State& s) { Run(s, 4096, 4096, 2); }
BENCHMARK(BM_WeightExplain_Gate7B_Scale)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_WeightExplain_Gate7B_RowsExchanged)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_WeightExplain_Gate7B_Unexplained)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_WeightExplain_O7B_Unexplained)->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace
}  // namespace parity::compare
