// The InternLM2 and Llama tensor tables, and the functions that read them.
#include "harness/model/arch.h"

#include <cctype>
#include <stdexcept>

#include <fmt/format.h>

namespace parity::model {
namespace {

constexpr const char* kLayerPlaceholder = "{i}";

// InternLM2 as its remote code names the parameters (modeling_internlm2.py). Embedding first, then
// the per-layer block, then the final norm and the LM head: ExpectedTensors keeps this order.
const std::vector<TensorSpec>& InternLM2Table() {
  static const std::vector<TensorSpec> table = {
      {Role::kEmbedding, false, "model.tok_embeddings.weight", true},
      {Role::kAttentionNorm, true, "model.layers.{i}.attention_norm.weight", true},
      {Role::kQkv, true, "model.layers.{i}.attention.wqkv.weight", true},
      {Role::kQkvBias, true, "model.layers.{i}.attention.wqkv.bias", false, Presence::kAttentionBias},
      {Role::kO, true, "model.layers.{i}.attention.wo.weight", true},
      {Role::kOBias, true, "model.layers.{i}.attention.wo.bias", false, Presence::kAttentionBias},
      {Role::kMlpNorm, true, "model.layers.{i}.ffn_norm.weight", true},
      {Role::kGate, true, "model.layers.{i}.feed_forward.w1.weight", true},
      {Role::kUp, true, "model.layers.{i}.feed_forward.w3.weight", true},
      {Role::kDown, true, "model.layers.{i}.feed_forward.w2.weight", true},
      {Role::kFinalNorm, false, "model.norm.weight", true},
      {Role::kLmHead, false, "output.weight", false, Presence::kUntiedLmHead},
  };
  return table;
}

// Llama as HF transformers names it (modeling_llama.py), which is what convert2llama writes.
const std::vector<TensorSpec>& LlamaTable() {
  static const std::vector<TensorSpec> table = {
      {Role::kEmbedding, false, "model.embed_tokens.weight", true},
      {Role::kAttentionNorm, true, "model.layers.{i}.input_layernorm.weight", true},
      {Role::kQ, true, "model.layers.{i}.self_attn.q_proj.weight", true},
      {Role::kQBias, true, "model.layers.{i}.self_attn.q_proj.bias", false, Presence::kAttentionBias},
      {Role::kK, true, "model.layers.{i}.self_attn.k_proj.weight", true},
      {Role::kKBias, true, "model.layers.{i}.self_attn.k_proj.bias", false, Presence::kAttentionBias},
      {Role::kV, true, "model.layers.{i}.self_attn.v_proj.weight", true},
      {Role::kVBias, true, "model.layers.{i}.self_attn.v_proj.bias", false, Presence::kAttentionBias},
      {Role::kO, true, "model.layers.{i}.self_attn.o_proj.weight", true},
      {Role::kOBias, true, "model.layers.{i}.self_attn.o_proj.bias", false, Presence::kAttentionBias},
      {Role::kMlpNorm, true, "model.layers.{i}.post_attention_layernorm.weight", true},
      {Role::kGate, true, "model.layers.{i}.mlp.gate_proj.weight", true},
      {Role::kGateBias, true, "model.layers.{i}.mlp.gate_proj.bias", false, Presence::kMlpBias},
      {Role::kUp, true, "model.layers.{i}.mlp.up_proj.weight", true},
      {Role::kUpBias, true, "model.layers.{i}.mlp.up_proj.bias", false, Presence::kMlpBias},
      {Role::kDown, true, "model.layers.{i}.mlp.down_proj.weight", true},
      {Role::kDownBias, true, "model.layers.{i}.mlp.down_proj.bias", false, Presence::kMlpBias},
      {Role::kFinalNorm, false, "model.norm.weight", true},
      {Role::kLmHead, false, "lm_head.weight", false, Presence::kUntiedLmHead},
  };
  return table;
}

// Whether `spec` belongs to a checkpoint of `config`, and whether it must be there.
bool Included(const TensorSpec& spec, const ModelConfig& config, bool* required) {
  switch (spec.presence) {
    case Presence::kAlways:
      *required = true;
      return true;
    case Presence::kUntiedLmHead:
      *required = !config.tie_word_embeddings;
      return true;
    case Presence::kAttentionBias:
      *required = true;
      return config.bias;
    case Presence::kMlpBias:
      *required = true;
      return config.mlp_bias;
  }
  return false;
}

// Parses "123" (no sign, no leading zeros unless "0"); -1 when `text` is not such a number.
int64_t ParseLayerIndex(const std::string& text) {
  if (text.empty() || text.size() > 9) return -1;
  if (text.size() > 1 && text[0] == '0') return -1;
  int64_t value = 0;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
    value = value * 10 + (c - '0');
  }
  return value;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kEmbedding: return "embedding";
    case Role::kFinalNorm: return "final_norm";
    case Role::kLmHead: return "lm_head";
    case Role::kAttentionNorm: return "attention_norm";
    case Role::kQkv: return "qkv";
    case Role::kQ: return "q";
    case Role::kK: return "k";
    case Role::kV: return "v";
    case Role::kO: return "o";
    case Role::kMlpNorm: return "mlp_norm";
    case Role::kGate: return "gate";
    case Role::kUp: return "up";
    case Role::kDown: return "down";
    case Role::kQkvBias: return "qkv_bias";
    case Role::kQBias: return "q_bias";
    case Role::kKBias: return "k_bias";
    case Role::kVBias: return "v_bias";
    case Role::kOBias: return "o_bias";
    case Role::kGateBias: return "gate_bias";
    case Role::kUpBias: return "up_bias";
    case Role::kDownBias: return "down_bias";
  }
  return "unknown";
}

const std::vector<TensorSpec>& TensorTable(Architecture arch) {
  return arch == Architecture::kInternLM2 ? InternLM2Table() : LlamaTable();
}

const TensorSpec* FindSpec(Architecture arch, Role role) {
  for (const auto& spec : TensorTable(arch)) {
    if (spec.role == role) return &spec;
  }
  return nullptr;
}

std::string TensorName(Architecture arch, Role role, int64_t layer) {
  const TensorSpec* spec = FindSpec(arch, role);
  if (spec == nullptr) {
    throw std::logic_error(fmt::format("architecture {} has no tensor with role '{}'",
                                       ArchitectureName(arch), RoleName(role)));
  }
  std::string name = spec->name_pattern;
  if (!spec->per_layer) return name;
  if (layer < 0) {
    throw std::logic_error(fmt::format("role '{}' is per layer: a layer index is required", RoleName(role)));
  }
  name.replace(name.find(kLayerPlaceholder), 3, std::to_string(layer));
  return name;
}

std::vector<int64_t> ExpectedShape(const ModelConfig& config, Role role) {
  const int64_t d_model = config.hidden_size;
  const int64_t q_width = config.num_heads * config.head_dim;      // H * d
  const int64_t kv_width = config.num_kv_heads * config.head_dim;  // kv_heads * d
  // wqkv: kv_heads blocks of (G + 2) * d rows = H * d + 2 * kv_heads * d rows.
  const int64_t qkv_width = q_width + 2 * kv_width;
  const int64_t ffn = config.intermediate_size;
  switch (role) {
    case Role::kEmbedding:
    case Role::kLmHead: return {config.vocab_size, d_model};
    case Role::kFinalNorm:
    case Role::kAttentionNorm:
    case Role::kMlpNorm: return {d_model};
    case Role::kQkv: return {qkv_width, d_model};
    case Role::kQ: return {q_width, d_model};
    case Role::kK:
    case Role::kV: return {kv_width, d_model};
    case Role::kO: return {d_model, q_width};
    case Role::kGate:
    case Role::kUp: return {ffn, d_model};
    case Role::kDown: return {d_model, ffn};
    case Role::kQkvBias: return {qkv_width};
    case Role::kQBias: return {q_width};
    case Role::kKBias:
    case Role::kVBias: return {kv_width};
    case Role::kOBias: return {d_model};
    case Role::kGateBias:
    case Role::kUpBias: return {ffn};
    case Role::kDownBias: return {d_model};
  }
  return {};
}

std::vector<ExpectedTensor> ExpectedTensors(const ModelConfig& config) {
  const auto& table = TensorTable(config.arch);
  std::vector<ExpectedTensor> tensors;
  auto add = [&](const TensorSpec& spec, int64_t layer) {
    bool required = false;
    if (!Included(spec, config, &required)) return;
    tensors.push_back({TensorName(config.arch, spec.role, layer), spec.role, layer,
                       ExpectedShape(config, spec.role), required});
  };
  // The tables keep their per-layer rows in one contiguous block between global rows.
  size_t first_layer_row = 0;
  while (first_layer_row < table.size() && !table[first_layer_row].per_layer) ++first_layer_row;
  for (size_t row = 0; row < first_layer_row; ++row) add(table[row], -1);
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    for (const auto& spec : table) {
      if (spec.per_layer) add(spec, layer);
    }
  }
  for (size_t row = first_layer_row; row < table.size(); ++row) {
    if (!table[row].per_layer) add(table[row], -1);
  }
  return tensors;
}

std::optional<ParsedName> ParseTensorName(Architecture arch, const std::string& name) {
  for (const auto& spec : TensorTable(arch)) {
    std::string pattern = spec.name_pattern;
    if (!spec.per_layer) {
      if (name == pattern) return ParsedName{spec.role, -1};
      continue;
    }
    size_t at = pattern.find(kLayerPlaceholder);
    std::string prefix = pattern.substr(0, at);
    std::string suffix = pattern.substr(at + 3);
    if (name.size() <= prefix.size() + suffix.size()) continue;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    int64_t layer =
        ParseLayerIndex(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()));
    if (layer >= 0) return ParsedName{spec.role, layer};
  }
  return std::nullopt;
}

std::vector<Role> CounterpartRoles(Architecture from, Role role, Architecture to) {
  if (FindSpec(from, role) == nullptr) return {};
  if (from == to) return {role};
  if (from == Architecture::kInternLM2) {
    if (role == Role::kQkv) return {Role::kQ, Role::kK, Role::kV};
    if (role == Role::kQkvBias) return {Role::kQBias, Role::kKBias, Role::kVBias};
  } else {
    if (role == Role::kQ || role == Role::kK || role == Role::kV) return {Role::kQkv};
    if (role == Role::kQBias || role == Role::kKBias || role == Role::kVBias) return {Role::kQkvBias};
  }
  if (FindSpec(to, role) != nullptr) return {role};
  return {};
}

}  // namespace parity::model
