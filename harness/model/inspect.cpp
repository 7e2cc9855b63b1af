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
    if (!expected_names.count(name)) summary.unexpected.push_back(name);
  }
}

}  // namespace

std::string FormatShape(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

CheckpointSummary SummarizeCheckpoint(const io::Checkpoint& checkpoint) {
  CheckpointSummary summary;
  summary.dir = checkpoint.dir();
  std::string config_path = (std::filesystem::path(checkpoint.dir()) / "config.json").string();
  summary.config = ParseConfig(checkpoint.config_json(), config_path);
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
  summary.expected_tensor_parameters = summary.from_config.total;
  std::string lm_head = TensorName(summary.config.arch, Role::kLmHead);
  if (summary.config.tie_word_embeddings && checkpoint.Contains(lm_head)) {
    summary.expected_tensor_parameters += summary.config.vocab_size * summary.config.hidden_size;
  }
  summary.counts_agree = summary.tensor_parameters == summary.expected_tensor_parameters;
  summary.num_shards = static_cast<int64_t>(checkpoint.shard_files().size());
  summary.sharded = checkpoint.sharded();
  summary.bytes_on_disk = checkpoint.bytes_on_disk();
  CheckAgainstTable(checkpoint, summary);
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
      {"architecture", ArchitectureName(c.arch)},
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
        {"shape_mismatches", shape_mismatches}}},
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
  line("other", fmt::format("rms_norm_eps {:g}, bias {}, tied embeddings {}, config dtype {}", c.rms_norm_eps,
                            c.bias, c.tie_word_embeddings, c.torch_dtype.empty() ? "(none)" : c.torch_dtype));
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
  return text;
}

}  // namespace parity::model
