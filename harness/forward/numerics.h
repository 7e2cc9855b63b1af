// How a forward pass represents and rounds numbers: the run precision, the device, and whether FP16 is
// emulated (libtorch 1.13 on CPU has no FP16 kernels: each op computes in FP32 and its output is
// rounded to FP16, which is also what CUDA half kernels do per element; GEMMs accumulate in FP32).
//
// Where the reference implementations upcast to FP32 (inside RMSNorm, softmax, the rotary cos/sin
// computation), a run computes in `upcast`: FP32, or FP64 for the FP64 oracle, so that the oracle is a
// true FP64 computation rather than an FP32 one in disguise.
#pragma once

#include <optional>
#include <string>

#include <ATen/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace parity::forward {

enum class Precision { kFP32, kFP16, kBF16, kFP64 };
const char* PrecisionName(Precision precision);  // "fp32", "fp16", "bf16", "fp64"
// The one parser of precision names, used by every command and by case files: "fp32" / "fp16" /
// "bf16" / "fp64", also "float32" / "float", "float16" / "half", "bfloat16", "float64" / "double",
// any case. TryParsePrecision returns nullopt for anything else; ParsePrecision throws InputError
// naming the text.
inline constexpr const char* kPrecisionNames =
    "fp32 (float32, float), fp16 (float16, half), bf16 (bfloat16) or fp64 (float64, double)";
std::optional<Precision> TryParsePrecision(const std::string& text);
Precision ParsePrecision(const std::string& text);

struct Numerics {
  Precision precision = Precision::kFP32;
  c10::Device device = c10::Device(c10::kCPU);
  bool emulated = false;                        // FP16 on CPU: FP32 compute, FP16 rounding per op
  c10::ScalarType storage = c10::kFloat;        // dtype tensors are held in (FP32 when emulated)
  c10::ScalarType precision_type = c10::kFloat; // dtype whose rounding the results carry
  c10::ScalarType upcast = c10::kFloat;         // the reference's "upcast to FP32" steps: FP32, or
                                                // FP64 when the run itself is FP64
  c10::ScalarType logits_type = c10::kFloat;    // logits are returned in FP32 (FP64 for FP64 runs)

  // Rounds an op's output to the run precision: identity unless emulated, where it is
  // x.to(kHalf).to(kFloat).
  at::Tensor Round(const at::Tensor& x) const;
  // The reference's `x.to(input_dtype)` after an upcast step: casts to `storage` and rounds.
  at::Tensor ToRun(const at::Tensor& x) const;
  // Casts a checkpoint tensor to the run precision (and device), rounding when emulated. Contiguous.
  at::Tensor FromCheckpoint(const at::Tensor& weight) const;
  // The most negative finite value of `precision_type` (torch.finfo(dtype).min): the additive
  // attention mask's fill value, as both reference implementations use it.
  double Lowest() const;
  // "fp16 (emulated on cpu)", "bf16 (cuda)"...
  std::string Describe() const;
};

// The numerics for `precision` on `device`: FP16 on CPU is emulated, everything else native. Throws
// InputError when `device` is CUDA and this libtorch build has no CUDA.
Numerics MakeNumerics(Precision precision, c10::Device device);

}  // namespace parity::forward
