// How long `parity localize` takes on a model of real depth and width (24 layers, hidden 1024, GQA
// 16/8 heads, MLP 2816: ~0.27 B parameters, random weights from make-fixture, BF16 on disk) next to
// one plain forward pass of the same model over the same tokens. Localize = build A and B at FP32
// (cast from BF16), greedy stream of A to the step, two observed forward passes, then A and B built
// and run in FP64 one at a time.
//   ./parity_bench --benchmark_filter=Localize
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include "harness/convert/internlm2_to_llama.h"
#include "harness/convert/random_fixture.h"
#include "harness/diagnose/localize.h"
#include "harness/diagnose/model_source.h"
#include "tests/test_util.h"

namespace parity::diagnose {
namespace {

const std::vector<int64_t> kPrompt = {1, 17, 233, 90, 411, 5, 64, 300, 12, 250, 77, 401,
                                      3, 99, 180, 45};
constexpr int64_t kStep = 4;

// The 24 x 1024 model and its Llama conversion, written once per process.
struct BigModels {
  TempDir dir;
  std::string original, converted;
  BigModels() {
    convert::FixtureOptions options;
    options.seed = 3;
    options.num_layers = 24;
    options.hidden_size = 1024;
    options.num_heads = 16;
    options.num_kv_heads = 8;
    options.intermediate_size = 2816;
    original = dir.path() + "/original";
    converted = dir.path() + "/converted";
    convert::MakeFixture(original, options);
    convert::ConvertInternLM2ToLlama(original, converted);
  }
};
BigModels& Models() {
  static BigModels models;
  return models;
}

std::vector<int64_t> StepTokens() {
  std::vector<int64_t> tokens = kPrompt;
  for (int64_t i = 0; i < kStep; ++i) tokens.push_back(100 + i);
  return tokens;
}

void BM_PlainForward(benchmark::State& state) {
  ModelSource source = CheckpointSource(Models().original);
  auto model = source.Build(forward::MakeNumerics(forward::Precision::kFP32, c10::kCPU));
  const std::vector<int64_t> tokens = StepTokens();
  at::Tensor ids = at::tensor(at::ArrayRef<int64_t>(tokens), at::kLong).view({1, -1});
  for (auto _ : state) {
    forward::KVCache cache;
    benchmark::DoNotOptimize(model->Forward(ids, cache));
  }
  state.counters["tokens"] = static_cast<double>(tokens.size());
}
BENCHMARK(BM_PlainForward)->Unit(benchmark::kMillisecond)->Iterations(5);

void BM_BuildModelFp32(benchmark::State& state) {
  ModelSource source = CheckpointSource(Models().original);
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        source.Build(forward::MakeNumerics(forward::Precision::kFP32, c10::kCPU)));
  }
}
BENCHMARK(BM_BuildModelFp32)->Unit(benchmark::kMillisecond)->Iterations(2);

// Localize at a given step (no search for the divergence).
void BM_LocalizeAtStep(benchmark::State& state) {
  ModelSource a = CheckpointSource(Models().original);
  ModelSource b = CheckpointSource(Models().converted);
  LocalizeOptions options;
  options.step = kStep;
  for (auto _ : state) {
    LocalizeResult r = Localize(a, b, kPrompt, options);
    benchmark::DoNotOptimize(r.points.data());
    state.counters["points"] = static_cast<double>(r.points.size());
  }
}
BENCHMARK(BM_LocalizeAtStep)->Unit(benchmark::kMillisecond)->Iterations(2);

// Localize with its default step: a free greedy run of 16 steps looks for the first divergence.
void BM_LocalizeFreeRun16(benchmark::State& state) {
  ModelSource a = CheckpointSource(Models().original);
  ModelSource b = CheckpointSource(Models().converted);
  LocalizeOptions options;
  options.max_new_tokens = 16;
  for (auto _ : state) {
    LocalizeResult r = Localize(a, b, kPrompt, options);
    benchmark::DoNotOptimize(r.points.data());
  }
}
BENCHMARK(BM_LocalizeFreeRun16)->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace
}  // namespace parity::diagnose

