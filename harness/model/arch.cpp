// The functions that read the architectures' tensor tables (harness/archs/*.cpp): names with
// {layer} / {expert} placeholders, VL container prefixes, expected shapes, and name parsing.
#include "harness/model/arch.h"

#include <cctype>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "harness/model/arch_spec.h"

namespace parity::model {
namespace {

constexpr const char* kLayerPlaceholder = "{layer}";
constexpr const char* kExpertPlaceholder = "{expert}";

// Whether `spec` belongs to layer `layer` of a checkpoint of `config`, and whether it must be there.
bool Included(const TensorSpec& spec, const ModelConfig& config, int64_t layer, bool* required) {
  *required = true;
  const bool moe = layer >= 0 && config.IsMoeLayer(layer);
  switch (spec.presence) {
    case Presence::kAlways: return true;
    case Presence::kUntiedLmHead: *required = !config.tie_word_embeddings; return true;
    case Presence::kAttentionBias: return config.bias;
    case Presence::kMlpBias: return config.mlp_bias && !moe;
    case Presence::kDenseLayer: return !moe;
    case Presence::kMoeLayer: return moe;
    case Presence::kPerExpertMoe: return moe && config.expert_layout == ExpertLayout::kPerExpert;
    case Presence::kFusedMoe: return moe && config.expert_layout != ExpertLayout::kPerExpert;
  }
  return false;
}

// Parses "123" (no sign, no leading zeros unless "0"); -1 when `text` is not such a number.
int64_t ParseIndex(const std::string& text) {
  if (text.empty() || text.size() > 9) return -1;
  if (text.size() > 1 && text[0] == '0') return -1;
  int64_t value = 0;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
    value = value * 10 + (c - '0');
  }
  return value;
}

void Substitute(std::string& name, const char* placeholder, int64_t value) {
  size_t at = name.find(placeholder);
  if (at != std::string::npos) name.replace(at, std::strlen(placeholder), std::to_string(value));
}

// Matches `name` against `pattern`, each placeholder standing for a decimal index.
bool Match(const std::string& pattern, const std::string& name, int64_t* layer, int64_t* expert) {
  size_t p = 0, n = 0;
  *layer = -1;
  *expert = -1;
  while (p < pattern.size()) {
    const bool is_layer = pattern.compare(p, 7, kLayerPlaceholder) == 0;
    const bool is_expert = pattern.compare(p, 8, kExpertPlaceholder) == 0;
    if (!is_layer && !is_expert) {
      if (n >= name.size() || name[n] != pattern[p]) return false;
      ++p;
      ++n;
      continue;
    }
    size_t end = n;
    while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end]))) ++end;
    const int64_t index = ParseIndex(name.substr(n, end - n));
    if (index < 0) return false;
    (is_layer ? *layer : *expert) = index;
    n = end;
    p += is_layer ? 7 : 8;
  }
  return n == name.size();
}

// A table name as the container stores it ("model.X" -> model_prefix + "X", others head_prefix + name).
std::string InContainer(const ModelConfig& config, const std::string& name) {
  const Container& c = config.container;
  if (c.model_type.empty()) return name;
  if (name.rfind("model.", 0) == 0) return c.model_prefix + name.substr(6);
  return c.head_prefix + name;
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
    case Role::kQNorm: return "q_norm";
    case Role::kKNorm: return "k_norm";
    case Role::kO: return "o";
    case Role::kMlpNorm: return "mlp_norm";
    case Role::kGate: return "gate";
    case Role::kUp: return "up";
    case Role::kDown: return "down";
    case Role::kRouter: return "router";
    case Role::kExpertGate: return "expert_gate";
    case Role::kExpertUp: return "expert_up";
    case Role::kExpertDown: return "expert_down";
    case Role::kExpertsGateUp: return "experts_gate_up";
    case Role::kExpertsDown: return "experts_down";
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

const std::vector<TensorSpec>& TensorTable(Architecture arch) { return SpecOf(arch).tensors; }

const TensorSpec* FindSpec(Architecture arch, Role role) {
  for (const auto& spec : TensorTable(arch)) {
    if (spec.role == role) return &spec;
  }
  return nullptr;
}

std::string TensorName(Architecture arch, Role role, int64_t layer, int64_t expert) {
  const TensorSpec* spec = FindSpec(arch, role);
  if (spec == nullptr) {
    throw std::logic_error(fmt::format("architecture {} has no tensor with role '{}'",
                                       ArchitectureName(arch), RoleName(role)));
  }
  std::string name = spec->name_pattern;
  if (spec->per_layer) {
    if (layer < 0) {
      throw std::logic_error(fmt::format("role '{}' is per layer: a layer index is required", RoleName(role)));
    }
    Substitute(name, kLayerPlaceholder, layer);
  }
  if (spec->per_expert) {
    if (expert < 0) {
      throw std::logic_error(fmt::format("role '{}' is per expert: an expert index is required", RoleName(role)));
    }
    Substitute(name, kExpertPlaceholder, expert);
  }
  return name;
}

std::string TensorName(const ModelConfig& config, Role role, int64_t layer, int64_t expert) {
  return InContainer(config, TensorName(config.arch, role, layer, expert));
}

std::vector<int64_t> ExpectedShape(const ModelConfig& config, Role role) {
  const int64_t d_model = config.hidden_size;
  const int64_t q_width = config.num_heads * config.head_dim;      // H * d
  const int64_t kv_width = config.num_kv_heads * config.head_dim;  // kv_heads * d
  // wqkv: kv_heads blocks of (G + 2) * d rows = H * d + 2 * kv_heads * d rows.
  const int64_t qkv_width = q_width + 2 * kv_width;
  const int64_t ffn = config.intermediate_size;
  const int64_t experts = config.num_experts, expert_ffn = config.moe_intermediate_size;
  const bool transposed = config.expert_layout == ExpertLayout::kFusedTransposed;
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
    case Role::kQNorm:
    case Role::kKNorm: return {config.head_dim};
    case Role::kO: return {d_model, q_width};
    case Role::kGate:
    case Role::kUp: return {ffn, d_model};
    case Role::kDown: return {d_model, ffn};
    case Role::kRouter: return {experts, d_model};
    case Role::kExpertGate:
    case Role::kExpertUp: return {expert_ffn, d_model};
    case Role::kExpertDown: return {d_model, expert_ffn};
    case Role::kExpertsGateUp:
      return transposed ? std::vector<int64_t>{experts, d_model, 2 * expert_ffn}
                        : std::vector<int64_t>{experts, 2 * expert_ffn, d_model};
    case Role::kExpertsDown:
      return transposed ? std::vector<int64_t>{experts, expert_ffn, d_model}
                        : std::vector<int64_t>{experts, d_model, expert_ffn};
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
    if (!Included(spec, config, layer, &required)) return;
    const std::vector<int64_t> shape = ExpectedShape(config, spec.role);
    const int64_t experts = spec.per_expert ? config.num_experts : 1;
    for (int64_t expert = 0; expert < experts; ++expert) {
      const int64_t index = spec.per_expert ? expert : -1;
      tensors.push_back({TensorName(config, spec.role, layer, index), spec.role, layer, shape,
                         required, index});
    }
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
    int64_t layer = -1, expert = -1;
    if (Match(spec.name_pattern, name, &layer, &expert)) return ParsedName{spec.role, layer, expert};
  }
  return std::nullopt;
}

std::optional<ParsedName> ParseTensorName(const ModelConfig& config, const std::string& name) {
  const Container& c = config.container;
  if (c.model_type.empty()) return ParseTensorName(config.arch, name);
  std::string bare;
  if (name.rfind(c.model_prefix, 0) == 0) {
    bare = "model." + name.substr(c.model_prefix.size());
  } else if (name.rfind(c.head_prefix, 0) == 0) {
    bare = name.substr(c.head_prefix.size());
    if (bare.rfind("model.", 0) == 0 && c.model_prefix != "model.") return std::nullopt;
  } else {
    return std::nullopt;
  }
  return ParseTensorName(config.arch, bare);
}

bool IsIgnoredPart(const ModelConfig& config, const std::string& name) {
  for (const auto& prefix : config.container.ignored_prefixes) {
    if (name.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

std::vector<Role> CounterpartRoles(Architecture from, Role role, Architecture to) {
  if (FindSpec(from, role) == nullptr) return {};
  auto all_in_to = [&](std::vector<Role> roles) {
    for (Role r : roles) {
      if (FindSpec(to, r) == nullptr) return std::vector<Role>{};
    }
    return roles;
  };
  if (role == Role::kQkv && FindSpec(to, Role::kQkv) == nullptr) {
    return all_in_to({Role::kQ, Role::kK, Role::kV});
  }
  if (role == Role::kQkvBias && FindSpec(to, Role::kQkvBias) == nullptr) {
    return all_in_to({Role::kQBias, Role::kKBias, Role::kVBias});
  }
  if ((role == Role::kQ || role == Role::kK || role == Role::kV) && FindSpec(to, role) == nullptr) {
    return all_in_to({Role::kQkv});
  }
  if ((role == Role::kQBias || role == Role::kKBias || role == Role::kVBias) &&
      FindSpec(to, role) == nullptr) {
    return all_in_to({Role::kQkvBias});
  }
  if (FindSpec(to, role) != nullptr) return {role};
  return {};
}

}  // namespace parity::model
