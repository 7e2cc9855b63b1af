// Qwen3 as HF transformers defines it (modeling_qwen3.py): RMSNorm over head_dim on q and k after
// the head split and before rope (q_norm, k_norm), an explicit head_dim (128 by default, not
// hidden / heads), attention_bias false by default; sliding window as in Qwen2.
#include "harness/model/arch_spec.h"
#include "harness/model/config_reader.h"

namespace parity::model {
namespace {

ArchSpec MakeQwen3() {
  ArchSpec spec;
  spec.id = "qwen3";
  spec.model_types = {"qwen3"};
  spec.architectures = {"Qwen3ForCausalLM"};
  // Qwen3Config: head_dim 128, max_position_embeddings 32768, no bos/eos/pad defaults.
  spec.defaults.head_dim = 128;
  spec.defaults.max_position_embeddings = 32768;
  spec.defaults.bos_token_id = -1;
  spec.defaults.eos_token_ids = {};
  spec.features.qk_norm = true;
  spec.features.window = BlockFeatures::Window::kQwen;
  spec.read_fields = [](ConfigReader& r, ModelConfig& c) { c.bias = r.Bool("attention_bias", false); };
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
      {Role::kGate, "model.layers.{layer}.mlp.gate_proj.weight"},
      {Role::kUp, "model.layers.{layer}.mlp.up_proj.weight"},
      {Role::kDown, "model.layers.{layer}.mlp.down_proj.weight"},
      {Role::kFinalNorm, "model.norm.weight"},
      {Role::kLmHead, "lm_head.weight", Presence::kUntiedLmHead},
  };
  spec.gguf = {{"qwen3"}, /*permuted_qk=*/false};
  return spec;
}

}  // namespace
PARITY_REGISTER_ARCH(MakeQwen3);
}  // namespace parity::model
