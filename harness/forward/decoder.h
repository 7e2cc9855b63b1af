// The one decoder every architecture runs, built from its description's block features
// (model/arch_spec.h): embedding; per layer h = h + attn(norm(h)), h = h + mlp(norm(h)); final
// norm; LM head; logits cast to FP32. Attention: packed (InternLM2 wqkv, split per KV group) or
// separate q/k/v projections with optional biases, optional q/k RMSNorm over head_dim (Qwen3),
// rotary, KV cache, eager or fused attention with full or sliding-window masks, scores scaled as the
// family's reference code scales them. MLP: dense SwiGLU or a sparse MoE block (Qwen3-MoE). Every op
// rounds as the references do (ops.h).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/Tensor.h>

#include "harness/forward/causal_lm.h"
#include "harness/forward/numerics.h"
#include "harness/forward/ops.h"
#include "harness/forward/placement.h"
#include "harness/forward/rotary.h"
#include "harness/forward/step_pieces.h"
#include "harness/forward/weights.h"
#include "harness/model/arch_spec.h"
#include "harness/model/config.h"

namespace parity::forward {

class Decoder final : public CausalLM, public StepPieces {
 public:
  // Checks the config and the weights (every problem in one InputError), casts the weights to
  // `numerics` and moves each to its device under `placement` (validated by the caller; the
  // embedding and rotary on the first stage's device, the final norm and head on the last's).
  Decoder(const model::ModelConfig& config, const Weights& weights, const Numerics& numerics,
          const Variants& variants, const Placement& placement);

  const model::ModelConfig& config() const override { return config_; }
  const Numerics& numerics() const override { return numerics_; }
  const Variants& variants() const override { return variants_; }
  std::vector<c10::Device> devices() const override;

  at::Tensor Forward(const at::Tensor& tokens, KVCache& cache,
                     const at::Tensor& attention_mask = at::Tensor(),
                     const Observer* observer = nullptr) override;
  StepPieces* step_pieces() override { return this; }

  // StepPieces (step_pieces.h): Forward is these, in order.
  int64_t num_layers() const override { return config_.num_layers; }
  std::string RecordBlocker() const override;
  StepContext Prepare(const at::Tensor& tokens, KVCache& cache,
                      const at::Tensor& attention_mask) override;
  at::Tensor Embed(const at::Tensor& tokens) override;
  at::Tensor PreAttention(int64_t layer, const at::Tensor& hidden, const CosSin& rotary,
                          QueryKeyValue& qkv) override;
  at::Tensor Attend(int64_t layer, const QueryKeyValue& qkv, KVCache& cache,
                    const StepContext& context) override;
  at::Tensor PostAttention(int64_t layer, const at::Tensor& residual, const at::Tensor& attention,
                           const Observer* observer) override;
  at::Tensor Head(const at::Tensor& hidden, const Observer* observer) override;
  void Finish(KVCache& cache, const StepContext& context) override;

 private:
  struct Projection {
    at::Tensor weight;  // [out, in]
    at::Tensor bias;    // [out] or undefined
  };
  // The numerics each module of one layer computes in (precision_policy.h); all equal to the
  // model's in a uniform run.
  struct LayerNumerics {
    Numerics norm, projections, scores, mlp, router, residual;
  };
  struct Layer {
    LayerNumerics n;
    at::Tensor attention_norm, mlp_norm;  // [D]
    Projection qkv;                       // fused_qkv: packed rows or cat(q, k, v) rows
    Projection q, k, v;                   // split: [H * d, D], [kv * d, D], [kv * d, D]
    at::Tensor q_norm, k_norm;            // [d] (Qwen3) or undefined
    Projection o;                         // [D, H * d]
    Projection gate, up, down;            // dense MLP
    at::Tensor router;                    // MoE: [E, D]
    std::vector<ops::Expert> experts;     // MoE, in expert order
    int64_t window = 0;                   // sliding window of this layer, 0 = none
  };

  void LoadAttention(const Weights& weights, int64_t layer, Layer& l) const;
  void LoadMlp(const Weights& weights, int64_t layer, Layer& l) const;
  Projection Load(const Weights& weights, model::Role weight, model::Role bias, int64_t layer,
                  const Numerics& numerics) const;
  // Layer attention's parts. Project: the normed hidden x [B, T, D] in projection numerics ->
  // rotated q, k and v in scores numerics. Output: attention's [B, H, T, d] -> output projection
  // [B, T, D] (before the residual add) in projection numerics. Attend (above) sits between them:
  // the cache write (its layout: causal_lm.h) and attention over the cached + new keys.
  QueryKeyValue Project(const Layer& l, const at::Tensor& x, const CosSin& rotary) const;
  at::Tensor Output(const Layer& l, const at::Tensor& attention) const;
  // The numerics the residual stream is in when it enters layer `layer` (the embedding's for layer
  // 0, else the previous layer's residual numerics; layer == L: what the final norm receives).
  const Numerics& StreamNumerics(int64_t layer) const;
  // Throws InputError when a token id is outside the vocabulary: on the host for CPU ids, with one
  // device synchronisation for device ids unless the cache says they are trusted.
  void CheckTokens(const at::Tensor& tokens, const KVCache& cache) const;
  at::Tensor Mlp(const Layer& l, const at::Tensor& x) const;
  // `first` (the first stage's step context: what every layer reads besides the hidden state)
  // copied to `device`, at a stage boundary. A copy also when the device is the same (stages on
  // one CPU), so that the boundary path always runs.
  static StepContext MoveContext(const StepContext& first, c10::Device device);
  static at::Tensor ToStage(const at::Tensor& x, c10::Device device);

  model::ModelConfig config_;
  const model::ArchSpec* spec_;
  Numerics numerics_;       // the base precision, with the policy
  Numerics embedding_n_, rotary_n_, final_norm_n_, lm_head_n_;  // the global modules' numerics
  Variants variants_;
  Placement placement_;    // stages of layers per device (one stage: everything on one device)
  at::Tensor embedding_;   // [V, D]
  at::Tensor final_norm_;  // [D]
  at::Tensor lm_head_;     // [V, D] (the embedding when tied)
  std::vector<Layer> layers_;
  int64_t window_ = 0;     // the sliding window some layer uses (one per model), 0 = none
  Rotary rotary_;
};

}  // namespace parity::forward
