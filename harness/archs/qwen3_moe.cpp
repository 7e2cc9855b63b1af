// Qwen3-MoE as HF transformers defines it (modeling_qwen3_moe.py): Qwen3's attention (q/k norm,
// explicit head_dim) with a mixture-of-experts MLP on the layers the config says. Router: a linear
// layer without bias in the model dtype, softmax over all experts in FP32, top-k of the
// probabilities, divided by their sum when norm_topk_prob; each chosen expert a SwiGLU of width
// moe_intermediate_size, outputs weighted and summed in expert-index order (index_add_).
// Experts are stored one by one (hub checkpoints) or fused (transformers 5, Qwen3-VL).
#include <fmt/format.h>

#include "harness/model/arch_spec.h"
#include "harness/model/config_reader.h"

namespace parity::model {
namespace {

ArchSpec MakeQwen3Moe() {
  ArchSpec spec;
  spec.id = "qwen3_moe";
  spec.model_types = {"qwen3_moe"};
  spec.architectures = {"Qwen3MoeForCausalLM"};
  spec.defaults.max_position_embeddings = 32768;
  spec.defaults.bos_token_id = -1;
  spec.defaults.eos_token_ids = {};
  spec.features.qk_norm = true;
  spec.features.moe = true;
  spec.read_fields = [](ConfigReader& r, ModelConfig& c) {
    c.bias = r.Bool("attention_bias", false);
    // transformers 5 saves the expert count as num_local_experts.
    c.num_experts = r.Int(r.Has("num_experts") ? "num_experts" : "num_local_experts", false, 128);
    c.experts_per_token = r.Int("num_experts_per_tok", false, 8);
    c.moe_intermediate_size = r.Int("moe_intermediate_size", false, 768);
    c.norm_topk_prob = r.Bool("norm_topk_prob", false);
    c.decoder_sparse_step = r.Int("decoder_sparse_step", false, 1);
    c.mlp_only_layers = r.IntList("mlp_only_layers", {});
    if (r.Bool("use_sliding_window", false)) {
      r.Add("use_sliding_window", "true is not supported for qwen3_moe (Parity models its attention "
                                  "without a window)");
    }
  };
  spec.tensors = {
      {Role::kEmbedding, "model.embed_tokens.weight"},
      {Role::kAttentionNorm, "model.layers.{layer}.input_layernorm.weight"},
      {Role::kQ, "model.layers.{layer}.self_attn.q_proj.weight"},
      {Role::kQBias, "model.layers.{layer}.self_attn.q_proj.bias", Presence::kAttentionBias},
      {Role::kK, "model.layers.{layer}.self_attn.k_proj.weight"},
      {Role::kKBias, "model.layers.{layer}.self_attn.k_proj.bias", Presence::kAttentionBias},
      {Role::kV, "model.layers.{layer}.self_attn.v_proj.weight"},
      {Role::kVBias, "model.layers.{layer}.self_attn.v_proj.bias", Presence::kAttentionBias},
      {Role::kQNorm, "model.layers.{layer}.self_attn.q_norm.weight"},
      {Role::kKNorm, "model.layers.{layer}.self_attn.k_norm.weight"},
      {Role::kO, "model.layers.{layer}.self_attn.o_proj.weight"},
      {Role::kOBias, "model.layers.{layer}.self_attn.o_proj.bias", Presence::kAttentionBias},
      {Role::kMlpNorm, "model.layers.{layer}.post_attention_layernorm.weight"},
      {Role::kGate, "model.layers.{layer}.mlp.gate_proj.weight", Presence::kDenseLayer},
      {Role::kUp, "model.layers.{layer}.mlp.up_proj.weight", Presence::kDenseLayer},
      {Role::kDown, "model.layers.{layer}.mlp.down_proj.weight", Presence::kDenseLayer},
      {Role::kRouter, "model.layers.{layer}.mlp.gate.weight", Presence::kMoeLayer},
      {Role::kExpertGate, "model.layers.{layer}.mlp.experts.{expert}.gate_proj.weight", Presence::kPerExpertMoe},
      {Role::kExpertUp, "model.layers.{layer}.mlp.experts.{expert}.up_proj.weight", Presence::kPerExpertMoe},
      {Role::kExpertDown, "model.layers.{layer}.mlp.experts.{expert}.down_proj.weight", Presence::kPerExpertMoe},
      {Role::kExpertsGateUp, "model.layers.{layer}.mlp.experts.gate_up_proj", Presence::kFusedMoe},
      {Role::kExpertsDown, "model.layers.{layer}.mlp.experts.down_proj", Presence::kFusedMoe},
      {Role::kFinalNorm, "model.norm.weight"},
      {Role::kLmHead, "lm_head.weight", Presence::kUntiedLmHead},
  };
  return spec;
}

}  // namespace
PARITY_REGISTER_ARCH(MakeQwen3Moe);
}  // namespace parity::model
