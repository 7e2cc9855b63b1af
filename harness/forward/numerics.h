// How a forward pass represents and rounds numbers: the run precision, the device, and whether FP16 is
// emulated (libtorch 1.13 on CPU has no FP16 kernels: each op computes in FP32 and its output is
// rounded to FP16, which is also what CUDA half kernels do per element; GEMMs accumulate in FP32).
#pragma once

#include <string>

#include <ATen/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace parity::forward {

enum class Precision { kFP32, kFP16, kBF16, kFP64 };
const char* PrecisionName(Precision precision);  // "fp32", "fp16", "bf16", "fp64"
// Parses "fp32" / "fp16" / "bf16" / "fp64" (also "float32", "float16", "bfloat16", "float64");
// throws InputError naming the text otherwise.
Precision ParsePrecision(const std::string& text);

struct Numerics {
  Precision precision = Precision::kFP32;
  c10::Device device = c10::Device(c10::kCPU);
  bool emulated = false;                        // FP16 on CPU: FP32 compute, FP16 rounding per op
  c10::ScalarType storage = c10::kFloat;        // dtype tensors are held in (FP32 when emulated)
  c10::ScalarType precision_type = c10::kFloat; // dtype whose rounding the results carry

  // Rounds an op's output to the run precision: identity unless emulated, where it is
  // x.to(kHalf).to(kFloat).
  at::Tensor Round(const at::Tensor& x) const;
  // Casts a checkpoint tensor to the run precision (and device), rounding when emulated.
  at::Tensor FromCheckpoint(const at::Tensor& weight) const;
  // "fp16 (emulated on cpu)", "bf16 (cuda)"...
  std::string Describe() const;
};

// The numerics for `precision` on `device`: FP16 on CPU is emulated, everything else native.
Numerics MakeNumerics(Precision precision, c10::Device device);

}  // namespace parity::forward
