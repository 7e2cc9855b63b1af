#include "harness/compare/bench.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <fmt/format.h>

#include "harness/compare/suite.h"
#include "harness/core/error.h"
#include "harness/core/version.h"
#include "harness/decode/pipeline.h"
#include "harness/forward/causal_lm.h"
#include "harness/forward/memory_plan.h"
#include "harness/io/checkpoint.h"
#include "harness/model/arch.h"

namespace parity::compare {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void Synchronize(c10::Device device) {
  if (device.is_cpu()) return;
  c10::impl::VirtualGuardImpl impl(device.type());
  impl.synchronizeStream(impl.getStream(device));
}

int64_t WeightBytes(const model::ModelConfig& config, forward::Precision precision,
                    c10::Device device) {
  int64_t elements = 0;
  for (const model::ExpectedTensor& t : model::ExpectedTensors(config)) {
    if (!t.required) continue;
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    elements += n;
  }
  return elements * forward::StoredBytesPerElement(precision, device);
}

// Seeded ids in [3, vocab): past the usual special ids, the same on every machine.
std::vector<int64_t> BenchPrompt(int64_t length, int64_t vocab) {
  std::vector<int64_t> ids;
  uint64_t state = 0x9E3779B97F4A7C15ull;
  for (int64_t i = 0; i < length; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    ids.push_back(3 + static_cast<int64_t>((state >> 33) % static_cast<uint64_t>(vocab - 3)));
  }
  return ids;
}

}  // namespace

double MeasureCopyBandwidth(c10::Device device, int64_t bytes) {
  at::Tensor source = at::ones({bytes / 4}, at::TensorOptions().dtype(at::kFloat).device(device));
  at::Tensor target = at::empty_like(source);
  target.copy_(source);
  Synchronize(device);
  double best = 0;
  for (int repeat = 0; repeat < 3; ++repeat) {
    constexpr int kCopies = 5;
    const auto start = Clock::now();
    for (int i = 0; i < kCopies; ++i) target.copy_(source);
    Synchronize(device);
    best = std::max(best, 2.0 * static_cast<double>(source.nbytes()) * kCopies / Seconds(start));
  }
  return best;
}

BenchResult RunBench(const BenchOptions& options) {
  if (options.prompt_tokens < 1 || options.new_tokens < 2) {
    throw InputError("bench: --prompt-tokens must be >= 1 and --new-tokens >= 2");
  }
  const c10::Device device(options.device);
  decode::pipeline::UseRunDeterminism();
  decode::pipeline::SetFillUninitializedMemory(options.fill_uninitialized);
  const forward::Numerics numerics = forward::MakeNumerics(options.precision, device);

  BenchResult result;
  result.device_name = device.str();
  result.precision = forward::PrecisionName(options.precision);
  result.libtorch = LibtorchVersion();
  result.pipelined = options.pipelined;
  result.deterministic = at::globalContext().deterministicAlgorithms();
  result.fill_uninitialized = decode::pipeline::FillsUninitializedMemory();
  result.prompt_tokens = options.prompt_tokens;
  result.new_tokens = options.new_tokens;

  auto start = Clock::now();
  const io::Checkpoint checkpoint_a = io::Checkpoint::Open(options.model_a);
  std::unique_ptr<forward::CausalLM> model_a = forward::LoadCausalLM(checkpoint_a, numerics);
  std::unique_ptr<forward::CausalLM> model_b;
  if (!options.model_b.empty()) {
    const io::Checkpoint checkpoint_b = io::Checkpoint::Open(options.model_b);
    model_b = forward::LoadCausalLM(checkpoint_b, numerics);
  }
  forward::CausalLM& b = model_b ? *model_b : *model_a;
  Synchronize(device);
  result.load_s = Seconds(start);
  result.vocab = model_a->config().vocab_size;
  result.attention_a = model_a->variants().sdpa_attention ? "sdpa" : "eager";
  result.attention_b = b.variants().sdpa_attention ? "sdpa" : "eager";
  result.weight_bytes_a = WeightBytes(model_a->config(), options.precision, device);
  result.weight_bytes_b = WeightBytes(b.config(), options.precision, device);

  RunRequest request;
  request.id = "bench";
  request.prompt_tokens = BenchPrompt(options.prompt_tokens, result.vocab);
  request.pair.a = {"a", result.precision, numerics.Describe(), numerics.emulated};
  request.pair.b = {options.model_b.empty() ? "a" : "b", result.precision, numerics.Describe(),
                    numerics.emulated};
  request.precision_a = request.precision_b = options.precision;
  request.greedy.pipelined = options.pipelined;
  const TextDecoder text = IdTextDecoder();
  auto timed = [&](int64_t new_tokens) {
    request.greedy.max_new_tokens = new_tokens;
    const auto begin = Clock::now();
    RunOutcome outcome = RunPair(*model_a, b, request, text);
    Synchronize(device);
    const double seconds = Seconds(begin);
    result.divergence_step =
        outcome.run.first_divergence ? outcome.run.first_divergence->step : -1;
    return seconds;
  };
  timed(2);  // warm-up: lazy initialisation (cuBLAS handles, allocator pools, kernels)
  double first = 1e30, full = 1e30;
  for (int64_t repeat = 0; repeat < std::max<int64_t>(1, options.repeats); ++repeat) {
    first = std::min(first, timed(1));
    full = std::min(full, timed(options.new_tokens));
  }
  result.prefill_ms = first * 1e3;
  result.total_ms = full * 1e3;
  result.ms_per_model_token =
      (full - first) * 1e3 / (2.0 * static_cast<double>(options.new_tokens - 1));

  result.copy_bandwidth = MeasureCopyBandwidth(device, int64_t{1} << 30);
  result.limit_ms = 0.5 * static_cast<double>(result.weight_bytes_a + result.weight_bytes_b) /
                    result.copy_bandwidth * 1e3;
  result.ratio = result.ms_per_model_token / result.limit_ms;
  return result;
}

nlohmann::json BenchResultToJson(const BenchResult& r) {
  return {{"device", r.device_name},
          {"precision", r.precision},
          {"attention", {r.attention_a, r.attention_b}},
          {"libtorch", r.libtorch},
          {"pipelined", r.pipelined},
          {"deterministic_algorithms", r.deterministic},
          {"fill_uninitialized_memory", r.fill_uninitialized},
          {"vocab", r.vocab},
          {"prompt_tokens", r.prompt_tokens},
          {"new_tokens", r.new_tokens},
          {"load_s", r.load_s},
          {"prefill_ms", r.prefill_ms},
          {"total_ms", r.total_ms},
          {"ms_per_model_token", r.ms_per_model_token},
          {"weight_bytes", {r.weight_bytes_a, r.weight_bytes_b}},
          {"copy_bandwidth_bytes_per_s", r.copy_bandwidth},
          {"limit_ms_per_model_token", r.limit_ms},
          {"ratio_to_limit", r.ratio},
          {"first_divergence_step", r.divergence_step}};
}

std::string FormatBenchResult(const BenchResult& r) {
  return fmt::format(
      "bench {} {} (attention {}/{}, libtorch {}, {}, deterministic {}, fill {}): vocab {}, "
      "prompt {}, {} new tokens\n"
      "  decode {:.2f} ms per model-token (prefill + 1 step {:.1f} ms, all {:.1f} ms, load {:.1f} s)\n"
      "  limit {:.2f} ms per model-token ({} / {:.2f} TB/s copy bandwidth measured) -> ratio {:.2f}x\n",
      r.device_name, r.precision, r.attention_a, r.attention_b, r.libtorch,
      r.pipelined ? "pipelined" : "synchronous", r.deterministic ? "on" : "off",
      r.fill_uninitialized ? "on" : "off", r.vocab, r.prompt_tokens, r.new_tokens,
      r.ms_per_model_token, r.prefill_ms, r.total_ms, r.load_s, r.limit_ms,
      forward::FormatBytes((r.weight_bytes_a + r.weight_bytes_b) / 2), r.copy_bandwidth / 1e12,
      r.ratio);
}

}  // namespace parity::compare
