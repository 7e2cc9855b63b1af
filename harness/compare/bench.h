// `parity bench`: the speed of the real comparison pipeline, against the hardware's limit measured
// in the same process. Two models (a checkpoint pair, or one model twice) are loaded at one
// precision and decoded in lockstep through compare::RunPair, exactly as `parity compare` runs a
// pair: per-step FP64 metrics on, deterministic settings of a run (decode::pipeline::
// UseRunDeterminism), the model's real vocabulary, no EOS (every step runs). Timing: after an
// untimed warm-up run of N new tokens (lazy initialisation, cuDNN's per-key-length plans), runs
// with 1, 3 and N new tokens; the decode phase costs
//   ms per model-token = (t_N - t_3) / (2 (N - 3))          (two models per step)
// (t_3: prefill and the first two one-token steps, the warm-up and, with CUDA graphs, the
// recording step; (t_N - t_1) / (2 (N - 1)) when N <= 3).
// The limit: a decode step must read every weight once, so it takes at least
//   weight bytes / copy bandwidth,
// the bandwidth measured as (read + write) bytes per second of a 1 GiB device-to-device copy in the
// same run. `ratio` = ms per model-token / that limit (the mean of the two models' limits).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "harness/forward/numerics.h"

namespace parity::compare {

struct BenchOptions {
  std::string model_a;
  std::string model_b;                 // empty: model_a twice
  forward::Precision precision = forward::Precision::kBF16;
  std::string device = "cuda";
  // Every combination is timed on the same loaded models, in this order (prompt outermost):
  std::vector<int64_t> prompt_tokens = {16};  // prompts of seeded random ids in [3, vocab)
  std::vector<bool> pipelined = {true};       // decode::GreedyOptions::pipelined
  // CUDA graphs of the one-token step (decode/piecewise.h) on / off, for the pipelined loop (the
  // synchronous loop never records). On by default, as runs decode (GreedyOptions::graphs kAuto);
  // --graphs off,on times both in one process.
  std::vector<bool> graphs = {true};
  std::vector<bool> fill_uninitialized = {false};  // deterministic mode's NaN fill (runs: off)
  int64_t new_tokens = 128;
  int64_t repeats = 1;                 // timed N-token runs; the fastest is reported
};

struct BenchResult {
  std::string device_name;             // "cuda:0", "cpu"
  std::string precision;
  std::string attention_a, attention_b;  // "eager" / "sdpa"
  std::string libtorch;
  bool pipelined = true;
  bool graphs_requested = false;       // GreedyOptions::graphs was kAuto (else kOff)
  std::string engine_a, engine_b;      // how each side's steps ran: PiecewiseStep::Status()
  double graph_launches_per_model_token = 0;  // graph replays per model-token (pieces per step)
  bool deterministic = true;
  bool fill_uninitialized = false;
  int64_t vocab = 0;
  int64_t prompt_tokens = 0, new_tokens = 0;
  double load_s = 0;
  double prefill_ms = 0;               // t_1 (prefill of both models + one step), ms
  double total_ms = 0;                 // t_N
  double ms_per_model_token = 0;
  int64_t weight_bytes_a = 0, weight_bytes_b = 0;
  double copy_bandwidth = 0;           // bytes per second (read + write)
  double limit_ms = 0;                 // mean weight bytes / bandwidth, ms
  double ratio = 0;                    // ms_per_model_token / limit_ms
  int64_t divergence_step = -1;        // the run's first divergence (-1 none): same work as compare
  // Attention as it ran: the kernel at::scaled_dot_product_attention picks for a decode step of
  // these shapes (static-cache strides) when a side uses SDPA ("" otherwise), cuDNN's version
  // (0 without cuDNN), TF32 for cuBLAS / cuDNN.
  std::string sdpa_kernel;
  // ATen ops dispatched per model-token in the decode phase (metrics included), all and the
  // outermost only: each is at least one kernel launch on the device for most ops.
  double ops_per_model_token = 0, outer_ops_per_model_token = 0;
  // Model A alone, 32 decode steps issued back to back without waiting (no metrics), on a stream
  // of its own through decode::PiecewiseStep with this result's graph mode (after a warm-up and a
  // recording step): the host's time to issue one step (returning from Step) and the wall time per
  // step. Issue time close to the wall time means the step is bound by the host issuing kernels,
  // not by the device.
  double issue_ms_per_step = 0, alone_ms_per_step = 0;
  long cudnn_version = 0;
  bool tf32_cublas = false, tf32_cudnn = false;
};

// One result per combination of BenchOptions' lists.
std::vector<BenchResult> RunBench(const BenchOptions& options);
nlohmann::json BenchResultToJson(const BenchResult& result);
std::string FormatBenchResult(const BenchResult& result);

// (read + write) bytes per second of copying `bytes` on `device`, best of a few repeats.
double MeasureCopyBandwidth(c10::Device device, int64_t bytes);

}  // namespace parity::compare
