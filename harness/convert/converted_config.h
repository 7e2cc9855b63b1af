// The non-weight files convert2llama writes: config.json (its save_conifg) and the tokenizer files
// (LlamaTokenizer.from_pretrained(SRC).save_pretrained(DST) with auto_map removed).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace parity::convert {

// The transformers version whose behaviour is emulated when the source config does not declare one:
// the version InternLM2 checkpoints were saved with (their config.json says 4.41.0).
inline constexpr const char* kEmulatedTransformersVersion = "4.41.0";

// config.json of the converted checkpoint, as the script writes it when run under the transformers
// version SRC declares (4.41.x for the published InternLM2 checkpoints):
//  1. InternLM2Config(**src) fills its defaults for absent fields (bias true, rope_theta 10000,
//     rms_norm_eps 1e-6, pad 0, num_key_value_heads = heads, ...).
//  2. save_conifg pops _name_or_path, auto_map, transformers_version, model_type, architectures,
//     tokenizer_class, attn_implementation; attention_bias = bias; architectures ["LlamaForCausalLM"].
//  3. LlamaConfig(**d).save_pretrained writes to_diff_dict(): model_type "llama",
//     transformers_version, LlamaConfig attributes InternLM2 lacks at their defaults
//     (attention_dropout 0.0, mlp_bias false, pretraining_tp 1), minus keys equal to a
//     PretrainedConfig default (unless LlamaConfig's own default differs), keys sorted.
// Throws InputError naming `source` and the field 'bias' when bias is true or absent (the script's
// `assert not config.bias`).
nlohmann::json LlamaConfigFromInternLM2(const nlohmann::json& internlm2_config,
                                        const std::string& source);

// tokenizer_config.json as LlamaTokenizer.save_pretrained writes it back: the source's keys without
// auto_map (popped by the script) and name_or_path, tokenizer_class "LlamaTokenizer".
nlohmann::json LlamaTokenizerConfigFrom(const nlohmann::json& tokenizer_config);

}  // namespace parity::convert
