#include "harness/convert/converted_config.h"

#include <fmt/format.h>

#include "harness/core/error.h"

namespace parity::convert {
namespace {

using nlohmann::json;

// InternLM2Config.__init__ defaults (the remote configuration_internlm2.py shipped with the
// checkpoints) for the fields it owns. num_key_value_heads defaults to num_attention_heads.
const json& InternLM2ConfigDefaults() {
  static const json defaults = {
      {"vocab_size", 103168},        {"hidden_size", 4096},
      {"intermediate_size", 11008},  {"num_hidden_layers", 32},
      {"num_attention_heads", 32},   {"hidden_act", "silu"},
      {"max_position_embeddings", 2048}, {"initializer_range", 0.02},
      {"rms_norm_eps", 1e-6},        {"use_cache", true},
      {"pad_token_id", 0},           {"bos_token_id", 1},
      {"eos_token_id", 2},           {"tie_word_embeddings", false},
      {"bias", true},                {"rope_theta", 10000},
      {"rope_scaling", nullptr},     {"attn_implementation", "eager"},
  };
  return defaults;
}

// LlamaConfig (transformers 4.41) attributes that InternLM2Config does not have, at their defaults.
const json& LlamaOnlyDefaults() {
  static const json defaults = {
      {"attention_dropout", 0.0}, {"mlp_bias", false}, {"pretraining_tp", 1}};
  return defaults;
}

// The keys save_conifg pops before building the LlamaConfig.
const char* const kPoppedKeys[] = {"_name_or_path", "auto_map",     "transformers_version",
                                   "model_type",    "architectures", "tokenizer_class",
                                   "attn_implementation"};

// PretrainedConfig (4.41) defaults: to_diff_dict drops a key whose value equals one of these, unless
// LlamaConfig's own default for it differs (LlamaClassOverrides).
const json& PretrainedConfigDefaults() {
  static const json defaults = {
      {"return_dict", true}, {"output_hidden_states", false}, {"output_attentions", false},
      {"torchscript", false}, {"torch_dtype", nullptr}, {"use_bfloat16", false},
      {"tf_legacy_loss", false}, {"pruned_heads", json::object()}, {"tie_word_embeddings", true},
      {"chunk_size_feed_forward", 0}, {"is_encoder_decoder", false}, {"is_decoder", false},
      {"cross_attention_hidden_size", nullptr}, {"add_cross_attention", false},
      {"tie_encoder_decoder", false}, {"max_length", 20}, {"min_length", 0},
      {"do_sample", false}, {"early_stopping", false}, {"num_beams", 1},
      {"num_beam_groups", 1}, {"diversity_penalty", 0.0}, {"temperature", 1.0}, {"top_k", 50},
      {"top_p", 1.0}, {"typical_p", 1.0}, {"repetition_penalty", 1.0}, {"length_penalty", 1.0},
      {"no_repeat_ngram_size", 0}, {"encoder_no_repeat_ngram_size", 0},
      {"bad_words_ids", nullptr}, {"num_return_sequences", 1}, {"output_scores", false},
      {"return_dict_in_generate", false}, {"forced_bos_token_id", nullptr},
      {"forced_eos_token_id", nullptr}, {"remove_invalid_values", false},
      {"exponential_decay_length_penalty", nullptr}, {"suppress_tokens", nullptr},
      {"begin_suppress_tokens", nullptr}, {"architectures", nullptr},
      {"finetuning_task", nullptr}, {"id2label", {{"0", "LABEL_0"}, {"1", "LABEL_1"}}},
      {"label2id", {{"LABEL_0", 0}, {"LABEL_1", 1}}}, {"tokenizer_class", nullptr},
      {"prefix", nullptr}, {"bos_token_id", nullptr}, {"pad_token_id", nullptr},
      {"eos_token_id", nullptr}, {"sep_token_id", nullptr}, {"decoder_start_token_id", nullptr},
      {"task_specific_params", nullptr}, {"problem_type", nullptr}, {"_name_or_path", ""},
  };
  return defaults;
}

// LlamaConfig() defaults for keys PretrainedConfig also has, where they differ from its defaults.
const json& LlamaClassOverrides() {
  static const json overrides = {
      {"tie_word_embeddings", false}, {"bos_token_id", 1}, {"eos_token_id", 2}};
  return overrides;
}

// to_diff_dict's rule: keep a key unless it equals the PretrainedConfig default and LlamaConfig's
// class default (where it has one) as well.
bool KeptByDiffDict(const std::string& key, const json& value) {
  const json& base = PretrainedConfigDefaults();
  if (key == "transformers_version" || !base.contains(key)) return true;
  if (value != base.at(key)) return true;
  const json& overrides = LlamaClassOverrides();
  return overrides.contains(key) && value != overrides.at(key);
}

}  // namespace

json LlamaConfigFromInternLM2(const json& internlm2_config, const std::string& source) {
  if (!internlm2_config.is_object()) {
    throw InputError(fmt::format("{}: expected a JSON object", source));
  }
  // 1. InternLM2Config(**config).to_dict()
  json d = internlm2_config;
  for (const auto& [key, value] : InternLM2ConfigDefaults().items()) {
    if (!d.contains(key)) d[key] = value;
  }
  if (!d.contains("num_key_value_heads") || d["num_key_value_heads"].is_null()) {
    d["num_key_value_heads"] = d["num_attention_heads"];
  }
  if (!d["bias"].is_boolean() || d["bias"].get<bool>()) {
    throw InputError(fmt::format(
        "{}: field 'bias' is {}{}: convert2llama refuses InternLM2 models with attention biases "
        "(\"Cannot convert InternLM Model with bias to LLaMA.\"); Llama has no packed-QKV bias to "
        "receive them",
        source, d["bias"].dump(),
        internlm2_config.contains("bias") ? "" : " (InternLM2Config's default: the field is absent)"));
  }
  const json declared_version = internlm2_config.value("transformers_version", json());
  // 2. save_conifg's edits.
  for (const char* key : kPoppedKeys) d.erase(key);
  d["attention_bias"] = d["bias"];
  d.erase("bias");
  d["architectures"] = json::array({"LlamaForCausalLM"});
  // 3. LlamaConfig(**d).save_pretrained(): to_diff_dict() of the Llama config.
  for (const auto& [key, value] : LlamaOnlyDefaults().items()) {
    if (!d.contains(key)) d[key] = value;
  }
  d["model_type"] = "llama";
  d["transformers_version"] =
      declared_version.is_string() ? declared_version : json(kEmulatedTransformersVersion);
  json result = json::object();
  for (const auto& [key, value] : d.items()) {
    if (KeptByDiffDict(key, value)) result[key] = value;
  }
  return result;
}

json LlamaTokenizerConfigFrom(const json& tokenizer_config) {
  json result = tokenizer_config.is_object() ? tokenizer_config : json::object();
  result.erase("auto_map");
  result.erase("name_or_path");
  result["tokenizer_class"] = "LlamaTokenizer";
  return result;
}

}  // namespace parity::convert
