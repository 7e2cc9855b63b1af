#include "harness/report/shard.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/core/atomic_file.h"
#include "harness/core/error.h"

namespace parity::report {
namespace {

// A decimal integer made of digits only (no sign, no spaces), at most 9 digits.
std::optional<int64_t> ParseCount(const std::string& text) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  return std::stoll(text);
}

}  // namespace

ShardSpec ParseShard(const std::string& text) {
  size_t slash = text.find('/');
  if (slash == std::string::npos) {
    throw InputError(fmt::format("--shard '{}': expected i/N, e.g. 0/4 (shard i of N, i from 0)",
                                 text));
  }
  std::optional<int64_t> index = ParseCount(text.substr(0, slash));
  std::optional<int64_t> count = ParseCount(text.substr(slash + 1));
  if (!index || !count) {
    throw InputError(fmt::format(
        "--shard '{}': expected two non-negative integers i/N, e.g. 0/4", text));
  }
  if (*count < 1) throw InputError(fmt::format("--shard '{}': the count N must be at least 1", text));
  if (*index >= *count) {
    throw InputError(fmt::format("--shard '{}': the index must be below the count (0..{})", text,
                                 *count - 1));
  }
  return {*index, *count};
}

bool InShard(int64_t prompt_index, const ShardSpec& shard) {
  return prompt_index % shard.count == shard.index;
}

std::vector<int64_t> ShardPromptIndices(int64_t num_prompts, const ShardSpec& shard) {
  std::vector<int64_t> out;
  for (int64_t i = shard.index; i < num_prompts; i += shard.count) out.push_back(i);
  return out;
}

void WriteShardInfo(const std::string& dir, const ShardSpec& shard, int64_t num_prompts) {
  nlohmann::json json = {{"index", shard.index},
                         {"count", shard.count},
                         {"num_prompts", num_prompts},
                         {"prompt_indices", ShardPromptIndices(num_prompts, shard)}};
  WriteFileAtomic((std::filesystem::path(dir) / "shard.json").string(), json.dump(2) + "\n");
}

std::optional<ShardInfo> ReadShardInfo(const std::string& dir) {
  std::string path = (std::filesystem::path(dir) / "shard.json").string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  ShardInfo info;
  try {
    nlohmann::json json = nlohmann::json::parse(buffer.str());
    info.shard.index = json.at("index").get<int64_t>();
    info.shard.count = json.at("count").get<int64_t>();
    info.num_prompts = json.at("num_prompts").get<int64_t>();
    info.prompt_indices = json.at("prompt_indices").get<std::vector<int64_t>>();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: expected {{\"index\", \"count\", \"num_prompts\", "
                                 "\"prompt_indices\"}}: {}",
                                 path, e.what()));
  }
  if (info.shard.count < 1 || info.shard.index < 0 || info.shard.index >= info.shard.count) {
    throw InputError(fmt::format("{}: index {} is not a shard of count {}", path, info.shard.index,
                                 info.shard.count));
  }
  return info;
}

}  // namespace parity::report
