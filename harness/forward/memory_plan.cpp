#include "harness/forward/memory_plan.h"

#include <dlfcn.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "harness/core/error.h"

namespace parity::forward {
namespace {

// cudaMemGetInfo / cudaSetDevice / cudaGetDevice from the CUDA runtime already in the process (the
// CUDA libtorch links it), else from a libcudart found by name. Null when there is none.
using MemGetInfo = int (*)(size_t*, size_t*);
using SetDevice = int (*)(int);
using GetDevice = int (*)(int*);

void* CudaRuntimeSymbol(const char* name) {
  if (void* symbol = dlsym(RTLD_DEFAULT, name)) return symbol;
  for (const char* library : {"libcudart.so", "libcudart.so.13", "libcudart.so.12"}) {
    if (void* handle = dlopen(library, RTLD_LAZY | RTLD_NOLOAD)) {
      if (void* symbol = dlsym(handle, name)) return symbol;
    }
  }
  return nullptr;
}

std::optional<int64_t> MemAvailable() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    int64_t kib = 0;
    if (fields >> kib) return kib * 1024;
  }
  return std::nullopt;
}

}  // namespace

int64_t StoredBytesPerElement(Precision precision, c10::Device device) {
  switch (precision) {
    case Precision::kFP64: return 8;
    case Precision::kFP32: return 4;
    case Precision::kBF16: return 2;
    case Precision::kFP16: return device.is_cpu() ? 4 : 2;  // emulated on CPU: stored as FP32
  }
  return 4;
}

ModelFootprint EstimateFootprint(const model::ModelConfig& config, Precision precision,
                                 c10::Device device, int64_t sequence_length,
                                 const std::string& label) {
  const int64_t bytes = StoredBytesPerElement(precision, device);
  const int64_t t = std::max<int64_t>(sequence_length, 1);
  ModelFootprint f;
  f.label = label;
  f.device = device.str();
  f.weight_bytes = model::CountParameters(config).total * bytes;
  const int64_t largest = std::max(config.vocab_size * config.hidden_size,
                                   config.intermediate_size * config.hidden_size);
  f.transient_bytes = largest * bytes;
  const int64_t per_token = 2 * config.num_layers * config.num_heads * config.head_dim +
                            4 * std::max(config.hidden_size, 3 * config.intermediate_size) +
                            config.num_heads * t + 2 * config.vocab_size;
  f.work_bytes = bytes * t * per_token;
  return f;
}

DeviceMemory QueryDeviceMemory(c10::Device device) {
  DeviceMemory m;
  if (device.is_cpu()) {
    m.available = MemAvailable();
    m.source = "/proc/meminfo MemAvailable";
    return m;
  }
  auto get_info = reinterpret_cast<MemGetInfo>(CudaRuntimeSymbol("cudaMemGetInfo"));
  auto set_device = reinterpret_cast<SetDevice>(CudaRuntimeSymbol("cudaSetDevice"));
  auto get_device = reinterpret_cast<GetDevice>(CudaRuntimeSymbol("cudaGetDevice"));
  if (get_info == nullptr || set_device == nullptr || get_device == nullptr) return m;
  int previous = 0;
  if (get_device(&previous) != 0) return m;
  if (set_device(device.has_index() ? device.index() : 0) != 0) return m;
  size_t free_bytes = 0, total_bytes = 0;
  if (get_info(&free_bytes, &total_bytes) == 0) {
    m.available = static_cast<int64_t>(free_bytes);
    m.total = static_cast<int64_t>(total_bytes);
    m.source = "cudaMemGetInfo";
  }
  set_device(previous);
  return m;
}

std::string FormatBytes(int64_t bytes) {
  if (bytes >= 1000LL * 1000 * 1000) return fmt::format("{:.3g} GB", bytes / 1e9);
  return fmt::format("{:.3g} MB", bytes / 1e6);
}

void RequireFits(const std::vector<ModelFootprint>& together, c10::Device device,
                 const std::string& what, std::optional<int64_t> limit_bytes) {
  DeviceMemory memory = QueryDeviceMemory(device);
  std::optional<int64_t> available = memory.available;
  std::string source = memory.source;
  if (limit_bytes && (!available || *limit_bytes < *available)) {
    available = limit_bytes;
    source = "--memory-limit";
  }
  if (!available) return;
  int64_t needed = 0;
  for (const ModelFootprint& f : together) needed += f.total();
  if (needed <= *available) return;
  std::string lines;
  for (const ModelFootprint& f : together) {
    lines += fmt::format("\n  {} on {}: {} (weights {}, loading {}, activations {})", f.label,
                         f.device, FormatBytes(f.total()), FormatBytes(f.weight_bytes),
                         FormatBytes(f.transient_bytes), FormatBytes(f.work_bytes));
  }
  throw InputError(fmt::format(
      "{}: needs {} on {}, {} available ({}); nothing was loaded.{}\nUse a device with more "
      "memory, or for the FP64 oracle --oracle-device cpu (or another GPU).",
      what, FormatBytes(needed), device.str(), FormatBytes(*available), source, lines));
}

}  // namespace parity::forward
