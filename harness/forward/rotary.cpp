#include "harness/forward/rotary.h"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>

namespace parity::forward {

namespace {

// Rows the table starts with (the reference builds max_position_embeddings rows at once; we grow
// lazily to keep huge max_position_embeddings cheap: every row depends only on its own position).
constexpr int64_t kInitialTableRows = 4096;

at::Tensor Exponents(int64_t dim, c10::ScalarType dtype, c10::Device device) {
  // torch.arange(0, dim, 2).float() / dim
  return at::arange(0, dim, 2, at::TensorOptions().dtype(at::kLong).device(device))
      .to(dtype)
      .div(dim);
}

}  // namespace

at::Tensor InverseFrequencies(double base, int64_t dim, c10::ScalarType dtype,
                              c10::Device device) {
  return at::reciprocal(at::pow(c10::Scalar(base), Exponents(dim, dtype, device)));
}

at::Tensor InverseFrequencies(const at::Tensor& base, int64_t dim) {
  return at::reciprocal(at::pow(base, Exponents(dim, base.scalar_type(), base.device())));
}

double InternLM2DynamicBase(double base, double factor, int64_t seq_len, int64_t max_positions,
                            int64_t dim) {
  const double d = static_cast<double>(dim);
  return base * std::pow((factor * static_cast<double>(seq_len) /
                          static_cast<double>(max_positions)) -
                             (factor - 1.0),
                         d / (d - 2.0));
}

at::Tensor HfDynamicBase(double base, double factor, int64_t seq_len, int64_t max_positions,
                         int64_t dim, c10::ScalarType dtype, c10::Device device) {
  // seq_len = torch.maximum(seq_len, max_position_embeddings); then
  // base * ((factor * seq_len / max_pos) - (factor - 1)) ** (dim / (dim - 2)), all tensor ops.
  const int64_t clamped = std::max(seq_len, max_positions);
  at::Tensor length = at::scalar_tensor(clamped, at::TensorOptions().dtype(at::kLong).device(device));
  const double d = static_cast<double>(dim);
  at::Tensor scaled = length.to(dtype).mul(factor).div(max_positions).sub(factor - 1.0);
  return scaled.pow(d / (d - 2.0)).mul(base);
}

Rotary::Rotary(const model::ModelConfig& config, const Numerics& numerics, RotaryStyle style)
    : numerics_(numerics),
      style_(style),
      dim_(config.head_dim),
      base_(config.rope_theta),
      scaling_(config.rope_scaling),
      max_positions_(config.max_position_embeddings) {
  if (style_ == RotaryStyle::kPerStep) {
    // HF computes the buffer at construction; linear scaling divides the frequencies.
    at::Tensor inv_freq = InverseFrequencies(base_, dim_, numerics_.upcast, c10::kCPU);
    if (scaling_.type == model::RopeScaling::Type::kLinear) inv_freq = inv_freq.div(scaling_.factor);
    inv_freq_ = inv_freq.to(numerics_.device);
  } else {
    GrowTable(std::min<int64_t>(std::max<int64_t>(max_positions_, 1), kInitialTableRows));
  }
}

double Rotary::EffectiveBase(int64_t seq_len) const {
  if (scaling_.type != model::RopeScaling::Type::kDynamic || seq_len <= max_positions_) return base_;
  if (style_ == RotaryStyle::kPrecomputedTable) {
    return InternLM2DynamicBase(base_, scaling_.factor, seq_len, max_positions_, dim_);
  }
  return HfDynamicBase(base_, scaling_.factor, seq_len, max_positions_, dim_, numerics_.upcast,
                       c10::kCPU)
      .item<double>();
}

CosSin Rotary::Compute(const at::Tensor& positions, int64_t kv_length, int64_t max_position) {
  CosSin result = style_ == RotaryStyle::kPrecomputedTable ? FromTable(positions, kv_length)
                                                           : PerStep(positions, max_position);
  result.cos = result.cos.unsqueeze(1);  // [B, 1, T, d], broadcast over heads
  result.sin = result.sin.unsqueeze(1);
  return result;
}

CosSin Rotary::FromAngles(const at::Tensor& t, const at::Tensor& inv_freq) const {
  at::Tensor freqs = t.unsqueeze(-1) * inv_freq;  // [..., d / 2], one product per element
  at::Tensor angles = at::cat({freqs, freqs}, -1);
  return {numerics_.ToRun(angles.cos()), numerics_.ToRun(angles.sin())};
}

void Rotary::GrowTable(int64_t rows) {
  // Built on the CPU as the reference's constructor does, then moved to the device once.
  at::Tensor inv_freq = InverseFrequencies(base_, dim_, numerics_.upcast, c10::kCPU);
  at::Tensor t = at::arange(rows, at::TensorOptions().dtype(numerics_.upcast));
  if (scaling_.type == model::RopeScaling::Type::kLinear) t = t.div(scaling_.factor);
  CosSin table = FromAngles(t, inv_freq);
  table_cos_ = table.cos.to(numerics_.device);
  table_sin_ = table.sin.to(numerics_.device);
}

CosSin Rotary::FromTable(const at::Tensor& positions, int64_t kv_length) {
  const int64_t batch = positions.size(0), length = positions.size(1);
  if (kv_length > max_positions_) {
    // The reference rebuilds its table for seq_len rows on the run device; base' with dynamic NTK.
    const double base = EffectiveBase(kv_length);
    at::Tensor inv_freq = InverseFrequencies(base, dim_, numerics_.upcast, numerics_.device);
    at::Tensor t = positions.to(numerics_.upcast);
    if (scaling_.type == model::RopeScaling::Type::kLinear) t = t.div(scaling_.factor);
    return FromAngles(t, inv_freq);
  }
  if (kv_length > table_cos_.size(0)) {
    GrowTable(std::min(max_positions_, std::max(kv_length, 2 * table_cos_.size(0))));
  }
  at::Tensor flat = positions.reshape({-1});
  return {table_cos_.index_select(0, flat).view({batch, length, dim_}),
          table_sin_.index_select(0, flat).view({batch, length, dim_})};
}

CosSin Rotary::PerStep(const at::Tensor& positions, int64_t max_position) {
  at::Tensor inv_freq = inv_freq_;
  if (scaling_.type == model::RopeScaling::Type::kDynamic) {
    const int64_t seq_len =
        (max_position >= 0 ? max_position : positions.max().item<int64_t>()) + 1;
    if (seq_len > max_positions_) {
      inv_freq = InverseFrequencies(HfDynamicBase(base_, scaling_.factor, seq_len, max_positions_,
                                                  dim_, numerics_.upcast, numerics_.device),
                                    dim_);
    }
  }
  return FromAngles(positions.to(numerics_.upcast), inv_freq);
}

}  // namespace parity::forward
