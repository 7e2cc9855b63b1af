// parity inspect: config sizes, tensor dtypes, parameter counts from both sides, table check.
#include "harness/model/inspect.h"

#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/io/checkpoint.h"
#include "harness/model/arch.h"

namespace parity::model {
namespace {

// 7737708544 -> "7,737,708,544".
std::string Grouped(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

std::string HumanBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.2f} {}", value, units[unit]);
}

// Lists up to `limit` items, then "and N more".
std::string FirstFew(const std::vector<std::string>& items, size_t limit = 5) {
  std::vector<std::string> shown(items.begin(), items.begin() + std::min(limit, items.size()));
  std::string text = fmt::format("{}", fmt::join(shown, ", "));
  if (items.size() > limit) text += fmt::format(", and {} more", items.size() - limit);
  return text;
}

std::string RopeText(const ModelConfig& config) {
  std::string text = fmt::format("theta {:g}", config.rope_theta);
  if (config.rope_scaling.type == RopeScaling::Type::kNone) {
    text += ", no scaling";
  } else {
    text += fmt::format(", {} scaling x{:g}", RopeScalingTypeName(config.rope_scaling.type),
                        config.rope_scaling.factor);
  }
  return text + fmt::format(", max positions {}", config.max_position_embeddings);
}

void CheckAgainstTable(const io::Checkpoint& checkpoint, CheckpointSummary& summary) {
  // MoE experts stored fused rather than one by one: the checkpoint decides.
  ModelConfig& config = summary.config;
  if (config.num_experts > 0 && config.expert_layout == ExpertLayout::kPerExpert) {
    for (int64_t layer = 0; layer < config.num_layers; ++layer) {
      if (config.IsMoeLayer(layer) && checkpoint.Contains(TensorName(config, Role::kExpertsGateUp, layer))) {
        config.expert_layout = ExpertLayout::kFused;
        break;
      }
    }
  }
  std::set<std::string> expected_names;
  for (const auto& expected : ExpectedTensors(summary.config)) {
    expected_names.insert(expected.name);
    if (!checkpoint.Contains(expected.name)) {
      if (expected.required) summary.missing.push_back(expected.name);
      continue;
    }
    const auto& shape = checkpoint.Info(expected.name).shape;
    if (shape != expected.shape) {
      summary.shape_mismatches.push_back(fmt::format("{}: expected {}, got {}", expected.name,
                                                     FormatShape(expected.shape), FormatShape(shape)));
    }
  }
  for (const auto& name : checkpoint.names()) {
    if (expected_names.count(name)) continue;
    if (IsIgnoredPart(config, name)) {
      summary.ignored.push_back(name);
      summary.ignored_parameters += checkpoint.Info(name).numel();
    } else {
      summary.unexpected.push_back(name);
    }
  }
}

// 235093634560 -> "235.09B".
std::string Billions(int64_t count) {
  if (count >= 1000000000) return fmt::format("{:.2f}B", count / 1e9);
  if (count >= 1000000) return fmt::format("{:.2f}M", count / 1e6);
  return fmt::format("{}", count);
}

// Block features and MoE / window settings in words, for the text output.
std::string FeaturesText(const ModelConfig& c) {
  std::vector<std::string> parts;
  if (c.num_experts > 0) {
    int64_t moe_layers = 0;
    for (int64_t layer = 0; layer < c.num_layers; ++layer) moe_layers += c.IsMoeLayer(layer);
    parts.push_back(fmt::format("MoE: {} experts of width {}, top-{}{}, on {}/{} layers",
                                c.num_experts, c.moe_intermediate_size, c.experts_per_token,
                                c.norm_topk_prob ? " renormalised" : "", moe_layers, c.num_layers));
  }
  if (c.sliding_window > 0) {
    int64_t sliding = 0;
    for (int64_t layer = 0; layer < c.num_layers; ++layer) sliding += c.WindowOf(layer) > 0;
    parts.push_back(fmt::format("sliding window {} on {}/{} layers", c.sliding_window, sliding, c.num_layers));
  }
  if (!c.container.model_type.empty()) {
    parts.push_back(fmt::format("language model of a {} checkpoint{}", c.container.model_type,
                                c.container.text_field.empty() ? "" : " (" + c.container.text_field + ")"));
  }
  return fmt::format("{}", fmt::join(parts, "; "));
}

}  // namespace

std::string FormatShape(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

CheckpointSummary SummarizeCheckpoint(const io::Checkpoint& checkpoint) {
  CheckpointSummary summary;
  summary.dir = checkpoint.dir();
  summary.config = ParseConfig(checkpoint.config_json(), checkpoint.config_source());
  auto architectures = checkpoint.config_json().find("architectures");
  if (architectures != checkpoint.config_json().end() && architectures->is_array()) {
    for (const auto& name : *architectures) {
      if (name.is_string()) summary.architectures.push_back(name.get<std::string>());
    }
  }
  summary.from_config = CountParameters(summary.config);

  for (const auto& name : checkpoint.names()) {
    const auto& info = checkpoint.Info(name);
    std::string dtype(io::DTypeName(info.dtype));
    summary.dtype_tensors[dtype] += 1;
    summary.dtype_parameters[dtype] += info.numel();
    ++summary.num_tensors;
  }
  summary.tensor_parameters = checkpoint.parameter_count();
  summary.num_shards = static_cast<int64_t>(checkpoint.shard_files().size());
  summary.sharded = checkpoint.sharded();
  summary.bytes_on_disk = checkpoint.bytes_on_disk();
  CheckAgainstTable(checkpoint, summary);
  summary.from_config = CountParameters(summary.config);  // with the expert layout found
  summary.expected_tensor_parameters = summary.from_config.total + summary.ignored_parameters;
  std::string lm_head = TensorName(summary.config, Role::kLmHead);
  if (summary.config.tie_word_embeddings && checkpoint.Contains(lm_head)) {
    summary.expected_tensor_parameters += summary.config.vocab_size * summary.config.hidden_size;
  }
  summary.counts_agree = summary.tensor_parameters == summary.expected_tensor_parameters;
  return summary;
}

bool IsConfigOnly(const std::string& dir) {
  namespace fs = std::filesystem;
  return fs::is_directory(dir) && fs::exists(fs::path(dir) / "config.json") &&
         !fs::exists(fs::path(dir) / "model.safetensors") &&
         !fs::exists(fs::path(dir) / "model.safetensors.index.json");
}

CheckpointSummary SummarizeConfigOnly(const std::string& dir_or_config) {
  namespace fs = std::filesystem;
  const bool is_dir = fs::is_directory(dir_or_config);
  const std::string config_path = is_dir ? (fs::path(dir_or_config) / "config.json").string() : dir_or_config;
  const nlohmann::json json = io::ReadJsonFile(config_path);
  CheckpointSummary summary;
  summary.dir = is_dir ? dir_or_config : fs::path(dir_or_config).parent_path().string();
  summary.config_only = true;
  summary.config = ParseConfig(json, config_path);
  auto architectures = json.find("architectures");
  if (architectures != json.end() && architectures->is_array()) {
    for (const auto& name : *architectures) {
      if (name.is_string()) summary.architectures.push_back(name.get<std::string>());
    }
  }
  summary.from_config = CountParameters(summary.config);
  return summary;
}

nlohmann::json CheckpointSummary::ToJson() const {
  using nlohmann::json;
  const ModelConfig& c = config;
  json rope_scaling = nullptr;
  if (c.rope_scaling.type != RopeScaling::Type::kNone) {
    rope_scaling = {{"type", RopeScalingTypeName(c.rope_scaling.type)}, {"factor", c.rope_scaling.factor}};
  }
  json dtypes = json::object();
  for (const auto& [dtype, count] : dtype_tensors) {
    dtypes[dtype] = {{"tensors", count}, {"parameters", dtype_parameters.at(dtype)}};
  }
  return {
      {"dir", dir},
      {"config_only", config_only},
      {"architecture", ArchitectureName(c.arch)},
      {"model_type", c.model_type},
      {"container", c.container.model_type.empty() ? json(nullptr) : json(c.container.model_type)},
      {"architectures", architectures},
      {"config",
       {{"path", c.source},
        {"num_layers", c.num_layers},
        {"hidden_size", c.hidden_size},
        {"num_heads", c.num_heads},
        {"num_kv_heads", c.num_kv_heads},
        {"head_dim", c.head_dim},
        {"intermediate_size", c.intermediate_size},
        {"vocab_size", c.vocab_size},
        {"max_position_embeddings", c.max_position_embeddings},
        {"rms_norm_eps", c.rms_norm_eps},
        {"rope_theta", c.rope_theta},
        {"rope_scaling", rope_scaling},
        {"bias", c.bias},
        {"mlp_bias", c.mlp_bias},
        {"tie_word_embeddings", c.tie_word_embeddings},
        {"sliding_window", c.sliding_window},
        {"num_experts", c.num_experts},
        {"experts_per_token", c.experts_per_token},
        {"moe_intermediate_size", c.moe_intermediate_size},
        {"norm_topk_prob", c.norm_topk_prob},
        {"torch_dtype", c.torch_dtype.empty() ? json(nullptr) : json(c.torch_dtype)}}},
      {"dtypes", dtypes},
      {"parameters",
       {{"from_config",
         {{"total", from_config.total},
          {"active", from_config.active},
          {"embedding", from_config.embedding},
          {"per_layer", from_config.per_layer}}},
        {"from_tensors", tensor_parameters},
        {"expected_from_tensors", expected_tensor_parameters},
        {"agree", counts_agree}}},
      {"num_tensors", num_tensors},
      {"num_shards", num_shards},
      {"sharded", sharded},
      {"bytes_on_disk", bytes_on_disk},
      {"table",
       {{"agrees", table_agrees()},
        {"missing", missing},
        {"unexpected", unexpected},
        {"shape_mismatches", shape_mismatches},
        {"ignored", ignored},
        {"ignored_parameters", ignored_parameters}}},
  };
}

std::string CheckpointSummary::ToText() const {
  const ModelConfig& c = config;
  std::string text;
  auto line = [&](const char* label, const std::string& value) { text += fmt::format("{:<13}{}\n", label, value); };
  line("checkpoint", dir);
  line("architecture", architectures.empty() ? std::string(ArchitectureName(c.arch))
                                             : fmt::format("{} ({})", ArchitectureName(c.arch),
                                                           fmt::join(architectures, ", ")));
  line("sizes", fmt::format("layers {}, hidden {}, heads {}, kv heads {} (group {}), head_dim {}, "
                            "intermediate {}, vocab {}",
                            c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.group_size(),
                            c.head_dim, c.intermediate_size, c.vocab_size));
  line("rope", RopeText(c));
  if (std::string features = FeaturesText(c); !features.empty()) line("blocks", features);
  line("other", fmt::format("rms_norm_eps {:g}, bias {}, tied embeddings {}, config dtype {}", c.rms_norm_eps,
                            c.bias, c.tie_word_embeddings, c.torch_dtype.empty() ? "(none)" : c.torch_dtype));
  if (config_only) {
    line("parameters", fmt::format("from config {} total ({}), {} active ({}); embedding {}, layer 0 {}",
                                   Grouped(from_config.total), Billions(from_config.total),
                                   Grouped(from_config.active), Billions(from_config.active),
                                   Grouped(from_config.embedding), Grouped(from_config.per_layer)));
    line("files", "config.json only: no weights to check");
    return text;
  }
  std::vector<std::string> dtypes;
  for (const auto& [dtype, count] : dtype_tensors) {
    dtypes.push_back(fmt::format("{} ({} tensors, {} parameters)", dtype, count,
                                 Grouped(dtype_parameters.at(dtype))));
  }
  line("dtypes", dtypes.empty() ? std::string("(no tensors)") : fmt::format("{}", fmt::join(dtypes, "; ")));
  line("parameters", fmt::format("from config {} (embedding {}, per layer {}, active {})",
                                 Grouped(from_config.total), Grouped(from_config.embedding),
                                 Grouped(from_config.per_layer), Grouped(from_config.active)));
  std::string tensors_line = fmt::format("from tensors {}: ", Grouped(tensor_parameters));
  if (counts_agree) {
    tensors_line += expected_tensor_parameters == from_config.total
                        ? "agrees with the config"
                        : "agrees with the config (the tied LM head is stored as well)";
  } else {
    tensors_line += fmt::format("DISAGREES with the config (expected {}, difference {})",
                                Grouped(expected_tensor_parameters),
                                Grouped(tensor_parameters - expected_tensor_parameters));
  }
  line("", tensors_line);
  line("files", fmt::format("{} tensors in {} shard{}{}, {} ({} bytes) on disk", num_tensors, num_shards,
                            num_shards == 1 ? "" : "s", sharded ? " (indexed)" : "", HumanBytes(bytes_on_disk),
                            Grouped(static_cast<int64_t>(bytes_on_disk))));
  if (table_agrees()) {
    line("table", fmt::format("every tensor is in the {} table with its expected shape", ArchitectureName(c.arch)));
  } else {
    if (!missing.empty()) line("table", fmt::format("MISSING {}: {}", missing.size(), FirstFew(missing)));
    if (!unexpected.empty()) line("table", fmt::format("UNEXPECTED {}: {}", unexpected.size(), FirstFew(unexpected)));
    if (!shape_mismatches.empty()) {
      line("table", fmt::format("WRONG SHAPE {}: {}", shape_mismatches.size(), FirstFew(shape_mismatches, 3)));
    }
  }
  if (!ignored.empty()) {
    line("ignored", fmt::format("{} tensors ({} parameters) outside the language model: {}", ignored.size(),
                                Grouped(ignored_parameters), FirstFew(ignored, 3)));
  }
  return text;
}

}  // namespace parity::model
