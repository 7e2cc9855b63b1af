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
};
const char* RoleName(Role role);  // "embedding", "qkv", "gate"...

// One row of an architecture's table.
struct TensorSpec {
  Role role;
  bool per_layer;            // name contains "{i}"
  const char* name_pattern;  // e.g. "model.layers.{i}.attention.wqkv.weight"
  bool required;             // false e.g. for the LM head when embeddings are tied
};

// The table of `arch`.
const std::vector<TensorSpec>& TensorTable(Architecture arch);
// The concrete name of a role (layer ignored for global roles).
std::string TensorName(Architecture arch, Role role, int64_t layer = -1);
// Expected shape of a role under `config`.
std::vector<int64_t> ExpectedShape(const ModelConfig& config, Role role);
// Every tensor name the checkpoint must hold (required ones) with its expected shape, in table order
// and layer order.
struct ExpectedTensor {
  std::string name;
  Role role;
  int64_t layer;  // -1 for global tensors
  std::vector<int64_t> shape;
  bool required;
};
std::vector<ExpectedTensor> ExpectedTensors(const ModelConfig& config);
// Parses a concrete name back to its role and layer; std::nullopt when the name is not in the table.
struct ParsedName {
  Role role;
  int64_t layer;
};
std::optional<ParsedName> ParseTensorName(Architecture arch, const std::string& name);

}  // namespace parity::model
