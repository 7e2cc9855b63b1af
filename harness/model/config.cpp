// config.json -> ModelConfig, with the reference defaults, and the checks that say what is wrong.
#include "harness/model/config.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <set>

#include <fmt/format.h>

#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/model/arch.h"
#include "harness/model/arch_spec.h"
#include "harness/model/config_reader.h"

namespace parity::model {
namespace {

using nlohmann::json;

}  // namespace

std::string ShowJson(const json& value) {
  std::string text = value.dump();
  return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

const json* ConfigReader::Find(const std::string& field) const {
  auto it = object_.find(field);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

int64_t ConfigReader::Int(const std::string& field, bool required, int64_t fallback) {
  const json* value = Find(field);
  if (value == nullptr) {
    if (required) Add(field, "required but absent");
    return fallback;
  }
  if (!value->is_number_integer()) {
    Add(field, fmt::format("expected an integer, got {}", ShowJson(*value)));
    return fallback;
  }
  return value->get<int64_t>();
}

double ConfigReader::Number(const std::string& field, double fallback) {
  const json* value = Find(field);
  if (value == nullptr) return fallback;
  if (!value->is_number()) {
    Add(field, fmt::format("expected a number, got {}", ShowJson(*value)));
    return fallback;
  }
  return value->get<double>();
}

bool ConfigReader::Bool(const std::string& field, bool fallback) {
  const json* value = Find(field);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) {
    Add(field, fmt::format("expected true or false, got {}", ShowJson(*value)));
    return fallback;
  }
  return value->get<bool>();
}

std::string ConfigReader::String(const std::string& field, const std::string& fallback) {
  const json* value = Find(field);
  if (value == nullptr) return fallback;
  if (!value->is_string()) {
    Add(field, fmt::format("expected a string, got {}", ShowJson(*value)));
    return fallback;
  }
  return value->get<std::string>();
}

std::vector<int64_t> ConfigReader::IntList(const std::string& field, const std::vector<int64_t>& fallback) {
  const json* value = Find(field);
  if (value == nullptr) return fallback;
  std::vector<int64_t> list;
  if (value->is_array()) {
    for (const auto& item : *value) {
      if (!item.is_number_integer()) break;
      list.push_back(item.get<int64_t>());
    }
    if (list.size() == value->size()) return list;
  }
  Add(field, fmt::format("expected a list of integers, got {}", ShowJson(*value)));
  return fallback;
}

namespace {

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
// `fallback` (a container's text architecture) when the nested config names none.
const ArchSpec* DetectArchitecture(ConfigReader& reader, const char* fallback) {
  std::string model_type = reader.String("model_type", "");
  if (const ArchSpec* spec = FindArchByModelType(model_type)) return spec;
  if (fallback != nullptr) return &SpecOf(Architecture(fallback));
  if (!model_type.empty()) {
    reader.Add("model_type", fmt::format("unsupported model type '{}' (Parity reads {})", model_type,
                                         KnownModelTypes()));
    return nullptr;
  }
  const json* architectures = reader.Find("architectures");
  if (architectures != nullptr && architectures->is_array()) {
    for (const auto& name : *architectures) {
      if (!name.is_string()) continue;
      if (const ArchSpec* spec = FindArchByClassName(name.get<std::string>())) return spec;
    }
  }
  reader.Add("model_type",
             fmt::format("absent, and architectures {} names no architecture Parity reads ({})",
                         architectures == nullptr ? std::string("is absent") : ShowJson(*architectures),
                         KnownModelTypes()));
  return nullptr;
}

// rope_scaling (transformers 4) or the scaling part of rope_parameters (transformers 5):
// null, {"type" | "rope_type": "linear" | "dynamic", "factor": f}. "default" means no scaling.
RopeScaling ParseRopeScaling(ConfigReader& reader, const std::string& field, const json& value) {
  RopeScaling scaling;
  if (!value.is_object()) {
    reader.Add(field, fmt::format("expected an object or null, got {}", ShowJson(value)));
    return scaling;
  }
  const char* type_key = value.contains("rope_type") ? "rope_type" : "type";
  auto type_it = value.find(type_key);
  if (type_it == value.end() || !type_it->is_string()) {
    reader.Add(field + ".type", "required: a string, \"linear\" or \"dynamic\"");
    return scaling;
  }
  std::string type = type_it->get<std::string>();
  // "mrope" (Qwen2-VL) splits head_dim into sections rotated by 3 position ids; for text tokens the
  // three ids are equal, which is plain rope.
  if (type == "default" || type == "mrope") return scaling;
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
                           factor_it == value.end() ? std::string("nothing") : ShowJson(*factor_it)));
    scaling.type = RopeScaling::Type::kNone;
    return scaling;
  }
  scaling.factor = factor_it->get<double>();
  return scaling;
}

void ParseRope(ConfigReader& reader, ModelConfig& config, double default_theta) {
  config.rope_theta = reader.Number("rope_theta", default_theta);
  if (const json* scaling = reader.Find("rope_scaling")) {
    config.rope_scaling = ParseRopeScaling(reader, "rope_scaling", *scaling);
  }
  // Transformers 5 moves both into rope_parameters; when present it is what HF uses.
  if (const json* parameters = reader.Find("rope_parameters")) {
    if (!parameters->is_object()) {
      reader.Add("rope_parameters", fmt::format("expected an object, got {}", ShowJson(*parameters)));
      return;
    }
    auto theta = parameters->find("rope_theta");
    if (theta != parameters->end()) {
      if (theta->is_number()) {
        config.rope_theta = theta->get<double>();
      } else {
        reader.Add("rope_parameters.rope_theta", fmt::format("expected a number, got {}", ShowJson(*theta)));
      }
    }
    if (parameters->contains("rope_type") || parameters->contains("type")) {
      config.rope_scaling = ParseRopeScaling(reader, "rope_parameters", *parameters);
    }
  }
}

std::vector<int64_t> ParseEosIds(ConfigReader& reader, bool present, const std::vector<int64_t>& fallback) {
  const json* value = reader.Find("eos_token_id");
  if (value == nullptr) {
    if (present) return {};  // explicit null: no EOS token
    return fallback;         // the reference class's default
  }
  if (value->is_number_integer()) return {value->get<int64_t>()};
  std::vector<int64_t> ids;
  if (value->is_array()) {
    for (const auto& id : *value) {
      if (!id.is_number_integer()) {
        reader.Add("eos_token_id", fmt::format("expected an integer or a list of integers, got {}",
                                               ShowJson(*value)));
        return {};
      }
      ids.push_back(id.get<int64_t>());
    }
    if (!ids.empty()) return ids;
  }
  reader.Add("eos_token_id",
             fmt::format("expected an integer or a non-empty list of integers, got {}", ShowJson(*value)));
  return {};
}

void ParseSizes(ConfigReader& reader, const ArchSpec& spec, ModelConfig& config) {
  config.vocab_size = reader.Int("vocab_size", true, 0);
  config.hidden_size = reader.Int("hidden_size", true, 0);
  config.num_layers = reader.Int("num_hidden_layers", true, 0);
  config.num_heads = reader.Int("num_attention_heads", true, 0);
  config.num_kv_heads = reader.Int("num_key_value_heads", false, config.num_heads);
  config.intermediate_size = reader.Int("intermediate_size", true, 0);
  config.max_position_embeddings =
      reader.Int("max_position_embeddings", false, spec.defaults.max_position_embeddings);
  int64_t derived_head_dim = config.num_heads > 0 ? config.hidden_size / config.num_heads : 0;
  config.head_dim = derived_head_dim;
  if (reader.Find("head_dim") == nullptr) {
    if (spec.defaults.head_dim > 0) {  // Qwen3Config's head_dim = 128
      config.head_dim = spec.defaults.head_dim;
      config.head_dim_explicit = true;
    }
    return;
  }
  int64_t given = reader.Int("head_dim", false, derived_head_dim);
  if (spec.features.honours_head_dim) {
    config.head_dim = given;
    config.head_dim_explicit = true;
  } else if (config.num_heads > 0 && config.hidden_size % config.num_heads == 0 &&
             given != derived_head_dim) {
    // InternLM2's remote code ignores head_dim; a disagreeing value would change the network as soon
    // as the config is read by HF Llama after conversion.
    reader.Add("head_dim", fmt::format("{} disagrees with hidden_size / num_attention_heads = {}, "
                                       "which {}'s code uses",
                                       given, derived_head_dim, spec.id));
  }
}

// Sliding-window fields as the family's HF config class reads them.
void ParseWindow(ConfigReader& reader, const ArchSpec& spec, ModelConfig& config) {
  using Window = BlockFeatures::Window;
  const int64_t layers = std::max<int64_t>(config.num_layers, 0);
  if (spec.features.window == Window::kEveryLayer) {
    // MistralConfig: sliding_window defaults to 4096; an explicit null means none.
    config.sliding_window = reader.object().contains("sliding_window")
                                ? reader.Int("sliding_window", false, 0)
                                : 4096;
    config.sliding_layers.assign(layers, config.sliding_window > 0);
  } else if (spec.features.window == Window::kQwen) {
    // Qwen2/Qwen3: sliding_window only when use_sliding_window, on layers >= max_window_layers
    // unless layer_types (transformers 5) says which.
    const bool use = reader.Bool("use_sliding_window", false);
    const int64_t window = reader.Int("sliding_window", false, 4096);
    const int64_t from = reader.Int("max_window_layers", false, 28);
    config.sliding_window = use ? window : 0;
    config.sliding_layers.assign(layers, false);
    const json* types = reader.Find("layer_types");
    if (types != nullptr && (!types->is_array() || static_cast<int64_t>(types->size()) != layers)) {
      reader.Add("layer_types", fmt::format("expected a list of {} strings, got {}", layers,
                                            ShowJson(*types)));
      types = nullptr;
    }
    for (int64_t layer = 0; layer < layers && use; ++layer) {
      config.sliding_layers[layer] =
          types != nullptr ? (*types)[layer] == "sliding_attention" : layer >= from;
    }
  }
  if (config.sliding_window < 0) {
    reader.Add("sliding_window", fmt::format("must be positive or null, got {}", config.sliding_window));
    config.sliding_window = 0;
  }
  if (config.sliding_window == 0) config.sliding_layers.assign(layers, false);
}

// The object the text model's fields are read from: the container's nested text config with the
// top-level fields it lacks (tie_word_embeddings is often only at the top), or the top level itself.
json TextView(const json& top, const ContainerSpec* container) {
  if (container == nullptr || container->text_field.empty()) return top;
  auto nested = top.find(container->text_field);
  if (nested == top.end() || !nested->is_object()) return top;  // 4.x Qwen2.5-VL: fields at the top
  json view = *nested;
  for (auto it = top.begin(); it != top.end(); ++it) {
    if (it.key() == container->text_field || it.key() == "vision_config" || it.key() == "model_type" ||
        it.key() == "architectures" || view.contains(it.key())) {
      continue;
    }
    view[it.key()] = it.value();
  }
  return view;
}

}  // namespace

bool operator==(Architecture a, Architecture b) { return std::strcmp(a.id_, b.id_) == 0; }

std::ostream& operator<<(std::ostream& out, Architecture arch) { return out << arch.id(); }

const char* ArchitectureName(Architecture arch) { return arch.id(); }

bool ModelConfig::IsMoeLayer(int64_t layer) const {
  if (num_experts <= 0 || decoder_sparse_step <= 0) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) {
    return false;
  }
  return (layer + 1) % decoder_sparse_step == 0;
}

int64_t ModelConfig::WindowOf(int64_t layer) const {
  if (sliding_window <= 0 || layer < 0 || layer >= static_cast<int64_t>(sliding_layers.size())) return 0;
  return sliding_layers[layer] ? sliding_window : 0;
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
    problems.push_back({"hidden_act", fmt::format("unsupported activation '{}' (every architecture's "
                                                  "MLP is down(silu(gate x) * up x))",
                                                  hidden_act)});
  }
  if (num_experts > 0) {
    if (experts_per_token <= 0 || experts_per_token > num_experts) {
      problems.push_back({"num_experts_per_tok", fmt::format("must be in [1, num_experts = {}], got {}",
                                                             num_experts, experts_per_token)});
    }
    positive("moe_intermediate_size", moe_intermediate_size);
    positive("decoder_sparse_step", decoder_sparse_step);
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
  ModelConfig config;
  config.source = source;
  const ContainerSpec* container = nullptr;
  if (auto type = json.find("model_type"); type != json.end() && type->is_string()) {
    container = FindContainer(type->get<std::string>());
  }
  const nlohmann::json text = TextView(json, container);
  const bool nested = container != nullptr && !container->text_field.empty() &&
                      json.contains(container->text_field) && json[container->text_field].is_object();
  ConfigReader reader(text);
  const ArchSpec* spec = DetectArchitecture(reader, container ? container->text_arch : nullptr);
  if (container != nullptr) {
    config.container.model_type = json["model_type"].get<std::string>();
    config.container.text_field = nested ? container->text_field : "";
    config.container.model_prefix = container->model_prefix;
    config.container.head_prefix = container->head_prefix;
    config.container.ignored_prefixes = container->ignored_prefixes;
    config.expert_layout = container->expert_layout;
  }
  const ArchSpec& arch = spec != nullptr ? *spec : SpecOf(Architecture::kInternLM2);
  config.arch = Architecture(arch.id);
  config.model_type = reader.String("model_type", arch.model_types.front());

  ParseSizes(reader, arch, config);
  config.rms_norm_eps = reader.Number("rms_norm_eps", arch.defaults.rms_norm_eps);
  ParseRope(reader, config, arch.defaults.rope_theta);
  config.bias = arch.defaults.attention_bias;
  config.tie_word_embeddings = reader.Bool("tie_word_embeddings", arch.defaults.tie_word_embeddings);
  // Absent ids take the class defaults; an explicit null means "no such token" (-1).
  config.bos_token_id =
      text.contains("bos_token_id") ? reader.Int("bos_token_id", false, -1) : arch.defaults.bos_token_id;
  config.eos_token_ids = ParseEosIds(reader, text.contains("eos_token_id"), arch.defaults.eos_token_ids);
  config.pad_token_id =
      text.contains("pad_token_id") ? reader.Int("pad_token_id", false, -1) : arch.defaults.pad_token_id;
  config.torch_dtype = reader.String("torch_dtype", reader.String("dtype", ""));
  config.hidden_act = reader.String("hidden_act", "silu");
  ParseWindow(reader, arch, config);
  if (arch.read_fields) arch.read_fields(reader, config);

  std::vector<ConfigProblem> problems = reader.problems();
  if (spec != nullptr) {
    // Validate() problems about a field already reported (e.g. absent) would only repeat it.
    std::set<std::string> reported;
    for (const auto& problem : problems) reported.insert(problem.field);
    for (auto& problem : config.Problems()) {
      if (!reported.count(problem.field)) problems.push_back(std::move(problem));
    }
  }
  if (nested) {
    for (auto& problem : problems) problem.field = container->text_field + "." + problem.field;
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
  // Summed over the architecture's table, so that the count and the tensors cannot disagree.
  ParameterCount count;
  const int64_t top_k = std::min(config.experts_per_token, config.num_experts);
  for (const ExpectedTensor& tensor : ExpectedTensors(config)) {
    if (!tensor.required) continue;  // the tied LM head is the embedding
    int64_t numel = 1;
    for (int64_t size : tensor.shape) numel *= size;
    count.total += numel;
    int64_t active = numel;
    switch (tensor.role) {
      case Role::kExpertGate: case Role::kExpertUp: case Role::kExpertDown:
        active = tensor.expert < top_k ? numel : 0;  // any k of the E equal experts
        break;
      case Role::kExpertsGateUp: case Role::kExpertsDown:
        active = numel / config.num_experts * top_k;
        break;
      default:
        break;
    }
    count.active += active;
    if (tensor.role == Role::kEmbedding || tensor.role == Role::kLmHead) count.embedding += numel;
    if (tensor.layer == 0) count.per_layer += numel;
  }
  return count;
}

}  // namespace parity::model
