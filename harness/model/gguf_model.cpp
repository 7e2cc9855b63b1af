#include "harness/model/gguf_model.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/core/error.h"
#include "harness/io/gguf.h"
#include "harness/io/gguf_writer.h"

namespace parity::model {
namespace {

struct GgufName {
  Role role;
  const char* name;  // global: the whole name; per layer: what follows "blk.N."
  bool per_layer;
};

// llama.cpp src/llama-arch.cpp LLM_TENSOR_NAMES (the dense decoder's rows).
const std::vector<GgufName>& Names() {
  static const std::vector<GgufName> names = {
      {Role::kEmbedding, "token_embd.weight", false},
      {Role::kFinalNorm, "output_norm.weight", false},
      {Role::kLmHead, "output.weight", false},
      {Role::kAttentionNorm, "attn_norm.weight", true},
      {Role::kQ, "attn_q.weight", true},
      {Role::kQBias, "attn_q.bias", true},
      {Role::kK, "attn_k.weight", true},
      {Role::kKBias, "attn_k.bias", true},
      {Role::kV, "attn_v.weight", true},
      {Role::kVBias, "attn_v.bias", true},
      {Role::kQNorm, "attn_q_norm.weight", true},
      {Role::kKNorm, "attn_k_norm.weight", true},
      {Role::kO, "attn_output.weight", true},
      {Role::kOBias, "attn_output.bias", true},
      {Role::kMlpNorm, "ffn_norm.weight", true},
      {Role::kGate, "ffn_gate.weight", true},
      {Role::kGateBias, "ffn_gate.bias", true},
      {Role::kUp, "ffn_up.weight", true},
      {Role::kUpBias, "ffn_up.bias", true},
      {Role::kDown, "ffn_down.weight", true},
      {Role::kDownBias, "ffn_down.bias", true},
  };
  return names;
}

// A metadata number as config.json would spell it: FP32 values at their shortest decimal form.
nlohmann::json Number(const io::GgufValue& value) {
  if (value.type == io::GgufType::kF32) {
    return std::strtod(fmt::format("{}", value.value.get<float>()).c_str(), nullptr);
  }
  return value.value;
}

bool IsInteger(const io::GgufValue& value) {
  switch (value.type) {
    case io::GgufType::kU8: case io::GgufType::kI8: case io::GgufType::kU16: case io::GgufType::kI16:
    case io::GgufType::kU32: case io::GgufType::kI32: case io::GgufType::kU64: case io::GgufType::kI64:
      return true;
    default:
      return false;
  }
}

}  // namespace

const ArchSpec* FindArchByGgufName(const std::string& gguf_architecture) {
  for (const ArchSpec* spec : AllArchs()) {
    for (const std::string& name : spec->gguf.architectures) {
      if (name == gguf_architecture) return spec;
    }
  }
  return nullptr;
}

std::string KnownGgufArchitectures() {
  std::vector<std::string> names;
  for (const ArchSpec* spec : AllArchs()) {
    names.insert(names.end(), spec->gguf.architectures.begin(), spec->gguf.architectures.end());
  }
  std::sort(names.begin(), names.end());
  return fmt::format("{}", fmt::join(names, ", "));
}

std::optional<std::string> GgufTensorName(Role role, int64_t layer) {
  for (const GgufName& entry : Names()) {
    if (entry.role != role) continue;
    if (!entry.per_layer) return std::string(entry.name);
    if (layer < 0) return std::nullopt;
    return fmt::format("blk.{}.{}", layer, entry.name);
  }
  return std::nullopt;
}

std::optional<ParsedName> ParseGgufTensorName(const std::string& name) {
  int64_t layer = -1;
  std::string rest = name;
  if (name.rfind("blk.", 0) == 0) {
    const size_t dot = name.find('.', 4);
    if (dot == std::string::npos || dot == 4) return std::nullopt;
    const std::string digits = name.substr(4, dot - 4);
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) {
      return std::nullopt;
    }
    layer = std::stoll(digits);
    rest = name.substr(dot + 1);
  }
  for (const GgufName& entry : Names()) {
    if (entry.per_layer == (layer >= 0) && rest == entry.name) return ParsedName{entry.role, layer};
  }
  return std::nullopt;
}

nlohmann::json GgufConfigJson(const io::GgufFile& file) {
  std::vector<std::string> problems;
  const io::GgufValue* arch_value = file.Find("general.architecture");
  if (arch_value == nullptr || arch_value->type != io::GgufType::kString) {
    throw InputError(fmt::format("{}: metadata 'general.architecture' is missing or not a string",
                                 file.path()));
  }
  const std::string arch = arch_value->value.get<std::string>();
  const ArchSpec* spec = FindArchByGgufName(arch);
  if (spec == nullptr) {
    throw InputError(fmt::format("{}: general.architecture '{}' is not one Parity reads (it reads {})",
                                 file.path(), arch, KnownGgufArchitectures()));
  }
  nlohmann::json config = {{"model_type", spec->model_types.front()},
                           {"architectures", {spec->architectures.front()}}};
  auto integer = [&](const std::string& key, const char* field, bool required) -> const io::GgufValue* {
    const io::GgufValue* value = file.Find(arch + "." + key);
    if (value == nullptr) {
      if (required) problems.push_back(fmt::format("'{}.{}' is missing ({})", arch, key, field));
      return nullptr;
    }
    if (!IsInteger(*value)) {
      problems.push_back(fmt::format("'{}.{}' is {} (expected an integer)", arch, key,
                                     io::GgufTypeName(value->type)));
      return nullptr;
    }
    if (field != nullptr) config[field] = value->value;
    return value;
  };
  auto number = [&](const std::string& key, const char* field) {
    const io::GgufValue* value = file.Find(arch + "." + key);
    if (value == nullptr) return;
    if (!IsInteger(*value) && value->type != io::GgufType::kF32 && value->type != io::GgufType::kF64) {
      problems.push_back(fmt::format("'{}.{}' is {} (expected a number)", arch, key,
                                     io::GgufTypeName(value->type)));
      return;
    }
    config[field] = Number(*value);
  };
  integer("embedding_length", "hidden_size", true);
  integer("block_count", "num_hidden_layers", true);
  integer("feed_forward_length", "intermediate_size", true);
  integer("context_length", "max_position_embeddings", false);
  integer("attention.head_count", "num_attention_heads", true);
  integer("attention.head_count_kv", "num_key_value_heads", false);
  number("attention.layer_norm_rms_epsilon", "rms_norm_eps");
  number("rope.freq_base", "rope_theta");
  const io::GgufValue* key_length = integer("attention.key_length", nullptr, false);
  const io::GgufValue* value_length = integer("attention.value_length", nullptr, false);
  const io::GgufValue* rope_dims = integer("rope.dimension_count", nullptr, false);
  if (!problems.empty()) {
    throw InputError(fmt::format("{}: GGUF metadata for {}: {}", file.path(), arch,
                                 fmt::join(problems, "; ")));
  }
  const int64_t hidden = config["hidden_size"].get<int64_t>();
  const int64_t heads = config["num_attention_heads"].get<int64_t>();
  int64_t head_dim = heads > 0 ? hidden / heads : 0;
  if (key_length != nullptr) {
    head_dim = key_length->value.get<int64_t>();
    config["head_dim"] = head_dim;
  } else if (spec->defaults.head_dim != 0) {
    config["head_dim"] = head_dim;  // the family's HF default is not hidden / heads (Qwen3)
  }
  if (value_length != nullptr && value_length->value.get<int64_t>() != head_dim) {
    problems.push_back(fmt::format("'{}.attention.value_length' {} differs from the key length {} "
                                   "(Parity's attention needs them equal)",
                                   arch, value_length->value.dump(), head_dim));
  }
  if (rope_dims != nullptr && rope_dims->value.get<int64_t>() != head_dim) {
    problems.push_back(fmt::format("'{}.rope.dimension_count' {} differs from the head size {} "
                                   "(partial rotary embeddings are not supported)",
                                   arch, rope_dims->value.dump(), head_dim));
  }
  if (const io::GgufValue* type = file.Find(arch + ".rope.scaling.type")) {
    const std::string name = type->value.is_string() ? type->value.get<std::string>() : "";
    if (name == "linear") {
      const io::GgufValue* factor = file.Find(arch + ".rope.scaling.factor");
      if (factor == nullptr) {
        problems.push_back(fmt::format("'{}.rope.scaling.factor' is missing for linear scaling", arch));
      } else {
        config["rope_scaling"] = {{"type", "linear"}, {"factor", Number(*factor)}};
      }
    } else if (name != "none") {
      problems.push_back(fmt::format("'{}.rope.scaling.type' is {} (Parity reads none and linear)",
                                     arch, type->value.dump()));
    }
  }
  // vocab_size: the key, else the tokenizer's tokens, else the embedding's rows.
  if (const io::GgufValue* vocab = file.Find(arch + ".vocab_size"); vocab != nullptr && IsInteger(*vocab)) {
    config["vocab_size"] = vocab->value;
  } else if (const io::GgufTensorInfo* embedding = file.FindTensor("token_embd.weight")) {
    config["vocab_size"] = embedding->dims.size() == 2 ? embedding->dims[1] : 0;
  } else if (const io::GgufValue* tokens = file.Find("tokenizer.ggml.tokens")) {
    config["vocab_size"] = tokens->value.size();
  }
  config["tie_word_embeddings"] = file.FindTensor("output.weight") == nullptr;
  if (spec->gguf.permuted_qk || std::string(spec->id) == "llama") {
    config["attention_bias"] = file.FindTensor("blk.0.attn_q.bias") != nullptr;
  }
  for (const auto& [key, field] : {std::pair{"tokenizer.ggml.bos_token_id", "bos_token_id"},
                                   std::pair{"tokenizer.ggml.eos_token_id", "eos_token_id"},
                                   std::pair{"tokenizer.ggml.padding_token_id", "pad_token_id"}}) {
    if (const io::GgufValue* id = file.Find(key); id != nullptr && IsInteger(*id)) config[field] = id->value;
  }
  if (!problems.empty()) {
    throw InputError(fmt::format("{}: GGUF metadata for {}: {}", file.path(), arch,
                                 fmt::join(problems, "; ")));
  }
  return config;
}

void WriteGgufHyperParameters(const ModelConfig& config, io::GgufWriter& writer, std::string* note) {
  const ArchSpec& spec = SpecOf(config.arch);
  if (spec.gguf.architectures.empty()) {
    throw InputError(fmt::format("{}: Parity writes GGUF for {} only, not {}", config.source,
                                 KnownGgufArchitectures(), ArchitectureName(config.arch)));
  }
  std::vector<std::string> problems;
  if (config.num_experts > 0) problems.push_back("MoE layers");
  if (config.sliding_window > 0) {
    for (int64_t layer = 0; layer < config.num_layers; ++layer) {
      if (config.WindowOf(layer) > 0) {
        problems.push_back(fmt::format("sliding-window attention (layer {})", layer));
        break;
      }
    }
  }
  if (config.mlp_bias) problems.push_back("mlp_bias");
  if (!problems.empty()) {
    throw InputError(fmt::format("{}: cannot be written as GGUF by Parity: {}", config.source,
                                 fmt::join(problems, ", ")));
  }
  const std::string arch = spec.gguf.architectures.front();
  auto u32 = [](int64_t value) { return static_cast<uint32_t>(value); };
  writer.AddString("general.architecture", arch);
  writer.AddU32(arch + ".vocab_size", u32(config.vocab_size));
  writer.AddU32(arch + ".context_length", u32(config.max_position_embeddings));
  writer.AddU32(arch + ".embedding_length", u32(config.hidden_size));
  writer.AddU32(arch + ".block_count", u32(config.num_layers));
  writer.AddU32(arch + ".feed_forward_length", u32(config.intermediate_size));
  writer.AddU32(arch + ".attention.head_count", u32(config.num_heads));
  writer.AddU32(arch + ".attention.head_count_kv", u32(config.num_kv_heads));
  writer.AddF32(arch + ".rope.freq_base", static_cast<float>(config.rope_theta));
  writer.AddF32(arch + ".attention.layer_norm_rms_epsilon", static_cast<float>(config.rms_norm_eps));
  writer.AddU32(arch + ".rope.dimension_count", u32(config.head_dim));
  if (config.head_dim_explicit || config.head_dim * config.num_heads != config.hidden_size) {
    writer.AddU32(arch + ".attention.key_length", u32(config.head_dim));
    writer.AddU32(arch + ".attention.value_length", u32(config.head_dim));
  }
  if (config.rope_scaling.type == RopeScaling::Type::kLinear) {
    writer.AddString(arch + ".rope.scaling.type", "linear");
    writer.AddF32(arch + ".rope.scaling.factor", static_cast<float>(config.rope_scaling.factor));
  } else if (config.rope_scaling.type == RopeScaling::Type::kDynamic && note != nullptr) {
    *note = fmt::format("rope_scaling dynamic (factor {}) has no GGUF form and is left out, as "
                        "convert_hf_to_gguf.py leaves it out; it changes nothing below "
                        "max_position_embeddings {}",
                        config.rope_scaling.factor, config.max_position_embeddings);
  }
}

}  // namespace parity::model
