// A forward pass split at attention, so that the parts whose shapes never change with the number of
// cached positions can be recorded once and replayed (decode/piecewise.h records them as CUDA
// graphs), while attention over the live slice of the KV cache, whose shape grows by one key per
// step, runs eagerly between them. Decoder::Forward itself runs through these same functions, in
// the same order, so a step assembled from the pieces issues exactly Forward's ops (the pieces are
// the definition of the forward pass, not a copy of it).
//
// One step, for L layers:
//   context = Prepare(tokens, cache)            eager: checks, attention inputs, rotary cos/sin
//   hidden  = Embed(tokens)                     piece 0
//   h_0     = PreAttention(0, hidden, ...)      piece 0 (norm, q/k/v projections, q/k norm, rope)
//   for l:  a_l = Attend(l, qkv_l, cache, ...)  eager: the in-place KV-cache write, attention
//           h   = PostAttention(l, h_l, a_l)    piece l + 1 (o_proj, residual, norm, MLP, residual)
//           h_{l+1} = PreAttention(l + 1, h)    piece l + 1 (for l + 1 < L)
//   logits  = Head(h)                           piece L (final norm, LM head, cast)
//   Finish(cache, context)                      cache.length += T
// Shapes: tokens [B, T] int64; hidden [B, T, D]; q [B, H, T, d]; k, v [B, kv, T, d]; attention
// output [B, H, T, d]; logits [B, T, V] (or [B, 1, V], see Variants::lm_head_all_positions).
#pragma once

#include <cstdint>
#include <string>

#include <ATen/Tensor.h>

#include "harness/forward/causal_lm.h"
#include "harness/forward/ops.h"
#include "harness/forward/rotary.h"

namespace parity::forward {

// What a step computes on the host before its first piece.
struct StepContext {
  ops::AttentionInputs inputs;    // full-attention layers
  ops::AttentionInputs windowed;  // sliding-window layers (== inputs when the model has none)
  CosSin rotary;                  // [B, 1, T, d] each, every layer's rotary
  int64_t past = 0, length = 0;
};

// One layer's rotated queries and keys and its values, in the layer's attention-scores numerics.
struct QueryKeyValue {
  at::Tensor q;  // [B, H, T, d]
  at::Tensor k;  // [B, kv, T, d]
  at::Tensor v;  // [B, kv, T, d]
};

class StepPieces {
 public:
  virtual ~StepPieces() = default;
  virtual int64_t num_layers() const = 0;
  // Empty when a one-token step can be recorded piecewise; otherwise why not, in words (an op with
  // a host synchronisation or a data-dependent shape inside a piece, e.g. MoE routing).
  virtual std::string RecordBlocker() const = 0;

  // Checks tokens and cache (InputError as Forward), sizes the cache, builds the attention inputs
  // and the rotary cos/sin for positions cache.length .. cache.length + T - 1. Does not change the
  // cache's contents or length.
  virtual StepContext Prepare(const at::Tensor& tokens, KVCache& cache,
                              const at::Tensor& attention_mask) = 0;
  // The embedding of `tokens` (ids on any device), in the embedding's numerics.
  virtual at::Tensor Embed(const at::Tensor& tokens) = 0;
  // Layer `layer` up to attention: `hidden` is Embed's output (layer 0) or PostAttention's (layer -
  // 1). Returns the residual stream in this layer's numerics and fills `qkv`.
  virtual at::Tensor PreAttention(int64_t layer, const at::Tensor& hidden, const CosSin& rotary,
                                  QueryKeyValue& qkv) = 0;
  // Writes k and v into the cache at positions context.past.. and attends over the cached + new
  // keys. Returns [B, H, T, d] in the layer's scores numerics.
  virtual at::Tensor Attend(int64_t layer, const QueryKeyValue& qkv, KVCache& cache,
                            const StepContext& context) = 0;
  // The rest of layer `layer`: output projection, residual add, MLP block. `residual` is
  // PreAttention's result. Reports the attention and MLP observation points.
  virtual at::Tensor PostAttention(int64_t layer, const at::Tensor& residual,
                                   const at::Tensor& attention, const Observer* observer) = 0;
  // Final norm, LM head, logits in Numerics::logits_type; reports the final-norm and logits points.
  virtual at::Tensor Head(const at::Tensor& hidden, const Observer* observer) = 0;
  // Commits the step: cache.length = context.past + context.length.
  virtual void Finish(KVCache& cache, const StepContext& context) = 0;
};

}  // namespace parity::forward
