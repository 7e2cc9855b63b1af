#include "harness/forward/numerics.h"

#include <algorithm>
#include <optional>
#include <cctype>
#include <limits>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <fmt/format.h>

#include "harness/core/error.h"

namespace parity::forward {

const char* PrecisionName(Precision precision) {
  switch (precision) {
    case Precision::kFP32: return "fp32";
    case Precision::kFP16: return "fp16";
    case Precision::kBF16: return "bf16";
    case Precision::kFP64: return "fp64";
  }
  return "?";
}

std::optional<Precision> TryParsePrecision(const std::string& text) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "fp32" || lower == "float32" || lower == "float") return Precision::kFP32;
  if (lower == "fp16" || lower == "float16" || lower == "half") return Precision::kFP16;
  if (lower == "bf16" || lower == "bfloat16") return Precision::kBF16;
  if (lower == "fp64" || lower == "float64" || lower == "double") return Precision::kFP64;
  return std::nullopt;
}

Precision ParsePrecision(const std::string& text) {
  if (std::optional<Precision> precision = TryParsePrecision(text)) return *precision;
  throw InputError(fmt::format("unknown precision '{}': expected {}", text, kPrecisionNames));
}

at::Tensor Numerics::Round(const at::Tensor& x) const {
  if (!emulated) return x;
  return x.to(precision_type).to(storage);
}

at::Tensor Numerics::ToRun(const at::Tensor& x) const { return Round(x.to(storage)); }

at::Tensor Numerics::FromCheckpoint(const at::Tensor& weight) const {
  TORCH_CHECK(weight.is_floating_point(), "FromCheckpoint: expected a floating-point tensor, got ",
              weight.scalar_type());
  // BF16 -> FP16 goes through FP32 here as in PyTorch's own conversion: one rounding.
  at::Tensor cast = weight.to(device, storage).contiguous();
  if (emulated) cast = Round(cast).contiguous();
  return cast;
}

double Numerics::Lowest() const {
  switch (precision_type) {
    case c10::kHalf: return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
    case c10::kBFloat16: return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    case c10::kDouble: return std::numeric_limits<double>::lowest();
    default: return static_cast<double>(std::numeric_limits<float>::lowest());
  }
}

std::string Numerics::Describe() const {
  std::string where = device.is_cuda() ? "cuda" : "cpu";
  if (tf32) where += ", tf32 matmuls";
  const std::string text = policy.base == precision ? policy.Text() : PrecisionName(precision);
  // FP16 on CPU is emulated in whichever module runs it.
  bool any_emulated = emulated;
  if (device.is_cpu()) {
    for (const PrecisionOverride& o : policy.overrides) {
      any_emulated = any_emulated || o.precision == Precision::kFP16;
    }
  }
  if (any_emulated && text == "fp16") return fmt::format("fp16 (emulated on {})", where);
  if (any_emulated) return fmt::format("{} ({}, fp16 emulated)", text, where);
  return fmt::format("{} ({})", text, where);
}

Numerics Numerics::For(Module module, int64_t layer) const {
  const Precision wanted = policy.Of(module, layer);
  if (wanted == precision) return *this;
  Numerics numerics = MakeNumerics(wanted, device);
  numerics.policy = policy;
  numerics.tf32 = tf32;
  return numerics;
}

at::Tensor Cast(const at::Tensor& x, const Numerics& from, const Numerics& to) {
  if (from.precision == to.precision) return x;
  return to.ToRun(x);
}

Numerics MakeNumerics(const PrecisionPolicy& policy, c10::Device device) {
  if (policy.tf32 && !device.is_cuda()) {
    throw InputError(fmt::format(
        "precision policy '{}': tf32 is a CUDA tensor-core matmul mode; on {} an FP32 matmul is "
        "plain FP32 (use fp32, or --device cuda)", policy.Text(), device.str()));
  }
  Numerics numerics = MakeNumerics(policy.base, device);
  numerics.policy = policy;
  numerics.tf32 = policy.tf32;
  return numerics;
}

Tf32Scope::Tf32Scope(const Numerics& numerics) {
  if (!numerics.device.is_cuda()) return;
  active_ = true;
  previous_ = at::globalContext().allowTF32CuBLAS();
  if (previous_ != numerics.tf32) at::globalContext().setAllowTF32CuBLAS(numerics.tf32);
}

Tf32Scope::~Tf32Scope() {
  if (active_ && at::globalContext().allowTF32CuBLAS() != previous_) {
    at::globalContext().setAllowTF32CuBLAS(previous_);
  }
}

bool Tf32Enabled() { return at::globalContext().allowTF32CuBLAS(); }

Numerics MakeNumerics(Precision precision, c10::Device device) {
  if (device.is_cuda() && !at::hasCUDA()) {
    throw InputError("device 'cuda' requested, but this libtorch build has no CUDA support");
  }
  if (!device.is_cpu() && !device.is_cuda()) {
    throw InputError(fmt::format("device '{}' is not supported: expected cpu or cuda", device.str()));
  }
  Numerics numerics;
  numerics.precision = precision;
  numerics.policy = PrecisionPolicy(precision);
  numerics.device = device;
  switch (precision) {
    case Precision::kFP32:
      numerics.storage = numerics.precision_type = c10::kFloat;
      break;
    case Precision::kBF16:
      numerics.storage = numerics.precision_type = c10::kBFloat16;
      break;
    case Precision::kFP64:
      numerics.storage = numerics.precision_type = c10::kDouble;
      numerics.upcast = numerics.logits_type = c10::kDouble;
      break;
    case Precision::kFP16:
      numerics.precision_type = c10::kHalf;
      numerics.emulated = device.is_cpu();
      numerics.storage = numerics.emulated ? c10::kFloat : c10::kHalf;
      break;
  }
  return numerics;
}

}  // namespace parity::forward
