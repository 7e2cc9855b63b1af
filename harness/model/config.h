// The typed description of a decoder-only transformer checkpoint, read from its config.json with
// the defaults the reference implementations use when a field is absent. Which architecture, and
// what each means, comes from the registry of architecture descriptions (arch_spec.h,
// harness/archs/*.cpp).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace parity::model {

// A handle naming one registered architecture description (ArchSpec, arch_spec.h) by its id:
// "internlm2", "llama", "qwen2", "qwen3", "mistral", "qwen3_moe". A value type, cheap to copy and
// compare. kInternLM2 and kLlama keep the spelling of the two first architectures.
class Architecture {
 public:
  constexpr Architecture() = default;  // internlm2
  constexpr explicit Architecture(const char* id) : id_(id) {}
  const char* id() const { return id_; }
  static const Architecture kInternLM2;
  static const Architecture kLlama;
  friend bool operator==(Architecture a, Architecture b);
  friend bool operator!=(Architecture a, Architecture b) { return !(a == b); }

 private:
  const char* id_ = "internlm2";
};
inline const Architecture Architecture::kInternLM2{"internlm2"};
inline const Architecture Architecture::kLlama{"llama"};
std::ostream& operator<<(std::ostream& out, Architecture arch);
const char* ArchitectureName(Architecture arch);  // the id: "internlm2", "llama", "qwen2"...

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

// How a MoE layer's experts are stored (the table lists each layout's rows; the loader picks the one
// the checkpoint has).
enum class ExpertLayout {
  kPerExpert,       // mlp.experts.{expert}.gate_proj/up_proj/down_proj (hub checkpoints, transformers 4)
  kFused,           // mlp.experts.gate_up_proj [E, 2I, D], down_proj [E, D, I] (transformers 5)
  kFusedTransposed, // mlp.experts.gate_up_proj [E, D, 2I], down_proj [E, I, D] (Qwen3-VL, x @ W)
};

// Where the text model's tensors sit inside a checkpoint that holds more (a VL model): names the
// architecture table writes "model.X" become model_prefix + "X", other global names (the LM head)
// get head_prefix in front. Names under ignored_prefixes (vision tower, projector) are listed and
// ignored. Empty container = a plain text checkpoint.
struct Container {
  std::string model_type;         // the top-level model_type, e.g. "qwen2_5_vl", "internvl_chat"
  std::string text_field;         // where the text config is: "text_config", "llm_config", "" (top level)
  std::string model_prefix = "model.";
  std::string head_prefix;
  std::vector<std::string> ignored_prefixes;  // e.g. {"visual.", "model.visual."}
};

struct ModelConfig {
  Architecture arch = Architecture::kInternLM2;
  std::string model_type;              // as written in config.json (text part), e.g. "qwen2"
  Container container;                 // VL checkpoints: where the text model is
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
                                       // (Qwen2's q/k/v biases are part of its table, not of this flag)
  bool mlp_bias = false;               // Llama `mlp_bias`
  // Sliding-window attention: 0 = none. A layer slides when sliding_layers[layer] (HF layer_types,
  // or use_sliding_window with layer >= max_window_layers for Qwen, every layer for Mistral); then
  // query q reads key k only when q - k < sliding_window (HF's `kv_idx > q_idx - window`).
  int64_t sliding_window = 0;
  std::vector<bool> sliding_layers;    // empty or num_layers entries
  // Mixture of experts (Qwen3-MoE); num_experts 0 for dense models. Layer l is MoE iff
  // num_experts > 0, l not in mlp_only_layers and (l + 1) % decoder_sparse_step == 0.
  int64_t num_experts = 0;             // E (`num_experts`, transformers 5: `num_local_experts`)
  int64_t experts_per_token = 0;       // top-k (`num_experts_per_tok`)
  int64_t moe_intermediate_size = 0;   // I: each expert's SwiGLU width
  bool norm_topk_prob = false;         // renormalise the top-k probabilities to sum 1
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  ExpertLayout expert_layout = ExpertLayout::kPerExpert;
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
  bool IsMoeLayer(int64_t layer) const;
  // The window of `layer`'s attention; 0 = full causal attention.
  int64_t WindowOf(int64_t layer) const;
};

// Reads and validates a config.json (path for messages). The architecture comes from model_type, or
// from architectures when model_type is absent (convert2llama drops model_type). A VL checkpoint's
// config (qwen2_5_vl, qwen3_vl_moe, internvl_chat...) gives its language model, read from
// text_config / llm_config (or the top level), with the container's tensor prefixes.
//
// Defaults for absent fields are those of each family's reference config class, as its ArchSpec
// (harness/archs/*.cpp) records them: e.g. InternLM2Config / LlamaConfig: rms_norm_eps 1e-6,
// rope_theta 10000, num_key_value_heads = heads, max_position_embeddings 2048, bos 1, eos 2,
// tie_word_embeddings false, hidden_act silu; `bias` true for InternLM2, `attention_bias` and
// `mlp_bias` false for Llama; pad 0 for InternLM2, none for Llama; Qwen3's head_dim 128; Mistral's
// sliding_window 4096; Qwen3-MoE's 128 experts, top-8, width 768.
// Unlike the Python classes, the sizes (vocab_size, hidden_size, intermediate_size,
// num_hidden_layers, num_attention_heads) are required: a real checkpoint always states them, and a
// silent 7B-sized default would hide a broken file. Transformers 5's `rope_parameters` and `dtype`
// are read as well as `rope_theta`/`rope_scaling` and `torch_dtype`.
// Throws one InputError listing every problem found (parse and Validate()), each naming the field.
ModelConfig ParseConfig(const nlohmann::json& json, const std::string& source);
// `path` is a config.json or a directory holding one.
ModelConfig LoadConfig(const std::string& path);

// Parameter counts derived from the config alone (every weight of the language model's table; a VL
// checkpoint's vision tower is not counted).
struct ParameterCount {
  int64_t total = 0;
  int64_t active = 0;       // parameters used per token: top-k of E experts; equals total when dense
  int64_t embedding = 0;    // embedding + LM head (once when tied)
  int64_t per_layer = 0;    // layer 0's
};
ParameterCount CountParameters(const ModelConfig& config);

}  // namespace parity::model
