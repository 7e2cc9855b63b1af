// Where the parts of one forward pass live when a model spans several devices, planned before
// anything is loaded. A placement is a list of stages: contiguous layer ranges, one device each, in
// layer order; the embedding lives with the first stage, the final norm and the LM head with the
// last. At a stage boundary the hidden state [B, T, D] and what every layer reads besides it (the
// rotary cos/sin, the positions, the attention masks) are copied to the next device; each stage's
// KV cache lives on its own device. The same kernels run on the same data, so a placed model's
// logits are bitwise those of the same model on one device (tests/placement_test.cpp on CPU
// "devices"; scripts/gpu_placement.sh on two GPUs).
//
// Written compactly (`--devices`, `--devices-a`, `--devices-b`, `--oracle-device`, and a case's
// "devices"):
//   cuda:0                       one device (what --device always meant)
//   cuda:0,cuda:1                spread over both, layers in proportion to each one's free memory
//   cuda:0=20,cuda:1=12          exactly 20 then 12 layers (every item gives a count, or none does)
//   cuda:0@40GB,cuda:1           plan within 40 GB on cuda:0 (GB = 1e9 bytes; also MB, GiB, MiB)
//   auto                         the fewest visible GPUs, in index order, that hold the model
//                                (the CPU when there is none), layers spread as above
//   cpu,cpu                      two stages on the CPU: the boundary copies run (a test setup)
// One model's stages are all CPU or all CUDA (FP16 is emulated on the CPU and native on CUDA, so a
// mixed placement would not compute as either single-device run).
//
// The plan, in the manner of HF accelerate's device_map="auto" (balanced): per device, what it
// must hold (its layers' weights at the side's precision policy, their KV cache for the run's
// length, one layer's activations and a loading transient; plus the embedding on the first device,
// the final norm, LM head and logits on the last) against what it has free (cudaMemGetInfo, or
// MemAvailable for the CPU, capped by '@' or --memory-limit). A plan that does not fit is refused
// with those numbers per device (InputError, exit 2) before anything is loaded. Two models resident
// at once (the two sides of a lockstep pair) are planned against one DeviceLedger, so the second
// sees what the first took.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <c10/core/Device.h>
#include <nlohmann/json_fwd.hpp>

#include "harness/forward/precision_policy.h"
#include "harness/model/config.h"

namespace parity::forward {

// One contiguous range of layers on one device.
struct PlacementStage {
  c10::Device device = c10::Device(c10::kCPU);
  int64_t first_layer = 0;  // layers [first_layer, end_layer)
  int64_t end_layer = 0;
  // The plan's estimate for this stage (zero for a placement built without a plan).
  int64_t weight_bytes = 0;  // its layers' weights (+ embedding on the first, norm and head on the last)
  int64_t cache_bytes = 0;   // its layers' KV cache for the run's length
  int64_t work_bytes = 0;    // one layer's activations and a loading transient (+ logits on the last)
  std::optional<int64_t> free_bytes;  // what its device had for it when planned; null: unknown
  std::string free_source;            // "cudaMemGetInfo", "@40GB", "--memory-limit", "test"
  int64_t needed() const { return weight_bytes + cache_bytes + work_bytes; }
  int64_t layers() const { return end_layer - first_layer; }
};

struct Placement {
  std::vector<PlacementStage> stages;  // in layer order, at least one
  std::string reason;                  // why this plan: "one device", "given layer counts", ...

  // Every layer on `device` (what a model without a placement gets).
  static Placement Single(c10::Device device, int64_t num_layers);
  int64_t num_layers() const { return stages.empty() ? 0 : stages.back().end_layer; }
  c10::Device first_device() const { return stages.front().device; }
  c10::Device last_device() const { return stages.back().device; }
  // The stage holding `layer`.
  size_t StageOf(int64_t layer) const;
  // Throws InputError unless the stages cover layers 0 .. num_layers - 1 contiguously, each with at
  // least one layer, all CPU or all CUDA.
  void Validate(int64_t num_layers) const;
  // "cuda:0 layers 0-15 + embedding, cuda:1 layers 16-31 + norm, lm_head": what goes where.
  std::string Describe() const;
  // The same with each stage's numbers and the reason, one stage per line (for the log).
  std::string DescribeWithNumbers() const;
  // A short key for caches of loaded models: "cuda:0=16,cuda:1=16".
  std::string Key() const;
};
nlohmann::json PlacementToJson(const Placement& placement);

// A placement as the user writes it (the syntax above).
struct DeviceRequest {
  c10::Device device = c10::Device(c10::kCPU);
  std::optional<int64_t> layers;      // "=N"
  std::optional<int64_t> memory_cap;  // "@40GB", bytes
};
struct PlacementSpec {
  bool automatic = false;               // "auto"
  std::vector<DeviceRequest> devices;   // in layer order (empty for auto)
  std::string text;                     // as given
};
// Parses the syntax above. Throws InputError naming `where` (e.g. "--devices-a"), the text and
// what was expected.
PlacementSpec ParsePlacementSpec(const std::string& text, const std::string& where);
// Whether `text` names one device (cpu, cuda, cuda:N) without counts or caps.
bool IsSingleDevice(const PlacementSpec& spec);

// What one model needs, in bytes, by part (planning input).
struct ModelCost {
  std::vector<int64_t> layer_weight_bytes;  // per layer, at its precision under the policy
  std::vector<int64_t> layer_cache_bytes;   // per layer: keys and values for the run's length
  int64_t embedding_bytes = 0;              // the first stage's
  int64_t head_bytes = 0;                   // final norm + LM head (0 for a tied head shared with
                                            // the embedding on one device)
  int64_t tied_head_bytes = 0;              // a tied head's own copy when it is on another device
  int64_t logits_bytes = 0;                 // the last stage's logits and their FP32/FP64 copy
  int64_t activation_bytes = 0;             // one layer's activations (every stage)
  int64_t transient_bytes = 0;              // the largest checkpoint tensor converted while loading
                                            // (the embedding or head table: first and last stage)
  int64_t layer_transient_bytes = 0;        // the largest within a layer (the other stages)
  int64_t total_one_device() const;         // everything on one device
};
// The cost of `config` at `policy` for a sequence of `sequence_length` tokens (prompt + new tokens)
// on a device of `type` (FP16 is stored as FP32 on the CPU, where it is emulated). Meant to be
// slightly high; the same total as memory_plan.h's EstimateFootprint for one device.
ModelCost EstimateModelCost(const model::ModelConfig& config, const PrecisionPolicy& policy,
                            c10::DeviceType type, int64_t sequence_length);

// Free memory per device, as plans take it.
class DeviceLedger {
 public:
  // The real devices, queried on first use (memory_plan.h QueryDeviceMemory); `limit` caps each
  // device's figure (--memory-limit).
  explicit DeviceLedger(std::optional<int64_t> limit = std::nullopt);
  // Synthetic devices with these free bytes (tests); `auto` uses the CUDA ones in this order.
  explicit DeviceLedger(const std::vector<std::pair<c10::Device, int64_t>>& devices);

  // Free bytes of `device` minus what plans reserved on it; null when unknown.
  std::optional<int64_t> Free(c10::Device device);
  std::string Source(c10::Device device);
  // The devices `auto` considers: the visible GPUs in index order, else the CPU.
  std::vector<c10::Device> AutoDevices();
  // Takes a plan's stages off their devices' free memory.
  void Reserve(const Placement& placement);

 private:
  struct Entry {
    std::optional<int64_t> free;
    std::string source;
  };
  Entry& Lookup(c10::Device device);

  bool synthetic_ = false;
  std::optional<int64_t> limit_;
  std::vector<c10::Device> synthetic_order_;
  std::map<std::string, Entry> entries_;  // by canonical device ("cuda" is "cuda:0")
};

// Plans `spec` for a model costing `cost` (layers = cost.layer_weight_bytes.size()) against
// `ledger`, and reserves the plan there. `what` names the model in messages ("original@fp32, side
// a"). Throws InputError when it does not fit, with each device's need and free memory, before
// anything is loaded.
Placement PlanPlacement(const PlacementSpec& spec, const ModelCost& cost, DeviceLedger& ledger,
                        const std::string& what);

}  // namespace parity::forward
