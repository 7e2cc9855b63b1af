// How a forward pass represents and rounds numbers: the run precision (the base of its precision
// policy, precision_policy.h; For() gives each module's own), the device, whether FP16 is
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

#include "harness/forward/precision_policy.h"

namespace parity::forward {

struct Numerics {
  Precision precision = Precision::kFP32;
  c10::Device device = c10::Device(c10::kCPU);
  bool emulated = false;                        // FP16 on CPU: FP32 compute, FP16 rounding per op
  c10::ScalarType storage = c10::kFloat;        // dtype tensors are held in (FP32 when emulated)
  c10::ScalarType precision_type = c10::kFloat; // dtype whose rounding the results carry
  c10::ScalarType upcast = c10::kFloat;         // the reference's "upcast to FP32" steps: FP32, or
                                                // FP64 when the run itself is FP64
  c10::ScalarType logits_type = c10::kFloat;    // logits are returned in FP32 (FP64 for FP64 runs)
  PrecisionPolicy policy;                       // the whole policy (base = precision)
  bool tf32 = false;                            // CUDA FP32 matmuls run as TF32 (policy.tf32)

  // The numerics `module` at `layer` computes in (-1: the global instance), under `policy`.
  Numerics For(Module module, int64_t layer = -1) const;

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
  // "fp16 (emulated on cpu)", "bf16 (cuda)", "bf16+fp32:norm (cpu)", "fp32 (cuda, tf32 matmuls)"...
  std::string Describe() const;
};

// `x`, the output of a module computing in `from`, as the input of one computing in `to`: returned
// as it is when both have the same precision (a uniform run is untouched), else cast and rounded to
// `to` (one rounding, as the reference's explicit `x.to(dtype)`).
at::Tensor Cast(const at::Tensor& x, const Numerics& from, const Numerics& to);

// The numerics for `precision` on `device`: FP16 on CPU is emulated, everything else native. Throws
// InputError when `device` is CUDA and this libtorch build has no CUDA.
Numerics MakeNumerics(Precision precision, c10::Device device);
// The numerics of `policy`'s base on `device`, the policy attached. Throws InputError for tf32 on a
// CPU device (TF32 is a CUDA tensor-core matmul mode; a CPU FP32 matmul is plain FP32).
Numerics MakeNumerics(const PrecisionPolicy& policy, c10::Device device);

// While alive, CUDA FP32 matmuls run as TF32 exactly when `numerics.tf32` (the process-wide cuBLAS
// setting, restored on exit), so that two models of one lockstep run can differ in it. A no-op on
// CPU.
class Tf32Scope {
 public:
  explicit Tf32Scope(const Numerics& numerics);
  ~Tf32Scope();
  Tf32Scope(const Tf32Scope&) = delete;
  Tf32Scope& operator=(const Tf32Scope&) = delete;

 private:
  bool active_ = false;
  bool previous_ = false;
};
// Whether this process's CUDA FP32 matmuls currently run as TF32 (torch's allow_tf32 setting).
bool Tf32Enabled();

}  // namespace parity::forward
