// The typed description of a decoder-only transformer checkpoint (InternLM2 or Llama), read from its
// config.json with the defaults the reference implementations use when a field is absent.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace parity::model {

enum class Architecture {
  kInternLM2,  // model_type "internlm2": packed wqkv, InternLM2 tensor names
  kLlama,      // model_type "llama" or architectures ["LlamaForCausalLM"]
};
const char* ArchitectureName(Architecture arch);  // "internlm2", "llama"

// rope_scaling; type kNone when the field is null or absent.
struct RopeScaling {
  enum class Type { kNone, kLinear, kDynamic };
  Type type = Type::kNone;
  double factor = 1.0;  // > 1 for linear and dynamic
};
const char* RopeScalingTypeName(RopeScaling::Type type);  // "none", "linear", "dynamic"

// One thing wrong with a config: the JSON field at fault and what is wrong with it.
struct ConfigProblem {
  std::string field;    // e.g. "num_key_value_heads", "rope_scaling.factor"
  std::string message;  // e.g. "3 does not divide num_attention_heads 32"
};

struct ModelConfig {
  Architecture arch = Architecture::kInternLM2;
  std::string source;                  // the config.json path, for error messages
  int64_t vocab_size = 0;              // rows of the embedding and of the LM head
  int64_t hidden_size = 0;             // model width D
  int64_t num_layers = 0;              // num_hidden_layers
  int64_t num_heads = 0;               // query heads H; head_dim = D / H unless head_dim is given
  int64_t num_kv_heads = 0;            // KV heads; defaults to num_heads; H % kv_heads == 0
  int64_t head_dim = 0;                // per-head width d
  int64_t intermediate_size = 0;       // MLP width F: gate/up are [F, D], down is [D, F]
  int64_t max_position_embeddings = 0; // L_max; dynamic NTK scaling starts above it
  double rms_norm_eps = 1e-6;          // InternLM2 default when absent
  double rope_theta = 10000.0;         // rotary base
  RopeScaling rope_scaling;
  bool bias = false;                   // InternLM2 `bias` / Llama `attention_bias`; default true for InternLM2
  bool mlp_bias = false;               // Llama `mlp_bias`
  bool tie_word_embeddings = false;    // LM head shares the embedding matrix
  int64_t bos_token_id = 1;
  std::vector<int64_t> eos_token_ids;  // config's eos_token_id (int or list)
  int64_t pad_token_id = -1;           // -1 when absent
  std::string torch_dtype;             // "bfloat16", "float16", "float32" or "" when absent
  std::string hidden_act = "silu";
  // True when config.json gave head_dim (Llama only: HF Llama honours it, while InternLM2's remote
  // code always uses hidden_size / num_attention_heads). When false, head_dim must equal D / H.
  bool head_dim_explicit = false;

  // Throws InputError listing every problem, each naming the field: non-positive sizes, heads not
  // dividing hidden (when head_dim is not given), kv heads not dividing heads, unknown rope scaling
  // type, factor <= 1 for a scaling, unsupported activation.
  void Validate() const;
  // The problems Validate() reports, one per field at fault (empty when the config is valid).
  std::vector<ConfigProblem> Problems() const;

  int64_t group_size() const { return num_heads / num_kv_heads; }  // G: query heads per KV head
};

// Reads and validates a config.json (path for messages). The architecture comes from model_type, or
// from architectures when model_type is absent (convert2llama drops model_type).
//
// Defaults for absent fields are those of the reference config classes (InternLM2Config of the remote
// code, HF LlamaConfig): rms_norm_eps 1e-6, rope_theta 10000, num_key_value_heads = heads,
// max_position_embeddings 2048, bos 1, eos 2, tie_word_embeddings false, hidden_act silu; `bias` true
// for InternLM2, `attention_bias` and `mlp_bias` false for Llama; pad 0 for InternLM2, none for Llama.
// Unlike the Python classes, the sizes (vocab_size, hidden_size, intermediate_size,
// num_hidden_layers, num_attention_heads) are required: a real checkpoint always states them, and a
// silent 7B-sized default would hide a broken file. Transformers 5's `rope_parameters` and `dtype`
// are read as well as `rope_theta`/`rope_scaling` and `torch_dtype`.
// Throws one InputError listing every problem found (parse and Validate()), each naming the field.
ModelConfig ParseConfig(const nlohmann::json& json, const std::string& source);
// `path` is a config.json or a directory holding one.
ModelConfig LoadConfig(const std::string& path);

// Parameter counts derived from the config alone (every weight the architecture has).
struct ParameterCount {
  int64_t total = 0;
  int64_t active = 0;       // parameters used per token; equals total for dense models
  int64_t embedding = 0;    // embedding + LM head (once when tied)
  int64_t per_layer = 0;
};
ParameterCount CountParameters(const ModelConfig& config);

}  // namespace parity::model
