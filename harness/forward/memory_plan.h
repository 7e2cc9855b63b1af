// Memory planning before a model is loaded: what a forward pass of a model needs at a precision
// (weights, the largest tensor's conversion transient, a teacher-forced sequence's activations), what
// the device has free, and a refusal in numbers instead of an allocator's out-of-memory message
// half-way through a run. Used by compare's FP64 oracle (each model alone), and callable by localize
// and explain for their FP64 runs.
//
// Estimate for a model with P parameters, largest tensor W elements, at precision p (b bytes per
// element as stored: FP16 emulated on CPU is stored as FP32), for a sequence of T tokens:
//   weights    P * b
//   transient  W * b          (one checkpoint tensor converted to the run dtype while loading)
//   work       b * T * (2 * layers * heads * head_dim         KV cache (stored repeated)
//                       + 4 * max(hidden, 3 * intermediate)    one layer's activations
//                       + heads * T                             attention scores
//                       + 2 * vocab)                            logits and their FP64 copy
// The estimate is meant to be slightly high: a refusal names the numbers, so the user can decide.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "harness/forward/numerics.h"
#include "harness/model/config.h"

namespace parity::forward {

struct ModelFootprint {
  std::string label;         // e.g. "original@fp64"
  std::string device;        // "cpu", "cuda:0"
  int64_t weight_bytes = 0;
  int64_t transient_bytes = 0;
  int64_t work_bytes = 0;
  int64_t total() const { return weight_bytes + transient_bytes + work_bytes; }
};

// Bytes per element of `precision` as a forward pass on `device` stores it.
int64_t StoredBytesPerElement(Precision precision, c10::Device device);

ModelFootprint EstimateFootprint(const model::ModelConfig& config, Precision precision,
                                 c10::Device device, int64_t sequence_length,
                                 const std::string& label);

struct DeviceMemory {
  std::optional<int64_t> available;  // bytes free now; null when it cannot be queried
  std::optional<int64_t> total;
  std::string source;                // "/proc/meminfo MemAvailable", "cudaMemGetInfo", "--memory-limit"
};
// Free memory of `device` now. CPU: MemAvailable. CUDA: cudaMemGetInfo of the CUDA runtime the
// process has loaded (found at run time, so the CPU-only build needs no CUDA headers).
DeviceMemory QueryDeviceMemory(c10::Device device);

// The models in `together` must be resident at once on `device`. Throws InputError (exit 2) naming
// `what`, each model's estimate and the available bytes when their sum exceeds what is available
// (`limit_bytes`, when given, caps the available figure: --memory-limit). Does nothing when the
// free memory cannot be queried and no limit is given.
void RequireFits(const std::vector<ModelFootprint>& together, c10::Device device,
                 const std::string& what, std::optional<int64_t> limit_bytes = std::nullopt);

// "61.9 GB" (decimal gigabytes, three significant digits; MB below 1 GB).
std::string FormatBytes(int64_t bytes);

}  // namespace parity::forward
