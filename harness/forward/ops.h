// The operations both forward passes are built from, each with the rounding its reference applies.
// Every op whose CUDA half kernel would produce a half tensor ends in Numerics::Round, so that an
// emulated FP16 run carries the same per-op rounding; the reference's FP32 upcasts compute in
// Numerics::upcast without rounding. Shapes: B batch, T new tokens, S = cached + new keys, D model
// width, H query heads, d head width.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/Tensor.h>

#include "harness/forward/numerics.h"

namespace parity::forward::ops {

// x W^T: x [..., in], weight [out, in] -> [..., out], rounded (one GEMM, FP32 accumulation).
at::Tensor Linear(const Numerics& numerics, const at::Tensor& x, const at::Tensor& weight);
// x W^T + b as nn.Linear with a bias computes it (one fused call, one rounding); `bias` [out] may be
// undefined, then the same as above.
at::Tensor Linear(const Numerics& numerics, const at::Tensor& x, const at::Tensor& weight,
                  const at::Tensor& bias);

// RMSNorm as both references write it: h = x.to(upcast); h = h * rsqrt(mean(h^2, -1) + eps);
// h = h.to(run dtype) (rounded); return weight * h (multiplied in the run dtype, rounded).
// x [..., D], weight [D].
at::Tensor RmsNorm(const Numerics& numerics, const at::Tensor& x, const at::Tensor& weight,
                   double eps);

// The gated MLP: down(silu(gate x) * up x) (InternLM2: w2(silu(w1 x) * w3 x)), every op rounded.
// x [..., D], gate/up [F, D], down [D, F].
at::Tensor GatedMlp(const Numerics& numerics, const at::Tensor& x, const at::Tensor& gate,
                    const at::Tensor& up, const at::Tensor& down);

// a + b rounded (the residual adds, in the run dtype).
at::Tensor Add(const Numerics& numerics, const at::Tensor& a, const at::Tensor& b);

// cat(-x2, x1) along the last dimension, x = [x1, x2] (the rotate_half convention).
at::Tensor RotateHalf(const at::Tensor& x);
// x * cos + rotate_half(x) * sin in the run dtype, each op rounded. x [B, heads, T, d];
// cos/sin [B or 1, 1, T, d] in the storage dtype.
at::Tensor ApplyRotary(const Numerics& numerics, const at::Tensor& x, const at::Tensor& cos,
                       const at::Tensor& sin);

// repeat_kv: [B, kv, S, d] -> [B, kv * groups, S, d]; query head i reads KV head i / groups.
at::Tensor RepeatKv(const at::Tensor& x, int64_t groups);

// How the attention scores are scaled by the head width.
enum class ScoreScaling {
  kDivideBySqrt,    // InternLM2: scores / math.sqrt(d)
  kMultiplyByInverse,  // HF Llama eager: scores * d ** -0.5
};
// scores scaled as `scaling` says, rounded. The two differ in the last bit when sqrt(d) is not a
// power of two. (On CUDA, PyTorch itself turns a division by a scalar into a multiplication by its
// FP32 reciprocal; at::div is used, so each device does what PyTorch does there.)
at::Tensor ScaleScores(const Numerics& numerics, const at::Tensor& scores, int64_t head_dim,
                       ScoreScaling scaling);

// What attention needs to know about positions and masking for one Forward call.
struct AttentionInputs {
  int64_t batch = 0;
  int64_t past = 0;     // keys already cached
  int64_t length = 0;   // T, new tokens
  bool padded = false;  // an attention mask with some padding was given
  at::Tensor positions; // [B, T] int64: past..past+T-1, or cumsum(mask) - 1 with left padding
  int64_t max_position = 0;  // max(positions), known on the host (past + T - 1 without padding;
                             // with padding read once from the device, which the mask needs anyway)
  // [B, 1, T, S] in the storage dtype: 0 where query t may read key s, Numerics::Lowest() elsewhere
  // (causal and padding). Undefined when nothing is masked (one new token, no padding): adding
  // zeros would change nothing. Query rows that are padding may read every key, so that no row is
  // fully masked (a fully masked FP16 row would give NaN, which 0-weighted would still poison real
  // rows through the V matmul); real rows are unaffected.
  at::Tensor additive_mask;
  // [B, 1, T, S] bool, true = may read (same rule), for the fused attention kernel. Undefined when
  // the fused kernel needs no mask (no padding and T == 1 or nothing cached; then it runs is_causal).
  at::Tensor allowed;
};
// attention_mask: [B, past + T] (1 real, 0 padding) or undefined. Positions follow HF's
// `attention_mask.cumsum(-1) - 1`, with padding positions set to 1. `window` > 0: sliding-window
// attention, query q (cache index) reads key k only when q - k < window (HF's
// `kv_idx > q_idx - sliding_window`).
AttentionInputs MakeAttentionInputs(const Numerics& numerics, int64_t batch, int64_t past,
                                    int64_t length, const at::Tensor& attention_mask,
                                    bool need_additive, bool need_allowed, int64_t window = 0);

// Eager attention as both references write it: repeat_kv; scores = q k^T scaled; + mask (rounded);
// softmax in the upcast dtype, cast back (rounded); matmul with v (rounded).
// q [B, H, T, d]; k, v [B, kv, S, d] -> [B, H, T, d].
at::Tensor EagerAttention(const Numerics& numerics, const at::Tensor& q, const at::Tensor& k,
                          const at::Tensor& v, const AttentionInputs& inputs, ScoreScaling scaling);

// at::scaled_dot_product_attention (libtorch >= 2 only; throws InputError "sdpa needs libtorch 2.x"
// otherwise), called as HF's sdpa_attention_forward does: repeat_kv, scale d ** -0.5, boolean mask
// or is_causal. Output rounded. Same shapes as EagerAttention.
at::Tensor SdpaAttention(const Numerics& numerics, const at::Tensor& q, const at::Tensor& k,
                         const at::Tensor& v, const AttentionInputs& inputs);
// Whether this build has at::scaled_dot_product_attention.
bool SdpaAvailable();

// One MoE layer's experts, each a SwiGLU: gate/up [I, D], down [D, I].
struct Expert {
  at::Tensor gate, up, down;
};
// The Qwen3-MoE sparse block as HF computes it: router logits = x R^T in the run dtype (rounded);
// probabilities = softmax in the upcast dtype (FP32) over all experts; the top_k largest; divided
// by their sum when `normalize`; cast to the run dtype (transformers 4 and the later 5.x router);
// then, for each expert that any token chose, in increasing expert index: its SwiGLU on those
// tokens, times the token's weight (rounded), added into the output with index_add_ (rounded).
// x [..., D], router [E, D] -> [..., D].
at::Tensor SparseMoe(const Numerics& numerics, const at::Tensor& x, const at::Tensor& router,
                     const std::vector<Expert>& experts, int64_t top_k, bool normalize);

// Appends `keys`/`values` [B, kv, T, d] to one layer's cache slots, which then hold [B, kv, S, d]
// (at::cat along T, reallocating per step, as HF's DynamicCache does; cheap at these sizes next to
// the GEMMs). The first call stores the tensors as they are.
void AppendToCache(at::Tensor& cached_keys, at::Tensor& cached_values, const at::Tensor& keys,
                   const at::Tensor& values);

// The static layout (forward/causal_lm.h KVCache::kStatic): writes `keys`/`values` [B, kv, T, d],
// each KV head repeated to its `groups` query heads, into one layer's buffers [B, kv * groups, C, d]
// at positions past .. past + T - 1, in place (one broadcasting copy each). Allocates the buffers
// (capacity max(capacity_hint, past + T)) when undefined and reallocates them with doubled capacity
// (copying the live part) when past + T exceeds it. Returns the live views [B, kv * groups,
// past + T, d] of keys and values, which attention reads.
struct CacheView {
  at::Tensor keys, values;
};
CacheView WriteToStaticCache(at::Tensor& key_buffer, at::Tensor& value_buffer,
                             const at::Tensor& keys, const at::Tensor& values, int64_t past,
                             int64_t groups, int64_t capacity_hint);

}  // namespace parity::forward::ops
