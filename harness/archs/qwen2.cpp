// Qwen2 / Qwen2.5 as HF transformers defines them (modeling_qwen2.py): Llama's block with q/k/v
// biases (added by the projections, before rope) and no o bias; small models tie the LM head to the
// embedding; sliding-window attention only with use_sliding_window, on layers >= max_window_layers.
#include "harness/model/arch_spec.h"

namespace parity::model {
namespace {

ArchSpec MakeQwen2() {
  ArchSpec spec;
  spec.id = "qwen2";
  spec.model_types = {"qwen2"};
  spec.architectures = {"Qwen2ForCausalLM"};
  // Qwen2Config: max_position_embeddings 32768, no bos/eos/pad defaults.
  spec.defaults.max_position_embeddings = 32768;
  spec.defaults.bos_token_id = -1;
  spec.defaults.eos_token_ids = {};
  spec.features.window = BlockFeatures::Window::kQwen;
  spec.tensors = {
      {Role::kEmbedding, "model.embed_tokens.weight"},
      {Role::kAttentionNorm, "model.layers.{layer}.input_layernorm.weight"},
      {Role::kQ, "model.layers.{layer}.self_attn.q_proj.weight"},
      {Role::kQBias, "model.layers.{layer}.self_attn.q_proj.bias"},
      {Role::kK, "model.layers.{layer}.self_attn.k_proj.weight"},
      {Role::kKBias, "model.layers.{layer}.self_attn.k_proj.bias"},
      {Role::kV, "model.layers.{layer}.self_attn.v_proj.weight"},
      {Role::kVBias, "model.layers.{layer}.self_attn.v_proj.bias"},
      {Role::kO, "model.layers.{layer}.self_attn.o_proj.weight"},
      {Role::kMlpNorm, "model.layers.{layer}.post_attention_layernorm.weight"},
      {Role::kGate, "model.layers.{layer}.mlp.gate_proj.weight"},
      {Role::kUp, "model.layers.{layer}.mlp.up_proj.weight"},
      {Role::kDown, "model.layers.{layer}.mlp.down_proj.weight"},
      {Role::kFinalNorm, "model.norm.weight"},
      {Role::kLmHead, "lm_head.weight", Presence::kUntiedLmHead},
  };
  spec.gguf = {{"qwen2"}, /*permuted_qk=*/false};
  return spec;
}

}  // namespace
PARITY_REGISTER_ARCH(MakeQwen2);
}  // namespace parity::model
