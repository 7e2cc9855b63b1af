// Rotary position embedding (rotate_half convention) the two ways the references compute cos/sin.
//
// Precomputed table (old InternLM2 remote code, Variants::rotary_precomputed = true):
//   inv_freq = 1 / base^(arange(0, d, 2) / d) in FP32; t = arange(rows) (/ factor for linear scaling);
//   cos/sin = cat(outer(t, inv_freq) x2).cos()/sin() computed in FP32 on the CPU at construction,
//   cast to the run dtype, then indexed by position. When seq_len (= cached + new keys) exceeds the
//   table, the reference rebuilds it for seq_len rows on the run device; with dynamic NTK scaling and
//   seq_len > max_position_embeddings the rebuild uses base' (Python double arithmetic):
//   base' = base * ((f * seq_len / max_pos) - (f - 1)) ^ (d / (d - 2)).
//   The rebuilt table is kept for the rest of the sequence and never shrinks; since seq_len only grows
//   within a sequence, every step above max_pos uses base'(its own seq_len). (A reference process that
//   already ran a longer sequence keeps its larger table for the next prompt; we model a freshly
//   loaded model per sequence, i.e. the state is per KVCache.)
//
// Per step (HF Llama, rotary_precomputed = false): inv_freq from the same formula at construction
// (linear scaling divides inv_freq by the factor instead of dividing t); each call computes
// freqs = inv_freq x position_ids in FP32 on the run device, cos/sin in FP32, times
// attention_scaling (1.0 here), then casts to the run dtype. Dynamic NTK: when seq_len =
// max(position_ids) + 1 exceeds max_position_embeddings, inv_freq is recomputed from base' where HF
// evaluates base' with FP32 tensor arithmetic (seq_len is a tensor there); back below, the original
// inv_freq (HF resets it).
//
// For FP64 runs every "FP32" above is FP64 (Numerics::upcast), so the oracle is exact to FP64.
#pragma once

#include <cstdint>

#include <ATen/Tensor.h>

#include "harness/forward/numerics.h"
#include "harness/model/config.h"

namespace parity::forward {

enum class RotaryStyle {
  kPrecomputedTable,  // old InternLM2 remote code
  kPerStep,           // HF Llama
};

// cos and sin, each [B, 1, T, d] in the storage dtype (rounded to the run precision).
struct CosSin {
  at::Tensor cos;
  at::Tensor sin;
};

class Rotary {
 public:
  // Rotary over head_dim d of `config` (rope_theta, rope_scaling, max_position_embeddings).
  Rotary(const model::ModelConfig& config, const Numerics& numerics, RotaryStyle style);

  // cos/sin for `positions` [B, T] (int64). `kv_length` is the keys' length after this call
  // (cached + new), the seq_len InternLM2's code passes to its rotary module. `max_position` is
  // max(positions) when the caller knows it on the host (HF's dynamic NTK seq_len - 1); -1: read it
  // from the device (a synchronisation, only with dynamic scaling in the per-step style).
  CosSin Compute(const at::Tensor& positions, int64_t kv_length, int64_t max_position = -1);

  RotaryStyle style() const { return style_; }
  // The rotary base a call with this seq_len uses (base' above max_position_embeddings with dynamic
  // scaling, else rope_theta), as a double; for diagnostics and tests.
  double EffectiveBase(int64_t seq_len) const;

 private:
  CosSin FromTable(const at::Tensor& positions, int64_t kv_length);
  CosSin PerStep(const at::Tensor& positions, int64_t max_position);
  // cos/sin of cat(freqs, freqs) with freqs = t[..., None] * inv_freq, cast to the run dtype.
  CosSin FromAngles(const at::Tensor& t, const at::Tensor& inv_freq) const;
  void GrowTable(int64_t rows);

  Numerics numerics_;
  RotaryStyle style_;
  int64_t dim_;
  double base_;
  model::RopeScaling scaling_;
  int64_t max_positions_;
  at::Tensor inv_freq_;    // [d / 2] upcast dtype on the device (base rope, per-step style)
  at::Tensor table_cos_;   // [rows, d] storage dtype on the device (table style)
  at::Tensor table_sin_;
};

// 1 / base^(arange(0, d, 2) / d) in `dtype` on `device`, as both references write it
// (pow of a scalar base by a tensor exponent, then the reciprocal).
at::Tensor InverseFrequencies(double base, int64_t dim, c10::ScalarType dtype, c10::Device device);
// The same with a 0-dim tensor base (HF's dynamic NTK, where base' is a tensor).
at::Tensor InverseFrequencies(const at::Tensor& base, int64_t dim);

// Dynamic NTK base as InternLM2's remote code computes it: Python double arithmetic.
double InternLM2DynamicBase(double base, double factor, int64_t seq_len, int64_t max_positions,
                            int64_t dim);
// Dynamic NTK base as HF computes it: 0-dim tensor arithmetic in `dtype` (FP32 in HF; the FP64
// oracle passes kDouble) on `device`. seq_len is clamped below at max_positions as HF does.
at::Tensor HfDynamicBase(double base, double factor, int64_t seq_len, int64_t max_positions,
                         int64_t dim, c10::ScalarType dtype, c10::Device device);

}  // namespace parity::forward
