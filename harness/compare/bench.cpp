#include "harness/compare/bench.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/record_function.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/version.h>
#include <fmt/format.h>

#include "harness/compare/suite.h"
#include "harness/core/error.h"
#include "harness/core/version.h"
#include "harness/decode/piecewise.h"
#include "harness/decode/pipeline.h"
#include "harness/forward/attention_backend.h"
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

// N of "cuda graphs: on (N pieces per step, ...)"; 0 for any other status.
double PiecesPerStep(const std::string& engine) {
  const std::string prefix = "cuda graphs: on (";
  if (engine.rfind(prefix, 0) != 0) return 0;
  return std::atof(engine.c_str() + prefix.size());
}

// ATen ops dispatched while a counter is installed: all of them, and the outermost ones (what the
// forward pass calls; nested = what those call in turn, e.g. linear -> matmul -> mm).
std::atomic<int64_t> all_ops{0}, outer_ops{0};
thread_local int op_depth = 0;
std::unique_ptr<at::ObserverContext> OnOpStart(const at::RecordFunction&) {
  ++all_ops;
  if (op_depth++ == 0) ++outer_ops;
  return nullptr;
}
void OnOpEnd(const at::RecordFunction&, at::ObserverContext*) { --op_depth; }

void MeasureIssue(forward::CausalLM& model, const std::vector<int64_t>& prompt, c10::Device device,
                  decode::GraphMode graphs, BenchResult& result) {
  // As a side of the pipelined loop runs it: its own stream (graphs are recorded on one), the
  // prefill, a warm-up and (with graphs) a recording step, then kSteps steps timed.
  constexpr int kSteps = 32;
  std::unique_ptr<c10::StreamGuard> on_stream;
  if (!device.is_cpu()) {
    on_stream = std::make_unique<c10::StreamGuard>(
        c10::impl::VirtualGuardImpl(device.type()).getStreamFromGlobalPool(device, false));
  }
  forward::KVCache cache;
  cache.capacity_hint = static_cast<int64_t>(prompt.size()) + kSteps + 3;
  cache.device_tokens_trusted = true;
  c10::InferenceMode inference;
  decode::PiecewiseStep steps(model, graphs);
  at::Tensor ids = at::tensor(at::ArrayRef<int64_t>(prompt), at::kLong).view({1, -1});
  at::Tensor token = steps.Step(ids, cache).token;
  for (int step = 0; step < 2; ++step) token = steps.Step(token, cache).token;
  Synchronize(device);
  double issue = 0;
  const auto begin = Clock::now();
  for (int step = 0; step < kSteps; ++step) {
    const auto start = Clock::now();
    token = steps.Step(token, cache).token;  // a replay reads its own token buffer: fine, the
                                             // copy into the input buffer comes first
    issue += Seconds(start);
  }
  Synchronize(device);
  result.alone_ms_per_step = Seconds(begin) * 1e3 / kSteps;
  result.issue_ms_per_step = issue * 1e3 / kSteps;
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

std::vector<BenchResult> RunBench(const BenchOptions& options) {
  if (options.new_tokens < 2) throw InputError("bench: --new-tokens must be >= 2");
  for (int64_t length : options.prompt_tokens) {
    if (length < 1) throw InputError("bench: --prompt-tokens must be >= 1");
  }
  const c10::Device device(options.device);
  decode::pipeline::UseRunDeterminism();
  const forward::Numerics numerics = forward::MakeNumerics(options.precision, device);

  BenchResult base;
  base.device_name = device.str();
  base.precision = forward::PrecisionName(options.precision);
  base.libtorch = LibtorchVersion();
  base.deterministic = at::globalContext().deterministicAlgorithms();
  base.new_tokens = options.new_tokens;

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
  base.load_s = Seconds(start);
  base.vocab = model_a->config().vocab_size;
  base.attention_a = model_a->variants().sdpa_attention ? "sdpa" : "eager";
  base.attention_b = b.variants().sdpa_attention ? "sdpa" : "eager";
  base.weight_bytes_a = WeightBytes(model_a->config(), options.precision, device);
  base.weight_bytes_b = WeightBytes(b.config(), options.precision, device);
  base.tf32_cublas = at::globalContext().allowTF32CuBLAS();
  base.tf32_cudnn = at::globalContext().allowTF32CuDNN();
  base.cudnn_version = at::detail::getCUDAHooks().hasCuDNN() ? at::detail::getCUDAHooks().versionCuDNN() : 0;
  // 1 GiB on a device; 256 MiB on the CPU (still far beyond its caches, quicker on small machines).
  base.copy_bandwidth = MeasureCopyBandwidth(device, int64_t{1} << (device.is_cpu() ? 28 : 30));
  base.limit_ms = 0.5 * static_cast<double>(base.weight_bytes_a + base.weight_bytes_b) /
                  base.copy_bandwidth * 1e3;

  RunRequest request;
  request.id = "bench";
  request.pair.a = {"a", base.precision, numerics.Describe(), numerics.emulated};
  request.pair.b = {options.model_b.empty() ? "a" : "b", base.precision, numerics.Describe(),
                    numerics.emulated};
  request.precision_a = request.precision_b = options.precision;
  const TextDecoder text = IdTextDecoder();
  std::vector<BenchResult> results;
  for (int64_t prompt_tokens : options.prompt_tokens) {
    request.prompt_tokens = BenchPrompt(prompt_tokens, base.vocab);
    for (bool pipelined : options.pipelined) {
     for (bool graphs : options.graphs) {
      if (!pipelined && graphs && options.graphs.size() > 1) continue;  // synchronous: no graphs
      for (bool fill : options.fill_uninitialized) {
        decode::pipeline::SetFillUninitializedMemory(fill);
        BenchResult result = base;
        result.graphs_requested = graphs && pipelined;
        request.greedy.graphs = graphs ? decode::GraphMode::kAuto : decode::GraphMode::kOff;
        result.prompt_tokens = prompt_tokens;
        if (model_a->variants().sdpa_attention || b.variants().sdpa_attention) {
          result.sdpa_kernel = forward::SdpaKernel(model_a->config(), numerics, prompt_tokens + 1);
        }
        result.pipelined = pipelined;
        result.fill_uninitialized = decode::pipeline::FillsUninitializedMemory();
        request.greedy.pipelined = pipelined;
        auto timed = [&](int64_t new_tokens) {
          request.greedy.max_new_tokens = new_tokens;
          const auto begin = Clock::now();
          RunOutcome outcome = RunPair(*model_a, b, request, text);
          Synchronize(device);
          const double seconds = Seconds(begin);
          result.engine_a = outcome.run.engine_a;
          result.engine_b = outcome.run.engine_b;
          result.divergence_step =
              outcome.run.first_divergence ? outcome.run.first_divergence->step : -1;
          return seconds;
        };
        // Warm-up over every key length the timed runs reach: lazy initialisation (cuBLAS handles
        // and workspaces, allocator pools, kernels) and cuDNN's per-key-length SDPA plans, which
        // otherwise only the first row of a process would pay (so rows compare like with like).
        timed(options.new_tokens);
        {  // ops per model-token, from two short counted runs (the counter slows them: untimed)
          const at::CallbackHandle handle = at::addGlobalCallback(
              at::RecordFunctionCallback(OnOpStart, OnOpEnd).scopes({at::RecordScope::FUNCTION}));
          // 3 and 11 new tokens: 2 and 10 one-token steps; the difference is 8 steps past the
          // warm-up and recording steps (replayed steps where graphs are on).
          int64_t counts[2][2];
          const int64_t lengths[2] = {3, 11};
          for (int i = 0; i < 2; ++i) {
            all_ops = outer_ops = 0;
            timed(lengths[i]);
            counts[i][0] = all_ops;
            counts[i][1] = outer_ops;
          }
          at::removeCallback(handle);
          result.ops_per_model_token = double(counts[1][0] - counts[0][0]) / 16.0;
          result.outer_ops_per_model_token = double(counts[1][1] - counts[0][1]) / 16.0;
        }
        // Graph launches per model-token: each replayed step launches its pieces (from the
        // status "cuda graphs: on (N pieces per step, ...)"), besides the eager ATen ops counted.
        result.graph_launches_per_model_token = PiecesPerStep(result.engine_a) / 2.0 +
                                                PiecesPerStep(result.engine_b) / 2.0;
        // The decode rate from t_N - t_3: the first two one-token steps (warm-up, and with graphs
        // the recording) are left out, as the prefill is.
        const int64_t base_tokens = options.new_tokens > 3 ? 3 : 1;
        double first = 1e30, early = 1e30, full = 1e30;
        for (int64_t repeat = 0; repeat < std::max<int64_t>(1, options.repeats); ++repeat) {
          first = std::min(first, timed(1));
          if (base_tokens != 1) early = std::min(early, timed(base_tokens));
          full = std::min(full, timed(options.new_tokens));
        }
        if (base_tokens == 1) early = first;
        result.prefill_ms = first * 1e3;
        result.total_ms = full * 1e3;
        result.ms_per_model_token =
            (full - early) * 1e3 /
            (2.0 * static_cast<double>(options.new_tokens - base_tokens));
        result.ratio = result.ms_per_model_token / result.limit_ms;
        MeasureIssue(*model_a, request.prompt_tokens, device, request.greedy.graphs, result);
        results.push_back(result);
      }
     }
    }
  }
  decode::pipeline::SetFillUninitializedMemory(false);
  return results;
}

nlohmann::json BenchResultToJson(const BenchResult& r) {
  return {{"device", r.device_name},
          {"precision", r.precision},
          {"attention", {r.attention_a, r.attention_b}},
          {"libtorch", r.libtorch},
          {"pipelined", r.pipelined},
          {"graphs_requested", r.graphs_requested},
          {"engine", {r.engine_a, r.engine_b}},
          {"graph_launches_per_model_token", r.graph_launches_per_model_token},
          {"launches_per_model_token", r.ops_per_model_token + r.graph_launches_per_model_token},
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
          {"first_divergence_step", r.divergence_step},
          {"sdpa_kernel", r.sdpa_kernel},
          {"aten_ops_per_model_token", r.ops_per_model_token},
          {"alone_issue_ms_per_step", r.issue_ms_per_step},
          {"alone_ms_per_step", r.alone_ms_per_step},
          {"outer_aten_ops_per_model_token", r.outer_ops_per_model_token},
          {"cudnn_version", r.cudnn_version},
          {"tf32", {{"cublas", r.tf32_cublas}, {"cudnn", r.tf32_cudnn}}}};
}

std::string FormatBenchResult(const BenchResult& r) {
  return fmt::format(
      "bench {} {} (attention {}/{}, libtorch {}, {}, cuda graphs {}, deterministic {}, fill {}): vocab {}, "
      "prompt {}, {} new tokens\n"
      "  decode {:.2f} ms per model-token (prefill + 1 step {:.1f} ms, all {:.1f} ms, load {:.1f} s)\n"
      "  limit {:.2f} ms per model-token ({} / {:.0f} GB/s copy bandwidth measured) -> ratio {:.2f}x\n"
      "  sdpa kernel {}, cudnn {}, tf32 cublas {} cudnn {}; ATen ops per model-token {:.0f} "
      "({:.0f} called by Parity itself) + {:.0f} graph launches\n"
      "  engine: A {}; B {}\n"
      "  model A alone, no metrics: {:.2f} ms per step, of which the host needs {:.2f} to issue it\n",
      r.device_name, r.precision, r.attention_a, r.attention_b, r.libtorch,
      r.pipelined ? "pipelined" : "synchronous", r.graphs_requested ? "requested" : "off",
      r.deterministic ? "on" : "off",
      r.fill_uninitialized ? "on" : "off", r.vocab, r.prompt_tokens, r.new_tokens,
      r.ms_per_model_token, r.prefill_ms, r.total_ms, r.load_s, r.limit_ms,
      forward::FormatBytes((r.weight_bytes_a + r.weight_bytes_b) / 2), r.copy_bandwidth / 1e9,
      r.ratio, r.sdpa_kernel.empty() ? "-" : r.sdpa_kernel, r.cudnn_version,
      r.tf32_cublas ? "on" : "off", r.tf32_cudnn ? "on" : "off", r.ops_per_model_token,
      r.outer_ops_per_model_token, r.graph_launches_per_model_token, r.engine_a, r.engine_b,
      r.alone_ms_per_step, r.issue_ms_per_step);
}

}  // namespace parity::compare
