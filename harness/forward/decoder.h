// The decoder skeleton both references share (InternLM2's remote code is HF Llama's with renamed
// modules): embedding; per layer h = h + attn(norm(h)), h = h + mlp(norm(h)); final norm; LM head;
// logits cast to FP32. Residual adds, RMSNorm and the MLP round as the references do (ops.h). The
// attention block, where the two code paths differ, is each model's own (internlm2.cpp, llama.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/Tensor.h>

#include "harness/forward/causal_lm.h"
#include "harness/forward/numerics.h"
#include "harness/forward/ops.h"
#include "harness/forward/rotary.h"
#include "harness/forward/weights.h"
#include "harness/model/config.h"

namespace parity::forward {

class Decoder : public CausalLM {
 public:
  const model::ModelConfig& config() const override { return config_; }
  const Numerics& numerics() const override { return numerics_; }
  const Variants& variants() const override { return variants_; }

  at::Tensor Forward(const at::Tensor& tokens, KVCache& cache,
                     const at::Tensor& attention_mask = at::Tensor(),
                     const Observer* observer = nullptr) override;

 protected:
  // Checks the config and the weights (every problem in one InputError), casts the shared weights
  // to `numerics` and moves them to its device.
  Decoder(const model::ModelConfig& config, const Weights& weights, const Numerics& numerics,
          const Variants& variants);

  // Layer `layer`'s attention block on the normed hidden x [B, T, D]: projections, rotary with
  // `rotary`, appending this step's keys and values to the cache slots, attention, output
  // projection. Returns [B, T, D] (before the residual add).
  virtual at::Tensor Attention(int64_t layer, const at::Tensor& x, at::Tensor& cached_keys,
                               at::Tensor& cached_values, const ops::AttentionInputs& inputs,
                               const CosSin& rotary) = 0;

  // Runs the chosen attention kernel on q [B, H, T, d] and k, v [B, kv, S, d]: eager with the
  // score scaling variants().divide_scores_by_sqrt picks, or the fused kernel when
  // variants().sdpa_attention. Returns [B, T, H * d].
  at::Tensor AttendAndMerge(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const ops::AttentionInputs& inputs) const;

  model::ModelConfig config_;
  Numerics numerics_;
  Variants variants_;

 private:
  struct LayerWeights {
    at::Tensor attention_norm, mlp_norm, gate, up, down;
  };
  at::Tensor embedding_;   // [V, D]
  at::Tensor final_norm_;  // [D]
  at::Tensor lm_head_;     // [V, D] (the embedding when tied)
  std::vector<LayerWeights> layers_;
  Rotary rotary_;
};

}  // namespace parity::forward
