// InternLM2 as its remote code (modeling_internlm2.py) defines it: packed wqkv per KV group, scores
// divided by sqrt(d), rotary tables precomputed in the run dtype, LM head over every position.
#include "harness/model/arch_spec.h"
#include "harness/model/config_reader.h"

namespace parity::model {
namespace {

ArchSpec MakeInternLM2() {
  ArchSpec spec;
  spec.id = "internlm2";
  spec.model_types = {"internlm2"};
  spec.architectures = {"InternLM2ForCausalLM"};
  // InternLM2Config: bias true, pad 0; head_dim is always hidden / heads.
  spec.defaults.attention_bias = true;
  spec.defaults.pad_token_id = 0;
  spec.features.packed_qkv = true;
  spec.features.honours_head_dim = false;
  spec.features.score_scale = ScoreScale::kDivideBySqrt;
  spec.read_fields = [](ConfigReader& r, ModelConfig& c) { c.bias = r.Bool("bias", true); };
  spec.tensors = {
      {Role::kEmbedding, "model.tok_embeddings.weight"},
      {Role::kAttentionNorm, "model.layers.{layer}.attention_norm.weight"},
      {Role::kQkv, "model.layers.{layer}.attention.wqkv.weight"},
      {Role::kQkvBias, "model.layers.{layer}.attention.wqkv.bias", Presence::kAttentionBias},
      {Role::kO, "model.layers.{layer}.attention.wo.weight"},
      {Role::kOBias, "model.layers.{layer}.attention.wo.bias", Presence::kAttentionBias},
      {Role::kMlpNorm, "model.layers.{layer}.ffn_norm.weight"},
      {Role::kGate, "model.layers.{layer}.feed_forward.w1.weight"},
      {Role::kUp, "model.layers.{layer}.feed_forward.w3.weight"},
      {Role::kDown, "model.layers.{layer}.feed_forward.w2.weight"},
      {Role::kFinalNorm, "model.norm.weight"},
      {Role::kLmHead, "output.weight", Presence::kUntiedLmHead},
  };
  spec.reference = {"InternLM2 remote code", /*fused_qkv=*/true, /*sdpa=*/false,
                    /*lm_head_all_positions=*/true, /*rotary_precomputed=*/true};
  spec.field_aliases = {{"attention_bias", "bias"}};
  return spec;
}

}  // namespace
PARITY_REGISTER_ARCH(MakeInternLM2);
}  // namespace parity::model
