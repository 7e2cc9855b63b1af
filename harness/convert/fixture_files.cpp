#include "harness/convert/fixture_files.h"

#include <string>

#include "harness/convert/converted_config.h"

namespace parity::convert {
namespace {

using nlohmann::json;

constexpr const char* kImStart = "<|im_start|>";
constexpr const char* kImEnd = "<|im_end|>";

// An AddedToken as transformers serialises it (without the `special` flag in special_tokens_map).
json AddedToken(const char* content, bool with_special_flag) {
  json token = {{"content", content},
                {"lstrip", false},
                {"normalized", false},
                {"rstrip", false},
                {"single_word", false}};
  if (with_special_flag) token["special"] = true;
  return token;
}

}  // namespace

json FixtureConfigJson(const FixtureOptions& options) {
  return {
      {"architectures", {"InternLM2ForCausalLM"}},
      {"attn_implementation", "eager"},
      {"auto_map",
       {{"AutoConfig", "configuration_internlm2.InternLM2Config"},
        {"AutoModel", "modeling_internlm2.InternLM2ForCausalLM"},
        {"AutoModelForCausalLM", "modeling_internlm2.InternLM2ForCausalLM"}}},
      {"bias", false},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"hidden_act", "silu"},
      {"hidden_size", options.hidden_size},
      {"initializer_range", options.init_std},
      {"intermediate_size", options.intermediate_size},
      {"max_position_embeddings", options.max_position_embeddings},
      {"model_type", "internlm2"},
      {"num_attention_heads", options.num_heads},
      {"num_hidden_layers", options.num_layers},
      {"num_key_value_heads", options.num_kv_heads},
      {"pad_token_id", 2},
      {"rms_norm_eps", 1e-05},
      {"rope_scaling", {{"factor", 2.0}, {"type", "dynamic"}}},
      {"rope_theta", 1000000},
      {"tie_word_embeddings", false},
      {"torch_dtype", options.dtype},
      {"transformers_version", kEmulatedTransformersVersion},
      {"use_cache", true},
      {"vocab_size", options.vocab_size},
  };
}

json FixtureGenerationConfigJson(int64_t im_end_id) {
  return {{"bos_token_id", 1},
          {"eos_token_id", {2, im_end_id}},
          {"pad_token_id", 2},
          {"transformers_version", kEmulatedTransformersVersion}};
}

json FixtureTokenizerConfigJson(int64_t im_start_id, int64_t im_end_id) {
  json added = json::object();
  added["0"] = AddedToken("<unk>", true);
  added["1"] = AddedToken("<s>", true);
  added["2"] = AddedToken("</s>", true);
  added[std::to_string(im_start_id)] = AddedToken(kImStart, true);
  added[std::to_string(im_end_id)] = AddedToken(kImEnd, true);
  // model_max_length is left out: the real files hold int(1e30), which is also transformers' default
  // when the key is absent.
  return {
      {"add_bos_token", true},
      {"add_eos_token", false},
      {"added_tokens_decoder", added},
      {"additional_special_tokens", {kImStart, kImEnd}},
      {"auto_map",
       {{"AutoTokenizer",
         {"tokenization_internlm2.InternLM2Tokenizer",
          "tokenization_internlm2_fast.InternLM2TokenizerFast"}}}},
      {"bos_token", "<s>"},
      {"chat_template",
       "{{ bos_token }}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
       "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
       "{{ '<|im_start|>assistant\n' }}{% endif %}"},
      {"clean_up_tokenization_spaces", false},
      {"decode_with_prefix_space", false},
      {"eos_token", "</s>"},
      {"pad_token", "</s>"},
      {"sp_model_kwargs", nullptr},
      {"tokenizer_class", "InternLM2Tokenizer"},
      {"unk_token", "<unk>"},
  };
}

json FixtureSpecialTokensMapJson() {
  return {{"additional_special_tokens", {kImStart, kImEnd}},
          {"bos_token", AddedToken("<s>", false)},
          {"eos_token", AddedToken("</s>", false)},
          {"pad_token", AddedToken("</s>", false)},
          {"unk_token", AddedToken("<unk>", false)}};
}

}  // namespace parity::convert
