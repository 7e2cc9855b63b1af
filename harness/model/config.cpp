// config.json -> ModelConfig, with the reference defaults, and the checks that say what is wrong.
#include "harness/model/config.h"

#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "harness/core/error.h"
#include "harness/io/checkpoint.h"

namespace parity::model {
namespace {

using nlohmann::json;

// A short rendering of a JSON value for messages.
std::string Show(const json& value) {
  std::string text = value.dump();
  return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

// Reads typed fields out of one JSON object, collecting every problem instead of stopping at the
// first one, so that a user fixing a config sees everything at once.
class FieldReader {
 public:
  explicit FieldReader(const json& object) : object_(object) {}

  // The field's value, or nullptr when absent or null (HF writes null for "unset").
  const json* Find(const std::string& field) const {
    auto it = object_.find(field);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  int64_t Int(const std::string& field, bool required, int64_t fallback) {
    const json* value = Find(field);
    if (value == nullptr) {
      if (required) Add(field, "required but absent");
      return fallback;
    }
    if (!value->is_number_integer()) {
      Add(field, fmt::format("expected an integer, got {}", Show(*value)));
      return fallback;
    }
    return value->get<int64_t>();
  }

  double Number(const std::string& field, double fallback) {
    const json* value = Find(field);
    if (value == nullptr) return fallback;
    if (!value->is_number()) {
      Add(field, fmt::format("expected a number, got {}", Show(*value)));
      return fallback;
    }
    return value->get<double>();
  }

  bool Bool(const std::string& field, bool fallback) {
    const json* value = Find(field);
    if (value == nullptr) return fallback;
    if (!value->is_boolean()) {
      Add(field, fmt::format("expected true or false, got {}", Show(*value)));
      return fallback;
    }
    return value->get<bool>();
  }

  std::string String(const std::string& field, const std::string& fallback) {
    const json* value = Find(field);
    if (value == nullptr) return fallback;
    if (!value->is_string()) {
      Add(field, fmt::format("expected a string, got {}", Show(*value)));
      return fallback;
    }
    return value->get<std::string>();
  }

  void Add(const std::string& field, const std::string& message) {
    problems_.push_back({field, message});
  }
  const std::vector<ConfigProblem>& problems() const { return problems_; }

 private:
  const json& object_;
  std::vector<ConfigProblem> problems_;
};

// One line per problem, each naming the config file and the field.
[[noreturn]] void ThrowProblems(const std::string& source, const std::vector<ConfigProblem>& problems) {
  std::string where = source.empty() ? std::string("model config") : source;
  std::string message = fmt::format("invalid model config {} ({} problem{}):", where,
                                    problems.size(), problems.size() == 1 ? "" : "s");
  for (const auto& problem : problems) {
    message += fmt::format("\n  {}: field '{}': {}", where, problem.field, problem.message);
  }
  throw InputError(message);
}

// model_type decides; architectures only when model_type is absent (as convert2llama may leave it).
bool DetectArchitecture(FieldReader& reader, Architecture* arch) {
  std::string model_type = reader.String("model_type", "");
  if (model_type == "internlm2") {
    *arch = Architecture::kInternLM2;
    return true;
  }
  if (model_type == "llama") {
    *arch = Architecture::kLlama;
    return true;
  }
  if (!model_type.empty()) {
    reader.Add("model_type",
               fmt::format("unsupported model type '{}' (Parity reads internlm2 and llama)", model_type));
    return false;
  }
  const json* architectures = reader.Find("architectures");
  if (architectures != nullptr && architectures->is_array()) {
    for (const auto& name : *architectures) {
      if (name == "InternLM2ForCausalLM") {
        *arch = Architecture::kInternLM2;
        return true;
      }
      if (name == "LlamaForCausalLM") {
        *arch = Architecture::kLlama;
        return true;
      }
    }
  }
  reader.Add("model_type",
             fmt::format("absent, and architectures {} names neither InternLM2ForCausalLM nor "
                         "LlamaForCausalLM",
                         architectures == nullptr ? std::string("is absent") : Show(*architectures)));
  return false;
}

// rope_scaling (transformers 4) or the scaling part of rope_parameters (transformers 5):
// null, {"type" | "rope_type": "linear" | "dynamic", "factor": f}. "default" means no scaling.
RopeScaling ParseRopeScaling(FieldReader& reader, const std::string& field, const json& value) {
  RopeScaling scaling;
  if (!value.is_object()) {
    reader.Add(field, fmt::format("expected an object or null, got {}", Show(value)));
    return scaling;
  }
  const char* type_key = value.contains("rope_type") ? "rope_type" : "type";
  auto type_it = value.find(type_key);
  if (type_it == value.end() || !type_it->is_string()) {
    reader.Add(field + ".type", "required: a string, \"linear\" or \"dynamic\"");
    return scaling;
  }
  std::string type = type_it->get<std::string>();
  if (type == "default") return scaling;
  if (type == "linear") {
    scaling.type = RopeScaling::Type::kLinear;
  } else if (type == "dynamic") {
    scaling.type = RopeScaling::Type::kDynamic;
  } else {
    reader.Add(field + "." + type_key,
               fmt::format("unsupported rope scaling type '{}' (Parity supports linear and dynamic)",
                           type));
    return scaling;
  }
  auto factor_it = value.find("factor");
  if (factor_it == value.end() || !factor_it->is_number()) {
    reader.Add(field + ".factor",
               fmt::format("required for {} scaling: a number > 1, got {}", type,
                           factor_it == value.end() ? std::string("nothing") : Show(*factor_it)));
    scaling.type = RopeScaling::Type::kNone;
    return scaling;
  }
  scaling.factor = factor_it->get<double>();
  return scaling;
}

void ParseRope(FieldReader& reader, ModelConfig& config) {
  config.rope_theta = reader.Number("rope_theta", 10000.0);
  if (const json* scaling = reader.Find("rope_scaling")) {
    config.rope_scaling = ParseRopeScaling(reader, "rope_scaling", *scaling);
  }
  // Transformers 5 moves both into rope_parameters; when present it is what HF uses.
  if (const json* parameters = reader.Find("rope_parameters")) {
    if (!parameters->is_object()) {
      reader.Add("rope_parameters", fmt::format("expected an object, got {}", Show(*parameters)));
      return;
    }
    auto theta = parameters->find("rope_theta");
    if (theta != parameters->end()) {
      if (theta->is_number()) {
        config.rope_theta = theta->get<double>();
      } else {
        reader.Add("rope_parameters.rope_theta", fmt::format("expected a number, got {}", Show(*theta)));
      }
    }
    if (parameters->contains("rope_type") || parameters->contains("type")) {
      config.rope_scaling = ParseRopeScaling(reader, "rope_parameters", *parameters);
    }
  }
}

std::vector<int64_t> ParseEosIds(FieldReader& reader, bool present) {
  const json* value = reader.Find("eos_token_id");
  if (value == nullptr) {
    if (present) return {};  // explicit null: no EOS token
    return {2};              // both reference classes default to 2
  }
  if (value->is_number_integer()) return {value->get<int64_t>()};
  std::vector<int64_t> ids;
  if (value->is_array()) {
    for (const auto& id : *value) {
      if (!id.is_number_integer()) {
        reader.Add("eos_token_id", fmt::format("expected an integer or a list of integers, got {}",
                                               Show(*value)));
        return {};
      }
      ids.push_back(id.get<int64_t>());
    }
    if (!ids.empty()) return ids;
  }
  reader.Add("eos_token_id",
             fmt::format("expected an integer or a non-empty list of integers, got {}", Show(*value)));
  return {};
}

void ParseSizes(FieldReader& reader, ModelConfig& config) {
  config.vocab_size = reader.Int("vocab_size", true, 0);
  config.hidden_size = reader.Int("hidden_size", true, 0);
  config.num_layers = reader.Int("num_hidden_layers", true, 0);
  config.num_heads = reader.Int("num_attention_heads", true, 0);
  config.num_kv_heads = reader.Int("num_key_value_heads", false, config.num_heads);
  config.intermediate_size = reader.Int("intermediate_size", true, 0);
  config.max_position_embeddings = reader.Int("max_position_embeddings", false, 2048);
  int64_t derived_head_dim = config.num_heads > 0 ? config.hidden_size / config.num_heads : 0;
  config.head_dim = derived_head_dim;
  if (reader.Find("head_dim") == nullptr) return;
  int64_t given = reader.Int("head_dim", false, derived_head_dim);
  if (config.arch == Architecture::kLlama) {
    config.head_dim = given;
    config.head_dim_explicit = true;
  } else if (config.num_heads > 0 && config.hidden_size % config.num_heads == 0 &&
             given != derived_head_dim) {
    // InternLM2's remote code ignores head_dim; a disagreeing value would change the network as soon
    // as the config is read by HF Llama after conversion.
    reader.Add("head_dim", fmt::format("{} disagrees with hidden_size / num_attention_heads = {}, "
                                       "which InternLM2's code uses",
                                       given, derived_head_dim));
  }
}

}  // namespace

const char* ArchitectureName(Architecture arch) {
  switch (arch) {
    case Architecture::kInternLM2:
      return "internlm2";
    case Architecture::kLlama:
      return "llama";
  }
  return "unknown";
}

const char* RopeScalingTypeName(RopeScaling::Type type) {
  switch (type) {
    case RopeScaling::Type::kNone:
      return "none";
    case RopeScaling::Type::kLinear:
      return "linear";
    case RopeScaling::Type::kDynamic:
      return "dynamic";
  }
  return "unknown";
}

std::vector<ConfigProblem> ModelConfig::Problems() const {
  std::vector<ConfigProblem> problems;
  auto positive = [&](const char* field, int64_t value) {
    if (value <= 0) problems.push_back({field, fmt::format("must be positive, got {}", value)});
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_layers);
  positive("num_attention_heads", num_heads);
  positive("num_key_value_heads", num_kv_heads);
  positive("intermediate_size", intermediate_size);
  positive("max_position_embeddings", max_position_embeddings);
  if (head_dim_explicit) positive("head_dim", head_dim);

  if (!head_dim_explicit && hidden_size > 0 && num_heads > 0) {
    if (hidden_size % num_heads != 0) {
      problems.push_back({"num_attention_heads",
                          fmt::format("{} does not divide hidden_size {} (head_dim = hidden_size / "
                                      "num_attention_heads must be an integer)",
                                      num_heads, hidden_size)});
    } else if (head_dim != hidden_size / num_heads) {
      problems.push_back({"head_dim", fmt::format("{} disagrees with hidden_size / num_attention_heads = {}",
                                                  head_dim, hidden_size / num_heads)});
    }
  }
  if (num_heads > 0 && num_kv_heads > 0 && num_heads % num_kv_heads != 0) {
    problems.push_back({"num_key_value_heads",
                        fmt::format("{} does not divide num_attention_heads {} (each KV head serves "
                                    "a whole group of query heads)",
                                    num_kv_heads, num_heads)});
  }
  if (!(rms_norm_eps > 0)) {
    problems.push_back({"rms_norm_eps", fmt::format("must be positive, got {}", rms_norm_eps)});
  }
  if (!(rope_theta > 0)) {
    problems.push_back({"rope_theta", fmt::format("must be positive, got {}", rope_theta)});
  }
  if (rope_scaling.type != RopeScaling::Type::kNone && !(rope_scaling.factor > 1.0)) {
    problems.push_back({"rope_scaling.factor",
                        fmt::format("must be > 1 for {} scaling, got {}",
                                    RopeScalingTypeName(rope_scaling.type), rope_scaling.factor)});
  }
  if (hidden_act != "silu") {
    problems.push_back({"hidden_act", fmt::format("unsupported activation '{}' (both architectures' "
                                                  "MLP is down(silu(gate x) * up x))",
                                                  hidden_act)});
  }
  auto check_id = [&](const char* field, int64_t id) {
    if (vocab_size > 0 && id >= vocab_size) {
      problems.push_back({field, fmt::format("token id {} is outside the vocabulary [0, {})", id, vocab_size)});
    }
  };
  check_id("bos_token_id", bos_token_id);
  check_id("pad_token_id", pad_token_id);
  for (int64_t id : eos_token_ids) check_id("eos_token_id", id);
  return problems;
}

void ModelConfig::Validate() const {
  auto problems = Problems();
  if (!problems.empty()) ThrowProblems(source, problems);
}

ModelConfig ParseConfig(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) {
    throw InputError(fmt::format("invalid model config {}: expected a JSON object at the top level, got {}",
                                 source, json.type_name()));
  }
  FieldReader reader(json);
  ModelConfig config;
  config.source = source;
  bool known_arch = DetectArchitecture(reader, &config.arch);
  bool internlm2 = config.arch == Architecture::kInternLM2;

  ParseSizes(reader, config);
  config.rms_norm_eps = reader.Number("rms_norm_eps", 1e-6);
  ParseRope(reader, config);
  if (internlm2) {
    config.bias = reader.Bool("bias", true);
    config.mlp_bias = false;  // InternLM2's MLP has no bias at all
  } else {
    config.bias = reader.Bool("attention_bias", false);
    config.mlp_bias = reader.Bool("mlp_bias", false);
  }
  config.tie_word_embeddings = reader.Bool("tie_word_embeddings", false);
  // Absent ids take the class defaults; an explicit null means "no such token" (-1).
  config.bos_token_id = json.contains("bos_token_id") ? reader.Int("bos_token_id", false, -1) : 1;
  config.eos_token_ids = ParseEosIds(reader, json.contains("eos_token_id"));
  int64_t pad_default = internlm2 && !json.contains("pad_token_id") ? 0 : -1;
  config.pad_token_id = reader.Int("pad_token_id", false, pad_default);
  config.torch_dtype = reader.String("torch_dtype", reader.String("dtype", ""));
  config.hidden_act = reader.String("hidden_act", "silu");

  std::vector<ConfigProblem> problems = reader.problems();
  if (known_arch) {
    // Validate() problems about a field already reported (e.g. absent) would only repeat it.
    std::set<std::string> reported;
    for (const auto& problem : problems) reported.insert(problem.field);
    for (auto& problem : config.Problems()) {
      if (!reported.count(problem.field)) problems.push_back(std::move(problem));
    }
  }
  if (!problems.empty()) ThrowProblems(source, problems);
  return config;
}

ModelConfig LoadConfig(const std::string& path) {
  std::string file = path;
  if (std::filesystem::is_directory(path)) file = (std::filesystem::path(path) / "config.json").string();
  return ParseConfig(io::ReadJsonFile(file), file);
}

ParameterCount CountParameters(const ModelConfig& config) {
  const int64_t d_model = config.hidden_size;
  const int64_t q_width = config.num_heads * config.head_dim;      // H * d
  const int64_t kv_width = config.num_kv_heads * config.head_dim;  // kv_heads * d
  const int64_t ffn = config.intermediate_size;

  ParameterCount count;
  count.embedding = config.vocab_size * d_model * (config.tie_word_embeddings ? 1 : 2);
  // Attention: Q [H*d, D], K and V [kv*d, D] (packed as wqkv in InternLM2, same count), O [D, H*d].
  int64_t attention = q_width * d_model + 2 * kv_width * d_model + d_model * q_width;
  if (config.bias) attention += q_width + 2 * kv_width + d_model;
  // MLP: gate and up [F, D], down [D, F].
  int64_t mlp = 3 * ffn * d_model;
  if (config.mlp_bias) mlp += 2 * ffn + d_model;
  int64_t norms = 2 * d_model;  // attention_norm and ffn_norm weights
  count.per_layer = attention + mlp + norms;
  count.total = count.embedding + config.num_layers * count.per_layer + d_model;  // + final norm
  count.active = count.total;  // dense: every parameter is used for every token
  return count;
}

}  // namespace parity::model
