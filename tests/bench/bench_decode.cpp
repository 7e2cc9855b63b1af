// Decode-step benchmark: per-token time of one greedy step with the KV cache, at a few model sizes and
// precisions, reported against the time of the same model's GEMMs alone (M = 1, same dtype, same
// device) measured in the same run, so that the figure survives a noisy shared machine:
// `step_over_gemm` = 1 would mean the step is nothing but its matrix products.
//
//   build/parity_bench --benchmark_filter=Decode            # CPU
//   PARITY_BENCH_DEVICE=cuda build-gpu/parity_bench ...     # CUDA (libtorch 2.x build)
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include "harness/forward/causal_lm.h"
#include "harness/forward/weights.h"

namespace parity::forward {
namespace {

using model::Role;

c10::Device BenchDevice() {
  const char* env = std::getenv("PARITY_BENCH_DEVICE");
  return env != nullptr && std::string(env) == "cuda" ? c10::Device(c10::kCUDA, 0)
                                                      : c10::Device(c10::kCPU);
}

void Synchronize(const at::Tensor& t) { t.sum().item<double>(); }

// An InternLM2-shaped config: head_dim 64, two query heads per KV head, F = 11/4 D, vocab 8192.
model::ModelConfig BenchConfig(int64_t hidden, int64_t layers) {
  model::ModelConfig c;
  c.arch = model::Architecture::kInternLM2;
  c.vocab_size = 8192;
  c.hidden_size = hidden;
  c.num_layers = layers;
  c.head_dim = 64;
  c.num_heads = hidden / 64;
  c.num_kv_heads = c.num_heads / 2;
  c.intermediate_size = hidden * 11 / 4;
  c.max_position_embeddings = 4096;
  c.rope_theta = 1e6;
  c.rms_norm_eps = 1e-5;
  return c;
}

Weights RandomWeights(const model::ModelConfig& c, std::vector<at::Tensor>* matrices) {
  at::manual_seed(0);
  auto random = [](std::vector<int64_t> shape) { return at::randn(shape) * 0.02; };
  Weights w;
  int64_t d = c.hidden_size, f = c.intermediate_size;
  w.Set(Role::kEmbedding, -1, random({c.vocab_size, d}));
  w.Set(Role::kFinalNorm, -1, at::ones({d}));
  w.Set(Role::kLmHead, -1, random({c.vocab_size, d}));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    w.Set(Role::kAttentionNorm, i, at::ones({d}));
    w.Set(Role::kMlpNorm, i, at::ones({d}));
    w.Set(Role::kQkv, i, random({c.num_kv_heads * (c.group_size() + 2) * c.head_dim, d}));
    w.Set(Role::kO, i, random({d, c.num_heads * c.head_dim}));
    w.Set(Role::kGate, i, random({f, d}));
    w.Set(Role::kUp, i, random({f, d}));
    w.Set(Role::kDown, i, random({d, f}));
    for (Role r : {Role::kQkv, Role::kO, Role::kGate, Role::kUp, Role::kDown}) {
      matrices->push_back(w.Get(r, i));
    }
  }
  matrices->push_back(w.Get(Role::kLmHead));
  return w;
}

// Args: hidden size, layers, precision (0 fp32, 1 bf16, 2 fp16).
void BM_DecodeStep(benchmark::State& state) {
  const Precision precisions[] = {Precision::kFP32, Precision::kBF16, Precision::kFP16};
  Precision precision = precisions[state.range(2)];
  c10::Device device = BenchDevice();
  model::ModelConfig config = BenchConfig(state.range(0), state.range(1));
  std::vector<at::Tensor> matrices;
  Weights weights = RandomWeights(config, &matrices);
  Numerics numerics = MakeNumerics(precision, device);
  auto model = MakeCausalLM(config, weights, numerics);
  c10::InferenceMode inference;

  KVCache cache;
  Synchronize(model->Forward(at::randint(0, config.vocab_size, {1, 64}, at::kLong), cache));
  at::Tensor token = at::randint(0, config.vocab_size, {1, 1}, at::kLong);
  double step_seconds = 0;
  for (auto _ : state) {
    if (cache.length > 512) {  // keep the context length, hence the step's cost, in a fixed range
      state.PauseTiming();
      cache = KVCache();
      Synchronize(model->Forward(at::randint(0, config.vocab_size, {1, 64}, at::kLong), cache));
      state.ResumeTiming();
    }
    auto start = std::chrono::steady_clock::now();
    Synchronize(model->Forward(token, cache));
    step_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  step_seconds /= static_cast<double>(state.iterations());

  // The same GEMMs alone, in the run's storage dtype, timed over as many iterations.
  std::vector<at::Tensor> cast;
  for (const auto& m : matrices) cast.push_back(m.to(device, numerics.storage));
  at::Tensor x = at::randn({1, config.hidden_size}).to(device, numerics.storage);
  at::Tensor xf = at::randn({1, config.intermediate_size}).to(device, numerics.storage);
  auto all_gemms = [&] {
    at::Tensor last;
    for (const auto& m : cast) last = at::linear(m.size(1) == config.hidden_size ? x : xf, m);
    Synchronize(last);
  };
  all_gemms();
  auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < state.iterations(); ++i) all_gemms();
  double gemm_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
                        static_cast<double>(state.iterations());
  state.counters["step_us"] = step_seconds * 1e6;
  state.counters["gemm_us"] = gemm_seconds * 1e6;
  state.counters["step_over_gemm"] = step_seconds / gemm_seconds;
  state.SetLabel(numerics.Describe());
}

void DecodeSizes(benchmark::internal::Benchmark* b) {
  for (int64_t precision : {0, 1, 2}) {
    b->Args({256, 4, precision});   // the trained fixture's size
    b->Args({512, 8, precision});
    b->Args({1024, 8, precision});
  }
}
BENCHMARK(BM_DecodeStep)->Apply(DecodeSizes)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace parity::forward
