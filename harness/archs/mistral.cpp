// Mistral as HF transformers defines it (modeling_mistral.py): Llama's block without biases, an
// explicit head_dim when config.json gives one, and sliding-window attention on every layer when
// sliding_window is not null (4096 by default).
#include "harness/model/arch_spec.h"

namespace parity::model {
namespace {

ArchSpec MakeMistral() {
  ArchSpec spec;
  spec.id = "mistral";
  spec.model_types = {"mistral"};
  spec.architectures = {"MistralForCausalLM"};
  spec.defaults.max_position_embeddings = 4096 * 32;  // MistralConfig
  spec.features.window = BlockFeatures::Window::kEveryLayer;
  spec.tensors = {
      {Role::kEmbedding, "model.embed_tokens.weight"},
      {Role::kAttentionNorm, "model.layers.{layer}.input_layernorm.weight"},
      {Role::kQ, "model.layers.{layer}.self_attn.q_proj.weight"},
      {Role::kK, "model.layers.{layer}.self_attn.k_proj.weight"},
      {Role::kV, "model.layers.{layer}.self_attn.v_proj.weight"},
      {Role::kO, "model.layers.{layer}.self_attn.o_proj.weight"},
      {Role::kMlpNorm, "model.layers.{layer}.post_attention_layernorm.weight"},
      {Role::kGate, "model.layers.{layer}.mlp.gate_proj.weight"},
      {Role::kUp, "model.layers.{layer}.mlp.up_proj.weight"},
      {Role::kDown, "model.layers.{layer}.mlp.down_proj.weight"},
      {Role::kFinalNorm, "model.norm.weight"},
      {Role::kLmHead, "lm_head.weight", Presence::kUntiedLmHead},
  };
  return spec;
}

}  // namespace
PARITY_REGISTER_ARCH(MakeMistral);
}  // namespace parity::model
