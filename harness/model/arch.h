// One table per architecture: every tensor's role, its name, its expected shape and whether it is
// required. The forward passes see roles, never Hugging Face strings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/model/config.h"

namespace parity::model {

enum class Role {
  kEmbedding,      // [V, D]
  kFinalNorm,      // [D]
  kLmHead,         // [V, D]
  kAttentionNorm,  // [D] per layer
  kQkv,            // InternLM2 only: [kv_heads * (G + 2) * d, D] packed per KV group
  kQ,              // Llama only: [H * d, D]
  kK,              // Llama only: [kv_heads * d, D]
  kV,              // Llama only: [kv_heads * d, D]
  kO,              // [D, H * d]
  kMlpNorm,        // [D] per layer (ffn_norm / post_attention_layernorm)
  kGate,           // [F, D] (w1 / gate_proj)
  kUp,             // [F, D] (w3 / up_proj)
  kDown,           // [D, F] (w2 / down_proj)
  // Biases exist only when the config asks for them (InternLM2 `bias`, Llama `attention_bias` /
  // `mlp_bias`). Parity's forward passes need none of them (the checkpoints Parity targets have
  // bias false, and convert2llama refuses bias true), but the table lists them so that inspect and
  // diff-weights account for every tensor of a biased checkpoint instead of calling it unexpected.
  kQkvBias,        // InternLM2 only: [kv_heads * (G + 2) * d], packed like wqkv's rows
  kQBias,          // Llama only: [H * d]
  kKBias,          // Llama only: [kv_heads * d]
  kVBias,          // Llama only: [kv_heads * d]
  kOBias,          // [D]
  kGateBias,       // Llama mlp_bias only: [F]
  kUpBias,         // Llama mlp_bias only: [F]
  kDownBias,       // Llama mlp_bias only: [D]
};
const char* RoleName(Role role);  // "embedding", "qkv", "gate"...

// When a row of a table is part of a given checkpoint.
enum class Presence {
  kAlways,         // every checkpoint of the architecture
  kUntiedLmHead,   // required unless tie_word_embeddings; then optional (HF may still store a copy)
  kAttentionBias,  // only when config.bias (InternLM2 `bias`, Llama `attention_bias`)
  kMlpBias,        // only when config.mlp_bias
};

// One row of an architecture's table.
struct TensorSpec {
  Role role;
  bool per_layer;            // name contains "{i}"
  const char* name_pattern;  // e.g. "model.layers.{i}.attention.wqkv.weight"
  bool required;             // false e.g. for the LM head when embeddings are tied
  Presence presence = Presence::kAlways;  // what `required` depends on
};

// The table of `arch`.
const std::vector<TensorSpec>& TensorTable(Architecture arch);
// The row of `role` in `arch`'s table; nullptr when the architecture has no such tensor
// (e.g. kQkv in Llama).
const TensorSpec* FindSpec(Architecture arch, Role role);
// The concrete name of a role (layer ignored for global roles). Throws std::logic_error when the
// architecture has no such role, or for a per-layer role without a layer.
std::string TensorName(Architecture arch, Role role, int64_t layer = -1);
// Expected shape of a role under `config`.
std::vector<int64_t> ExpectedShape(const ModelConfig& config, Role role);
// Every tensor name the checkpoint must hold (required ones) with its expected shape, in table order
// and layer order.
//
// Tensors that may be present are listed too, with required = false (the LM head when embeddings are
// tied). Bias tensors are listed only when the config enables them. Order: the global tensors before
// the layers (embedding), layer 0's tensors, layer 1's..., then the remaining global ones (final
// norm, LM head).
struct ExpectedTensor {
  std::string name;
  Role role;
  int64_t layer;  // -1 for global tensors
  std::vector<int64_t> shape;
  bool required;
};
std::vector<ExpectedTensor> ExpectedTensors(const ModelConfig& config);
// Parses a concrete name back to its role and layer; std::nullopt when the name is not in the table.
// The layer is not checked against any config (callers compare it with num_layers).
struct ParsedName {
  Role role;
  int64_t layer;
};
std::optional<ParsedName> ParseTensorName(Architecture arch, const std::string& name);

// The roles of architecture `to` that hold the same weights as `role` of architecture `from`:
// InternLM2 kQkv -> Llama {kQ, kK, kV} (rows split per KV group, see BRIEF.md), Llama kQ, kK or kV
// -> InternLM2 {kQkv}, likewise for their biases; every other role maps to itself. Empty when `to`
// has no counterpart (e.g. Llama's MLP biases in InternLM2).
std::vector<Role> CounterpartRoles(Architecture from, Role role, Architecture to);

}  // namespace parity::model
