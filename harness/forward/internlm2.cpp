#include "harness/forward/internlm2.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "harness/core/error.h"
#include "harness/forward/decoder.h"

namespace parity::forward {

namespace {

class InternLM2 : public Decoder {
 public:
  InternLM2(const model::ModelConfig& config, const Weights& weights, const Numerics& numerics,
            const Variants& variants)
      : Decoder(config, weights, numerics, variants) {
    using model::Role;
    if (config_.head_dim * config_.num_heads != config_.hidden_size) {
      // The remote code computes head_dim = hidden_size // num_attention_heads and insists on it.
      throw InputError(fmt::format(
          "{}: InternLM2 needs hidden_size ({}) = num_attention_heads ({}) * head_dim ({})",
          config_.source, config_.hidden_size, config_.num_heads, config_.head_dim));
    }
    const int64_t kv = config_.num_kv_heads, groups = config_.group_size(),
                  d = config_.head_dim;
    for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
      Layer l;
      const at::Tensor& wqkv = weights.Get(Role::kQkv, layer);
      if (variants_.fused_qkv) {
        l.wqkv = numerics_.FromCheckpoint(wqkv);
      } else {
        // Rows are kv blocks of (G + 2) * d: G query heads, the group's K head, its V head.
        at::Tensor grouped = wqkv.reshape({kv, groups + 2, d, -1});
        l.wq = numerics_.FromCheckpoint(grouped.slice(1, 0, groups).reshape({kv * groups * d, -1}));
        l.wk = numerics_.FromCheckpoint(grouped.select(1, groups).reshape({kv * d, -1}));
        l.wv = numerics_.FromCheckpoint(grouped.select(1, groups + 1).reshape({kv * d, -1}));
      }
      l.wo = numerics_.FromCheckpoint(weights.Get(Role::kO, layer));
      attention_.push_back(std::move(l));
    }
  }

 protected:
  at::Tensor Attention(int64_t layer, const at::Tensor& x, at::Tensor& cached_keys,
                       at::Tensor& cached_values, const ops::AttentionInputs& inputs,
                       const CosSin& rotary) override {
    const Layer& l = attention_[layer];
    const int64_t batch = x.size(0), length = x.size(1);
    const int64_t kv = config_.num_kv_heads, groups = config_.group_size(),
                  d = config_.head_dim, heads = config_.num_heads;
    at::Tensor q, k, v;  // [B, T, heads, d]
    if (variants_.fused_qkv) {
      at::Tensor qkv = ops::Linear(numerics_, x, l.wqkv).view({batch, length, kv, groups + 2, d});
      q = qkv.slice(3, 0, groups).reshape({batch, length, heads, d});  // "b q h gs d -> b q (h gs) d"
      k = qkv.select(3, groups);                                         // [..., -2, :]
      v = qkv.select(3, groups + 1);                                     // [..., -1, :]
    } else {
      q = ops::Linear(numerics_, x, l.wq).view({batch, length, heads, d});
      k = ops::Linear(numerics_, x, l.wk).view({batch, length, kv, d});
      v = ops::Linear(numerics_, x, l.wv).view({batch, length, kv, d});
    }
    q = ops::ApplyRotary(numerics_, q.transpose(1, 2), rotary.cos, rotary.sin);
    k = ops::ApplyRotary(numerics_, k.transpose(1, 2), rotary.cos, rotary.sin);
    ops::AppendToCache(cached_keys, cached_values, k, v.transpose(1, 2));
    at::Tensor merged = AttendAndMerge(q, cached_keys, cached_values, inputs);
    return ops::Linear(numerics_, merged, l.wo);
  }

 private:
  struct Layer {
    at::Tensor wqkv;        // fused: [kv * (G + 2) * d, D]
    at::Tensor wq, wk, wv;  // split: [H * d, D], [kv * d, D], [kv * d, D]
    at::Tensor wo;          // [D, H * d]
  };
  std::vector<Layer> attention_;  // per layer
};

}  // namespace

std::unique_ptr<CausalLM> MakeInternLM2(const model::ModelConfig& config, const Weights& weights,
                                        const Numerics& numerics, const Variants& variants) {
  if (config.arch != model::Architecture::kInternLM2) {
    throw InputError(fmt::format("{}: MakeInternLM2 needs an internlm2 config, got {}",
                                 config.source, model::ArchitectureName(config.arch)));
  }
  return std::make_unique<InternLM2>(config, weights, numerics, variants);
}

}  // namespace parity::forward
