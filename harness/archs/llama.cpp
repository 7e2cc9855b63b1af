// Llama as HF transformers defines it (modeling_llama.py), which is also what InternLM's
// convert2llama writes: separate q/k/v projections, optional attention and MLP biases.
#include "harness/model/arch_spec.h"
#include "harness/model/config_reader.h"

namespace parity::model {
namespace {

ArchSpec MakeLlama() {
  ArchSpec spec;
  spec.id = "llama";
  spec.model_types = {"llama"};
  spec.architectures = {"LlamaForCausalLM"};
  spec.read_fields = [](ConfigReader& r, ModelConfig& c) {
    c.bias = r.Bool("attention_bias", false);
    c.mlp_bias = r.Bool("mlp_bias", false);
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
      {Role::kO, "model.layers.{layer}.self_attn.o_proj.weight"},
      {Role::kOBias, "model.layers.{layer}.self_attn.o_proj.bias", Presence::kAttentionBias},
      {Role::kMlpNorm, "model.layers.{layer}.post_attention_layernorm.weight"},
      {Role::kGate, "model.layers.{layer}.mlp.gate_proj.weight"},
      {Role::kGateBias, "model.layers.{layer}.mlp.gate_proj.bias", Presence::kMlpBias},
      {Role::kUp, "model.layers.{layer}.mlp.up_proj.weight"},
      {Role::kUpBias, "model.layers.{layer}.mlp.up_proj.bias", Presence::kMlpBias},
      {Role::kDown, "model.layers.{layer}.mlp.down_proj.weight"},
      {Role::kDownBias, "model.layers.{layer}.mlp.down_proj.bias", Presence::kMlpBias},
      {Role::kFinalNorm, "model.norm.weight"},
      {Role::kLmHead, "lm_head.weight", Presence::kUntiedLmHead},
  };
  // llama.cpp's internlm2 GGUF splits wqkv into attn_q/k/v and permutes q and k as for llama
  // (InternLM2Model.modify_tensors): it reads as a Llama model.
  spec.gguf = {{"llama", "internlm2"}, /*permuted_qk=*/true};
  spec.converted_from = "internlm2";  // InternLM's convert2llama
  return spec;
}

}  // namespace
PARITY_REGISTER_ARCH(MakeLlama);
}  // namespace parity::model
