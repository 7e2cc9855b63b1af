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

  // Throws InputError listing every problem, each naming the field: non-positive sizes, heads not
  // dividing hidden (when head_dim is not given), kv heads not dividing heads, unknown rope scaling
  // type, factor <= 1 for a scaling, unsupported activation.
  void Validate() const;

  int64_t group_size() const { return num_heads / num_kv_heads; }  // G: query heads per KV head
};

// Reads and validates a config.json (path for messages). The architecture comes from model_type, or
// from architectures when model_type is absent (convert2llama drops model_type).
ModelConfig ParseConfig(const nlohmann::json& json, const std::string& source);
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
