// Tensor roles and the functions that read an architecture's tensor table (the tables themselves live
// in harness/archs/, one file per architecture, see arch_spec.h). The forward pass sees roles, never
// Hugging Face strings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/model/config.h"

namespace parity::model {

// Shapes: V vocab, D hidden, H query heads, kv KV heads, d head_dim, G = H / kv, F intermediate,
// E experts, I moe_intermediate_size.
enum class Role {
  kEmbedding,      // [V, D]
  kFinalNorm,      // [D]
  kLmHead,         // [V, D]
  kAttentionNorm,  // [D] per layer
  kQkv,            // packed (InternLM2): [kv * (G + 2) * d, D], per KV group
  kQ,              // [H * d, D]
  kK,              // [kv * d, D]
  kV,              // [kv * d, D]
  kQNorm,          // [d] RMSNorm over each query head (Qwen3)
  kKNorm,          // [d] RMSNorm over each key head (Qwen3)
  kO,              // [D, H * d]
  kMlpNorm,        // [D] per layer (ffn_norm / post_attention_layernorm)
  kGate,           // [F, D] (w1 / gate_proj) of a dense MLP layer
  kUp,             // [F, D] (w3 / up_proj)
  kDown,           // [D, F] (w2 / down_proj)
  kRouter,         // [E, D] MoE router (mlp.gate), no bias
  kExpertGate,     // [I, D] per expert ({expert} in the name)
  kExpertUp,       // [I, D] per expert
  kExpertDown,     // [D, I] per expert
  kExpertsGateUp,  // all experts fused: [E, 2I, D] (transformers 5) or [E, D, 2I] (Qwen3-VL,
                   // used as x @ W); gate rows/columns first, then up
  kExpertsDown,    // all experts fused: [E, D, I] (transformers 5) or [E, I, D] (Qwen3-VL)
  // Biases exist where the architecture or the config says (InternLM2 `bias`, Llama
  // `attention_bias` / `mlp_bias`, Qwen2's q/k/v always).
  kQkvBias,        // packed: [kv * (G + 2) * d], like wqkv's rows
  kQBias,          // [H * d]
  kKBias,          // [kv * d]
  kVBias,          // [kv * d]
  kOBias,          // [D]
  kGateBias,       // [F]
  kUpBias,         // [F]
  kDownBias,       // [D]
};
const char* RoleName(Role role);  // "embedding", "qkv", "gate"...

// When a row of a table is part of a given checkpoint.
enum class Presence {
  kAlways,         // every checkpoint of the architecture (on every layer for per-layer rows)
  kUntiedLmHead,   // required unless tie_word_embeddings; then optional (HF may still store a copy)
  kAttentionBias,  // only when config.bias (InternLM2 `bias`, Llama `attention_bias`)
  kMlpBias,        // only when config.mlp_bias (dense layers)
  kDenseLayer,     // only on dense-MLP layers (all layers of a dense model)
  kMoeLayer,       // only on MoE layers, any expert layout (the router)
  kPerExpertMoe,   // only on MoE layers whose experts are stored one by one
  kFusedMoe,       // only on MoE layers whose experts are stored fused
};

// One row of an architecture's table: the name pattern holds "{layer}" for per-layer rows and
// "{expert}" for per-expert rows.
struct TensorSpec {
  TensorSpec(Role role, const char* name_pattern, Presence presence = Presence::kAlways);
  Role role;
  const char* name_pattern;  // e.g. "model.layers.{layer}.attention.wqkv.weight"
  Presence presence;
  bool per_layer;            // name contains "{layer}"
  bool per_expert;           // name contains "{expert}"
  bool required;             // presence == kAlways: required in every checkpoint of the architecture
};

// The table of `arch` (its ArchSpec's tensors).
const std::vector<TensorSpec>& TensorTable(Architecture arch);
// The row of `role` in `arch`'s table; nullptr when the architecture has no such tensor
// (e.g. kQkv in Llama).
const TensorSpec* FindSpec(Architecture arch, Role role);
// The concrete name of a role as the bare architecture names it (no VL container prefix); layer and
// expert ignored for global roles. Throws std::logic_error when the architecture has no such role,
// or for a per-layer (per-expert) role without a layer (expert).
std::string TensorName(Architecture arch, Role role, int64_t layer = -1, int64_t expert = -1);
// The same inside the checkpoint `config` describes (VL containers move the text model's names,
// e.g. "model.layers.0..." -> "model.language_model.layers.0...").
std::string TensorName(const ModelConfig& config, Role role, int64_t layer = -1, int64_t expert = -1);
// Expected shape of a role under `config`.
std::vector<int64_t> ExpectedShape(const ModelConfig& config, Role role);
// Every tensor name the checkpoint must hold (required ones) with its expected shape, in table order
// and layer order.
//
// Tensors that may be present are listed too, with required = false (the LM head when embeddings are
// tied). Bias tensors are listed only when the config enables them, MLP tensors per layer as the
// layer is dense or MoE. Order: the global tensors before the layers (embedding), layer 0's tensors
// (experts in index order), layer 1's..., then the remaining global ones (final norm, LM head).
struct ExpectedTensor {
  std::string name;
  Role role;
  int64_t layer;  // -1 for global tensors
  std::vector<int64_t> shape;
  bool required;
  int64_t expert = -1;  // expert index for per-expert rows
};
std::vector<ExpectedTensor> ExpectedTensors(const ModelConfig& config);
// Parses a concrete name back to its role and layer (and expert); std::nullopt when the name is not
// in the table. The layer is not checked against any config (callers compare it with num_layers).
struct ParsedName {
  Role role;
  int64_t layer;
  int64_t expert = -1;
};
std::optional<ParsedName> ParseTensorName(Architecture arch, const std::string& name);
// The same inside the checkpoint `config` describes (container prefixes applied).
std::optional<ParsedName> ParseTensorName(const ModelConfig& config, const std::string& name);
// True when `name` belongs to a part of a VL checkpoint that Parity lists and ignores (vision tower,
// projector), per the config's container.
bool IsIgnoredPart(const ModelConfig& config, const std::string& name);

// The roles of architecture `to` that hold the same weights as `role` of architecture `from`:
// a packed kQkv -> {kQ, kK, kV} where `to` stores them apart (rows split per KV group, see BRIEF.md),
// kQ, kK or kV -> {kQkv} where `to` packs them, likewise for their biases; every other role maps to
// itself. Empty when `to` has no counterpart (e.g. Llama's MLP biases in InternLM2).
std::vector<Role> CounterpartRoles(Architecture from, Role role, Architecture to);

}  // namespace parity::model
