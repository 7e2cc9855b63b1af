#include "harness/forward/ops.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/version.h>

#include "harness/core/error.h"

namespace parity::forward::ops {

at::Tensor Linear(const Numerics& numerics, const at::Tensor& x, const at::Tensor& weight) {
  return numerics.Round(at::linear(x, weight));
}

at::Tensor Linear(const Numerics& numerics, const at::Tensor& x, const at::Tensor& weight,
                  const at::Tensor& bias) {
  if (!bias.defined()) return Linear(numerics, x, weight);
  return numerics.Round(at::linear(x, weight, bias));
}

at::Tensor RmsNorm(const Numerics& numerics, const at::Tensor& x, const at::Tensor& weight,
                   double eps) {
  at::Tensor hidden = x.to(numerics.upcast);
  at::Tensor variance = hidden.pow(2).mean(-1, /*keepdim=*/true);
  hidden = hidden * at::rsqrt(variance + eps);
  return numerics.Round(weight * numerics.ToRun(hidden));
}

at::Tensor GatedMlp(const Numerics& numerics, const at::Tensor& x, const at::Tensor& gate,
                    const at::Tensor& up, const at::Tensor& down) {
  at::Tensor activated = numerics.Round(at::silu(Linear(numerics, x, gate)));
  at::Tensor product = numerics.Round(activated * Linear(numerics, x, up));
  return Linear(numerics, product, down);
}

at::Tensor Add(const Numerics& numerics, const at::Tensor& a, const at::Tensor& b) {
  return numerics.Round(a + b);
}

at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor first = x.slice(-1, 0, half);
  at::Tensor second = x.slice(-1, half);
  return at::cat({at::neg(second), first}, -1);
}

at::Tensor ApplyRotary(const Numerics& numerics, const at::Tensor& x, const at::Tensor& cos,
                       const at::Tensor& sin) {
  at::Tensor with_cos = numerics.Round(x * cos);
  at::Tensor with_sin = numerics.Round(RotateHalf(x) * sin);
  return numerics.Round(with_cos + with_sin);
}

at::Tensor RepeatKv(const at::Tensor& x, int64_t groups) {
  if (groups == 1) return x;
  const int64_t batch = x.size(0), kv_heads = x.size(1), length = x.size(2), dim = x.size(3);
  return x.unsqueeze(2)
      .expand({batch, kv_heads, groups, length, dim})
      .reshape({batch, kv_heads * groups, length, dim});
}

at::Tensor ScaleScores(const Numerics& numerics, const at::Tensor& scores, int64_t head_dim,
                       ScoreScaling scaling) {
  const double d = static_cast<double>(head_dim);
  if (scaling == ScoreScaling::kDivideBySqrt) return numerics.Round(at::div(scores, std::sqrt(d)));
  return numerics.Round(at::mul(scores, std::pow(d, -0.5)));
}

AttentionInputs MakeAttentionInputs(const Numerics& numerics, int64_t batch, int64_t past,
                                    int64_t length, const at::Tensor& attention_mask,
                                    bool need_additive, bool need_allowed, int64_t window) {
  AttentionInputs inputs;
  inputs.batch = batch;
  inputs.past = past;
  inputs.length = length;
  const int64_t total = past + length;
  const auto long_options = at::TensorOptions().dtype(at::kLong).device(numerics.device);

  at::Tensor real;  // [B, S] bool
  if (attention_mask.defined()) {
    if (attention_mask.dim() != 2 || attention_mask.size(0) != batch ||
        attention_mask.size(1) != total) {
      throw InputError(fmt::format(
          "attention_mask: expected shape [{}, {}] (batch, cached + new tokens), got {}", batch,
          total, fmt::join(attention_mask.sizes(), ", ")));
    }
    real = attention_mask.to(numerics.device).ne(0);
    inputs.padded = !real.all().item<bool>();
  }

  if (inputs.padded) {
    // HF: position_ids = attention_mask.long().cumsum(-1) - 1, padding positions filled with 1.
    at::Tensor positions = real.to(at::kLong).cumsum(-1) - 1;
    positions.masked_fill_(real.logical_not(), 1);
    inputs.positions = positions.slice(1, past, total).contiguous();
    inputs.max_position = inputs.positions.max().item<int64_t>();
  } else {
    inputs.positions = at::arange(past, total, long_options).unsqueeze(0).expand({batch, length});
    inputs.max_position = total - 1;
  }

  const bool windowed = window > 0 && total > window;  // some key is outside some query's window
  const bool need_mask_for_additive = need_additive && (inputs.padded || length > 1 || windowed);
  const bool need_mask_for_allowed =
      need_allowed && (inputs.padded || (length > 1 && past > 0) || windowed);
  if (!need_mask_for_additive && !need_mask_for_allowed) return inputs;

  // allowed[b, 0, t, s]: key s is not after query t (causal), and key s is real.
  at::Tensor key_index = at::arange(total, long_options).unsqueeze(0);             // [1, S]
  at::Tensor query_index = at::arange(past, total, long_options).unsqueeze(1);     // [T, 1]
  at::Tensor allowed = key_index.le(query_index);                                    // [T, S]
  if (window > 0) allowed = allowed.logical_and(query_index.sub(key_index).lt(window));
  allowed = allowed.unsqueeze(0).unsqueeze(0);                                       // [1, 1, T, S]
  allowed = allowed.expand({batch, 1, length, total});
  if (inputs.padded) {
    allowed = allowed.logical_and(real.unsqueeze(1).unsqueeze(1));
    at::Tensor query_is_padding = real.slice(1, past, total).logical_not().unsqueeze(1).unsqueeze(3);
    allowed = allowed.logical_or(query_is_padding);
  }
  allowed = allowed.contiguous();
  if (need_mask_for_allowed) inputs.allowed = allowed;
  if (need_mask_for_additive) {
    at::Tensor additive = at::zeros(allowed.sizes(), at::TensorOptions()
                                                         .dtype(numerics.storage)
                                                         .device(numerics.device));
    inputs.additive_mask = additive.masked_fill(allowed.logical_not(), numerics.Lowest());
  }
  return inputs;
}

at::Tensor EagerAttention(const Numerics& numerics, const at::Tensor& q, const at::Tensor& k,
                          const at::Tensor& v, const AttentionInputs& inputs,
                          ScoreScaling scaling) {
  const int64_t groups = q.size(1) / k.size(1);
  at::Tensor keys = RepeatKv(k, groups);
  at::Tensor values = RepeatKv(v, groups);
  at::Tensor scores = numerics.Round(at::matmul(q, keys.transpose(2, 3)));  // [B, H, T, S]
  scores = ScaleScores(numerics, scores, q.size(-1), scaling);
  if (inputs.additive_mask.defined()) scores = numerics.Round(scores + inputs.additive_mask);
  at::Tensor probabilities = numerics.ToRun(at::softmax(scores, -1, numerics.upcast));
  return numerics.Round(at::matmul(probabilities, values));
}

bool SdpaAvailable() { return TORCH_VERSION_MAJOR >= 2; }

at::Tensor SdpaAttention(const Numerics& numerics, const at::Tensor& q, const at::Tensor& k,
                         const at::Tensor& v, const AttentionInputs& inputs) {
#if TORCH_VERSION_MAJOR >= 2
  const int64_t groups = q.size(1) / k.size(1);
  at::Tensor keys = RepeatKv(k, groups);
  at::Tensor values = RepeatKv(v, groups);
  std::optional<at::Tensor> mask;
  if (inputs.allowed.defined()) mask = inputs.allowed;
  const bool is_causal = !mask.has_value() && inputs.length > 1;
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 1
  const std::optional<double> scale = std::pow(static_cast<double>(q.size(-1)), -0.5);
  at::Tensor out = at::scaled_dot_product_attention(q, keys, values, mask, 0.0, is_causal, scale);
#else
  at::Tensor out = at::scaled_dot_product_attention(q, keys, values, mask, 0.0, is_causal);
#endif
  return numerics.Round(out);
#else
  throw InputError(fmt::format("sdpa needs libtorch 2.x (this build has libtorch {})",
                               TORCH_VERSION));
#endif
}

at::Tensor SparseMoe(const Numerics& numerics, const at::Tensor& x, const at::Tensor& router,
                     const std::vector<Expert>& experts, int64_t top_k, bool normalize) {
  const int64_t width = x.size(-1);
  const at::Tensor flat = x.reshape({-1, width});                           // [N, D]
  const at::Tensor logits = Linear(numerics, flat, router);                 // [N, E] run dtype
  const at::Tensor probabilities = at::softmax(logits, -1, numerics.upcast);
  auto [weights, chosen] = at::topk(probabilities, top_k, -1);              // [N, k] each
  if (normalize) weights = weights / weights.sum(-1, /*keepdim=*/true);
  weights = numerics.ToRun(weights).reshape({-1});                          // [N * k]
  const at::Tensor chosen_flat = chosen.reshape({-1});
  at::Tensor out = at::zeros_like(flat);
  const at::Tensor counts =
      at::bincount(chosen_flat.to(at::kCPU), {}, static_cast<int64_t>(experts.size()));
  const int64_t* count = counts.data_ptr<int64_t>();
  for (int64_t e = 0; e < static_cast<int64_t>(experts.size()); ++e) {
    if (count[e] == 0) continue;
    // Slots (token * k + rank) that chose expert e; a token chooses an expert at most once.
    const at::Tensor slots = chosen_flat.eq(e).nonzero().reshape({-1});
    const at::Tensor tokens = slots.div(top_k, "floor");
    const at::Tensor state = flat.index_select(0, tokens);
    const Expert& expert = experts[e];
    at::Tensor hidden = GatedMlp(numerics, state, expert.gate, expert.up, expert.down);
    hidden = numerics.Round(hidden * weights.index_select(0, slots).unsqueeze(1));
    out = numerics.Round(out.index_add(0, tokens, hidden));
  }
  return out.view(x.sizes());
}

void AppendToCache(at::Tensor& cached_keys, at::Tensor& cached_values, const at::Tensor& keys,
                   const at::Tensor& values) {
  if (!cached_keys.defined()) {
    cached_keys = keys;
    cached_values = values;
    return;
  }
  cached_keys = at::cat({cached_keys, keys}, 2);
  cached_values = at::cat({cached_values, values}, 2);
}

namespace {

// Makes sure `buffer` [B, H, C, d] holds at least `needed` positions, keeping the first `live`.
void Reserve(at::Tensor& buffer, const at::Tensor& like, int64_t heads, int64_t needed,
             int64_t live, int64_t capacity_hint) {
  if (buffer.defined() && buffer.size(2) >= needed) return;
  const int64_t capacity =
      std::max({needed, capacity_hint, buffer.defined() ? 2 * buffer.size(2) : int64_t{0}});
  at::Tensor grown = at::empty({like.size(0), heads, capacity, like.size(3)}, like.options());
  if (buffer.defined() && live > 0) grown.slice(2, 0, live).copy_(buffer.slice(2, 0, live));
  buffer = grown;
}

}  // namespace

CacheView WriteToStaticCache(at::Tensor& key_buffer, at::Tensor& value_buffer,
                             const at::Tensor& keys, const at::Tensor& values, int64_t past,
                             int64_t groups, int64_t capacity_hint) {
  const int64_t batch = keys.size(0), kv = keys.size(1), length = keys.size(2), dim = keys.size(3);
  const int64_t total = past + length, heads = kv * groups;
  Reserve(key_buffer, keys, heads, total, past, capacity_hint);
  Reserve(value_buffer, values, heads, total, past, capacity_hint);
  const int64_t capacity = key_buffer.size(2);
  // [B, H, C, d] seen as [B, kv, G, C, d]: query head i = kv head i / G, as repeat_kv lays them out.
  key_buffer.view({batch, kv, groups, capacity, dim})
      .slice(3, past, total)
      .copy_(keys.unsqueeze(2));
  value_buffer.view({batch, kv, groups, capacity, dim})
      .slice(3, past, total)
      .copy_(values.unsqueeze(2));
  return {key_buffer.slice(2, 0, total), value_buffer.slice(2, 0, total)};
}

}  // namespace parity::forward::ops
