// One description per architecture: everything Parity knows about a model family in one value,
// defined in its own file under harness/archs/ and registered at start-up. The config parser, the
// tensor tables, the shared decoder (forward/decoder.cpp), parameter counts, config diff and weight
// diff all read these descriptions; none of them names an architecture.
//
// Adding an architecture = one file in harness/archs/ that fills an ArchSpec and registers it
// (PARITY_REGISTER_ARCH), plus tests. A VL checkpoint's language model is described by a
// ContainerSpec (same folder), which points at one of the text architectures.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "harness/model/arch.h"
#include "harness/model/config.h"

namespace parity::model {

class ConfigReader;  // config.cpp's field reader (arch-specific fields go through it)

// How attention scores are scaled by the head width in the reference code.
enum class ScoreScale {
  kDivideBySqrt,       // scores / math.sqrt(d) (InternLM2 remote code)
  kMultiplyByInverse,  // scores * d ** -0.5 (HF eager attention)
};

// What the shared decoder builds for a layer.
struct BlockFeatures {
  bool packed_qkv = false;     // one [kv * (G + 2) * d, D] matrix per KV group (InternLM2 wqkv)
  bool qk_norm = false;        // RMSNorm over head_dim on q and k after the head split, before rope
  bool moe = false;            // MoE MLP on the layers the config says (else dense SwiGLU)
  ScoreScale score_scale = ScoreScale::kMultiplyByInverse;
  // What the sliding-window fields mean (the decoder itself reads ModelConfig::sliding_layers).
  enum class Window {
    kNone,             // no sliding window in this family
    kQwen,             // use_sliding_window + max_window_layers (or layer_types)
    kEveryLayer,       // sliding_window, when not null, on every layer (Mistral)
  } window = Window::kNone;
  // head_dim: honoured when config.json gives it (HF), or derived as hidden / heads and a disagreeing
  // value rejected (InternLM2's remote code ignores it).
  bool honours_head_dim = true;
};

// Reference defaults of the HF config class, used where config.json lacks the field.
struct ConfigDefaults {
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  int64_t max_position_embeddings = 2048;
  int64_t head_dim = 0;                 // 0: hidden_size / num_attention_heads
  bool attention_bias = false;          // `bias` / `attention_bias` when the family reads it
  bool tie_word_embeddings = false;
  int64_t bos_token_id = 1;             // -1: none
  std::vector<int64_t> eos_token_ids = {2};
  int64_t pad_token_id = -1;            // -1: none
};

// The implementation choices of the family's reference stack (forward::ReferenceVariants maps them
// onto Variants).
struct ReferenceStack {
  const char* name = "HF transformers";  // e.g. "InternLM2 remote code"
  bool fused_qkv = false;                // one GEMM for q, k, v
  bool sdpa = true;                      // HF picks SDPA when attn_implementation is unset
  bool lm_head_all_positions = false;    // LM head over every position (old remote code)
  bool rotary_precomputed = false;       // cos/sin tables precomputed in the run dtype
};

// A config field that this family spells differently from the canonical (HF Llama) name.
struct FieldAlias {
  const char* canonical;  // e.g. "attention_bias"
  const char* name;       // e.g. "bias" (InternLM2)
};

// How llama.cpp's convert_hf_to_gguf.py stores the family in a GGUF file. The tensor names are
// llama.cpp's, shared by every family (model/gguf_model.h); what differs is the architecture name
// and whether attn_q / attn_k rows are interleaved for llama.cpp's rope ("normal" rope type: llama,
// internlm2) or kept in HF's order (NeoX rope type: qwen2, qwen3).
struct GgufNaming {
  // general.architecture values read as this family; the first is what `convert hf-to-gguf`
  // writes. Empty: Parity neither reads nor writes this family as GGUF.
  std::vector<std::string> architectures;
  bool permuted_qk = false;  // LlamaModel.permute applied to q_proj (n_head) and k_proj (n_kv_head)
};

struct ArchSpec {
  const char* id;                               // Architecture id, e.g. "qwen2"
  std::vector<std::string> model_types;         // HF model_type values, e.g. {"qwen2"}
  std::vector<std::string> architectures;       // HF class names, e.g. {"Qwen2ForCausalLM"}
  ConfigDefaults defaults;
  BlockFeatures features;
  // Family-specific fields (bias flags, MoE sizes) read after the common ones; may be empty.
  std::function<void(ConfigReader&, ModelConfig&)> read_fields;
  // Embedding first, then the per-layer rows in one block, then the final norm and the LM head.
  std::vector<TensorSpec> tensors;
  ReferenceStack reference;
  std::vector<FieldAlias> field_aliases;
  GgufNaming gguf;
  const char* converted_from = nullptr;         // id of the family converted into this one by a
                                                // known tool (llama: "internlm2" by convert2llama):
                                                // config fields that tool drops are expected drops
};

// A VL checkpoint holding one of the text architectures: where its config and tensors are.
struct ContainerSpec {
  std::vector<std::string> model_types;  // e.g. {"qwen2_5_vl", "internvla_n1"}
  std::string text_field;                // "text_config", "llm_config" or "" (text fields at top level)
  const char* text_arch = nullptr;       // arch id when the nested config has no model_type of its own
  std::string model_prefix;              // replaces "model." of the text names
  std::string head_prefix;               // put before the other global names (the LM head)
  std::vector<std::string> ignored_prefixes;
  ExpertLayout expert_layout = ExpertLayout::kPerExpert;
};

// The registry. Registration happens during static initialisation (PARITY_REGISTER_ARCH); lookups
// after main() starts.
void RegisterArch(ArchSpec spec);
void RegisterContainer(ContainerSpec spec);
// Every registered architecture, sorted by id.
std::vector<const ArchSpec*> AllArchs();
// The description of `arch`; throws std::logic_error for an id nobody registered.
const ArchSpec& SpecOf(Architecture arch);
// Lookups by HF names; nullptr when unknown.
const ArchSpec* FindArchByModelType(const std::string& model_type);
const ArchSpec* FindArchByClassName(const std::string& class_name);
const ContainerSpec* FindContainer(const std::string& model_type);
// "internlm2, llama, mistral, ..." for messages.
std::string KnownModelTypes();

struct ArchRegistrar {
  explicit ArchRegistrar(ArchSpec (*make)()) { RegisterArch(make()); }
};
struct ContainerRegistrar {
  explicit ContainerRegistrar(ContainerSpec (*make)()) { RegisterContainer(make()); }
};

}  // namespace parity::model

// In an archs/*.cpp file: `PARITY_REGISTER_ARCH(MakeQwen2)` where `ArchSpec MakeQwen2()` builds it.
#define PARITY_REGISTER_ARCH(make) \
  static const ::parity::model::ArchRegistrar parity_arch_registrar_##make(make)
#define PARITY_REGISTER_CONTAINER(make) \
  static const ::parity::model::ContainerRegistrar parity_container_registrar_##make(make)
