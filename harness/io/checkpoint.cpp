// A Hugging Face checkpoint directory. The index, when present, is the authority on which tensor
// lives where; it must agree with the shards exactly.
//
// A shard holding a tensor that the index does not list is an ERROR, not a warning: Parity exists to
// say precisely what a checkpoint contains, and such a shard means the index and the data disagree
// (a half-finished conversion, a shard copied from another checkpoint). Loaders differ on what they
// would do with it (transformers loads whole shards, other tools follow the index), so we refuse to
// guess. All disagreements are collected and reported together.
#include "harness/io/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "harness/core/error.h"

namespace parity::io {
namespace {

namespace fs = std::filesystem;

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";
constexpr size_t kMaxProblemsShown = 20;

// Throws one InputError listing every problem (the first kMaxProblemsShown of them).
void ThrowIfProblems(const std::string& dir, const std::vector<std::string>& problems) {
  if (problems.empty()) return;
  std::string message = fmt::format("checkpoint {}: {} problem{}:", dir, problems.size(),
                                    problems.size() == 1 ? "" : "s");
  for (size_t i = 0; i < problems.size() && i < kMaxProblemsShown; ++i) {
    message += "\n  " + problems[i];
  }
  if (problems.size() > kMaxProblemsShown) {
    message += fmt::format("\n  ... and {} more", problems.size() - kMaxProblemsShown);
  }
  throw InputError(message);
}

// A shard name from the index must name a file inside the checkpoint directory.
bool IsPlainRelativeName(const std::string& name) {
  fs::path path(name);
  if (name.empty() || path.is_absolute()) return false;
  for (const fs::path& part : path) {
    if (part == "..") return false;
  }
  return true;
}

// weight_map as (tensor, shard) pairs; throws when the index is not shaped as HF writes it.
std::vector<std::pair<std::string, std::string>> ReadWeightMap(const std::string& index_path,
                                                               const nlohmann::json& index) {
  if (!index.is_object()) {
    throw InputError(fmt::format("{}: expected a JSON object with 'weight_map', got {}",
                                 index_path, index.type_name()));
  }
  auto it = index.find("weight_map");
  if (it == index.end() || !it->is_object()) {
    throw InputError(fmt::format(
        "{}: expected 'weight_map' to be an object mapping tensor names to shard files",
        index_path));
  }
  std::vector<std::pair<std::string, std::string>> entries;
  for (const auto& [tensor, shard] : it->items()) {
    if (!shard.is_string()) {
      throw InputError(fmt::format("{}: weight_map entry for tensor '{}' must be a file name, got {}",
                                   index_path, tensor, shard.type_name()));
    }
    entries.emplace_back(tensor, shard.get<std::string>());
  }
  return entries;
}

uint64_t SumOfTensorBytes(const std::map<std::string, std::shared_ptr<SafetensorsFile>>& shards) {
  uint64_t total = 0;
  for (const auto& [file, shard] : shards) {
    for (const TensorInfo& t : shard->tensors()) total += t.nbytes();
  }
  return total;
}

}  // namespace

nlohmann::json ReadJsonFile(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw InputError(fmt::format("{}: file not found (expected a JSON file)", path));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot read", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: not valid JSON: {}", path, e.what()));
  }
}

Checkpoint Checkpoint::Open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw InputError(fmt::format("{}: not a directory (expected a checkpoint directory)", dir));
  }
  Checkpoint ckpt;
  ckpt.dir_ = dir;
  const std::string config_path = (fs::path(dir) / "config.json").string();
  ckpt.config_json_ = ReadJsonFile(config_path);
  if (!ckpt.config_json_.is_object()) {
    throw InputError(fmt::format("{}: expected a JSON object, got {}", config_path,
                                 ckpt.config_json_.type_name()));
  }

  const std::string index_path = (fs::path(dir) / kIndexName).string();
  const std::string single_path = (fs::path(dir) / kSingleName).string();
  const bool has_index = fs::exists(index_path, ec);
  if (!has_index) {
    if (!fs::exists(single_path, ec)) {
      throw InputError(fmt::format("checkpoint {}: neither {} nor {} is there", dir, kIndexName,
                                   kSingleName));
    }
    auto shard = std::make_shared<SafetensorsFile>(SafetensorsFile::Open(single_path));
    for (const TensorInfo& t : shard->tensors()) ckpt.tensor_to_shard_.emplace(t.name, kSingleName);
    ckpt.shard_files_ = {kSingleName};
    ckpt.shards_.emplace(kSingleName, std::move(shard));
    return ckpt;
  }
  if (fs::exists(single_path, ec)) {
    spdlog::warn("checkpoint {}: both {} and {} exist; using the index", dir, kIndexName,
                 kSingleName);
  }

  ckpt.sharded_ = true;
  ckpt.index_json_ = ReadJsonFile(index_path);
  std::vector<std::pair<std::string, std::string>> weight_map =
      ReadWeightMap(index_path, ckpt.index_json_);

  // Open each shard once, in order of first appearance; a missing or unsafe shard name is reported
  // with the first tensor the index maps to it.
  std::vector<std::string> problems;
  std::set<std::string> bad_shards;
  for (const auto& [tensor, shard_name] : weight_map) {
    if (ckpt.shards_.count(shard_name) != 0 || bad_shards.count(shard_name) != 0) continue;
    if (!IsPlainRelativeName(shard_name)) {
      problems.push_back(fmt::format(
          "{}: tensor '{}' is mapped to '{}', which is not a file name inside the checkpoint",
          kIndexName, tensor, shard_name));
      bad_shards.insert(shard_name);
      continue;
    }
    const std::string shard_path = (fs::path(dir) / shard_name).string();
    if (!fs::exists(shard_path, ec)) {
      problems.push_back(fmt::format("{} names shard file '{}' (for tensor '{}'), which does not exist",
                                     kIndexName, shard_name, tensor));
      bad_shards.insert(shard_name);
      continue;
    }
    // A malformed shard throws its own InputError naming the file and the tensor.
    ckpt.shards_.emplace(shard_name,
                         std::make_shared<SafetensorsFile>(SafetensorsFile::Open(shard_path)));
    ckpt.shard_files_.push_back(shard_name);
  }

  for (const auto& [tensor, shard_name] : weight_map) {
    auto shard = ckpt.shards_.find(shard_name);
    if (shard == ckpt.shards_.end()) continue;  // already reported
    if (!shard->second->Contains(tensor)) {
      problems.push_back(fmt::format("{} maps tensor '{}' to shard '{}', which does not contain it",
                                     kIndexName, tensor, shard_name));
      continue;
    }
    ckpt.tensor_to_shard_.emplace(tensor, shard_name);
  }
  // Every tensor in every shard must be listed, and listed for that shard: this also catches a
  // tensor stored in two shards.
  const std::map<std::string, std::string> listed_shard(weight_map.begin(), weight_map.end());
  for (const std::string& shard_name : ckpt.shard_files_) {
    for (const TensorInfo& t : ckpt.shards_.at(shard_name)->tensors()) {
      auto listed = listed_shard.find(t.name);
      if (listed == listed_shard.end()) {
        problems.push_back(fmt::format("shard '{}' holds tensor '{}', which {} does not list",
                                       shard_name, t.name, kIndexName));
      } else if (listed->second != shard_name) {
        problems.push_back(fmt::format("shard '{}' holds tensor '{}', which {} maps to '{}'",
                                       shard_name, t.name, kIndexName, listed->second));
      }
    }
  }
  ThrowIfProblems(dir, problems);
  // HF names shards model-0000k-of-0000n, so sorting the names gives the shard order.
  std::sort(ckpt.shard_files_.begin(), ckpt.shard_files_.end());

  // total_size is advisory (tools compute it differently), so a mismatch is only a warning.
  auto metadata = ckpt.index_json_.find("metadata");
  if (metadata != ckpt.index_json_.end() && metadata->is_object()) {
    auto total = metadata->find("total_size");
    uint64_t actual = SumOfTensorBytes(ckpt.shards_);
    if (total != metadata->end() && total->is_number_unsigned() &&
        total->get<uint64_t>() != actual) {
      spdlog::warn("checkpoint {}: {} says total_size {} but the tensors hold {} bytes", dir,
                   kIndexName, total->get<uint64_t>(), actual);
    }
  }
  return ckpt;
}

Checkpoint Checkpoint::FromExternal(const std::string& path, nlohmann::json config_json,
                                    std::vector<ExternalTensor> tensors, uint64_t bytes_on_disk) {
  Checkpoint ckpt;
  ckpt.dir_ = path;
  ckpt.format_ = "gguf";
  ckpt.config_json_ = std::move(config_json);
  ckpt.external_bytes_ = bytes_on_disk;
  for (ExternalTensor& tensor : tensors) {
    const std::string name = tensor.info.name;
    if (!ckpt.external_.emplace(name, std::move(tensor)).second) {
      throw InputError(fmt::format("{}: two tensors map to '{}'", path, name));
    }
    ckpt.tensor_to_shard_.emplace(name, ckpt.external_.at(name).file);
  }
  ckpt.shard_files_ = {fs::path(path).filename().string()};
  return ckpt;
}

std::string Checkpoint::config_source() const {
  if (format_ != "safetensors") return dir_ + " (metadata)";
  return (fs::path(dir_) / "config.json").string();
}

const ExternalTensor* Checkpoint::External(const std::string& name) const {
  auto it = external_.find(name);
  return it == external_.end() ? nullptr : &it->second;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> result;
  result.reserve(tensor_to_shard_.size());
  for (const auto& [name, shard] : tensor_to_shard_) result.push_back(name);
  return result;  // std::map iterates in sorted order
}

bool Checkpoint::Contains(const std::string& name) const {
  return tensor_to_shard_.count(name) != 0;
}

const std::string& Checkpoint::ShardOf(const std::string& name) const {
  auto it = tensor_to_shard_.find(name);
  if (it == tensor_to_shard_.end()) {
    throw InputError(fmt::format("checkpoint {}: no tensor named '{}'", dir_, name));
  }
  return it->second;
}

const SafetensorsFile& Checkpoint::shard(const std::string& file) const {
  auto it = shards_.find(file);
  if (it == shards_.end()) {
    throw InputError(fmt::format("checkpoint {}: no shard file '{}'", dir_, file));
  }
  return *it->second;
}

const TensorInfo& Checkpoint::Info(const std::string& name) const {
  if (const ExternalTensor* external = External(name)) return external->info;
  return *shard(ShardOf(name)).Find(name);
}

at::Tensor Checkpoint::Get(const std::string& name) const {
  if (const ExternalTensor* external = External(name)) return external->load();
  return shard(ShardOf(name)).Get(name);
}

uint64_t Checkpoint::bytes_on_disk() const {
  uint64_t total = external_bytes_;
  for (const auto& [file, shard] : shards_) total += shard->file_size();
  return total;
}

int64_t Checkpoint::parameter_count() const {
  int64_t total = 0;
  for (const auto& [name, file] : tensor_to_shard_) total += Info(name).numel();
  return total;
}

}  // namespace parity::io
