#include "harness/forward/llama.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "harness/core/error.h"
#include "harness/forward/decoder.h"

namespace parity::forward {

namespace {

class Llama : public Decoder {
 public:
  Llama(const model::ModelConfig& config, const Weights& weights, const Numerics& numerics,
        const Variants& variants)
      : Decoder(config, weights, numerics, variants) {
    using model::Role;
    for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
      Layer l;
      at::Tensor wq = numerics_.FromCheckpoint(weights.Get(Role::kQ, layer));
      at::Tensor wk = numerics_.FromCheckpoint(weights.Get(Role::kK, layer));
      at::Tensor wv = numerics_.FromCheckpoint(weights.Get(Role::kV, layer));
      if (variants_.fused_qkv) {
        l.wqkv = at::cat({wq, wk, wv}, 0);  // [(H + 2 kv) * d, D]
      } else {
        l.wq = wq;
        l.wk = wk;
        l.wv = wv;
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
    const int64_t d = config_.head_dim, q_width = config_.num_heads * d,
                  kv_width = config_.num_kv_heads * d;
    at::Tensor q, k, v;  // [B, T, heads, d] (hidden_shape = (*input_shape, -1, head_dim))
    if (variants_.fused_qkv) {
      at::Tensor qkv = ops::Linear(numerics_, x, l.wqkv);
      q = qkv.slice(-1, 0, q_width).reshape({batch, length, -1, d});
      k = qkv.slice(-1, q_width, q_width + kv_width).reshape({batch, length, -1, d});
      v = qkv.slice(-1, q_width + kv_width).reshape({batch, length, -1, d});
    } else {
      q = ops::Linear(numerics_, x, l.wq).view({batch, length, -1, d});
      k = ops::Linear(numerics_, x, l.wk).view({batch, length, -1, d});
      v = ops::Linear(numerics_, x, l.wv).view({batch, length, -1, d});
    }
    q = ops::ApplyRotary(numerics_, q.transpose(1, 2), rotary.cos, rotary.sin);
    k = ops::ApplyRotary(numerics_, k.transpose(1, 2), rotary.cos, rotary.sin);
    ops::AppendToCache(cached_keys, cached_values, k, v.transpose(1, 2));
    at::Tensor merged = AttendAndMerge(q, cached_keys, cached_values, inputs);
    return ops::Linear(numerics_, merged, l.wo);
  }

 private:
  struct Layer {
    at::Tensor wq, wk, wv;  // [H * d, D], [kv * d, D], [kv * d, D]
    at::Tensor wqkv;        // fused variant: cat of the three, [(H + 2 kv) * d, D]
    at::Tensor wo;          // [D, H * d]
  };
  std::vector<Layer> attention_;  // per layer
};

}  // namespace

std::unique_ptr<CausalLM> MakeLlama(const model::ModelConfig& config, const Weights& weights,
                                    const Numerics& numerics, const Variants& variants) {
  if (config.arch != model::Architecture::kLlama) {
    throw InputError(fmt::format("{}: MakeLlama needs a llama config, got {}", config.source,
                                 model::ArchitectureName(config.arch)));
  }
  return std::make_unique<Llama>(config, weights, numerics, variants);
}

}  // namespace parity::forward
