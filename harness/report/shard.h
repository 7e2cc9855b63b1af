// Sharding a case over machines: `parity run CASE --shard i/N` runs the prompts whose index
// satisfies index % N == i (a deterministic slice that any Slurm array, Kubernetes indexed Job or
// CI matrix can compute from its task index), and records what it ran in DIR/shard.json so that
// `parity merge` can check that the shards cover every prompt exactly once.
//
// DIR/shard.json: {"index": i, "count": N, "num_prompts": P, "prompt_indices": [...]}
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace parity::report {

struct ShardSpec {
  int64_t index = 0;  // i, 0 <= i < count
  int64_t count = 1;  // N >= 1
};

// Parses "i/N" (e.g. "0/4"). Throws InputError with the reason for anything else: "--shard '4/4':
// the index must be below the count (0..3)".
ShardSpec ParseShard(const std::string& text);

// Whether prompt `prompt_index` belongs to the shard (prompt_index % count == index).
bool InShard(int64_t prompt_index, const ShardSpec& shard);

// The prompt indices of a case with `num_prompts` prompts that the shard runs, ascending.
std::vector<int64_t> ShardPromptIndices(int64_t num_prompts, const ShardSpec& shard);

struct ShardInfo {
  ShardSpec shard;
  int64_t num_prompts = 0;             // prompts in the whole case
  std::vector<int64_t> prompt_indices; // the ones this shard ran
};

// Writes DIR/shard.json atomically.
void WriteShardInfo(const std::string& dir, const ShardSpec& shard, int64_t num_prompts);
// Reads DIR/shard.json; nullopt when absent; InputError when malformed.
std::optional<ShardInfo> ReadShardInfo(const std::string& dir);

}  // namespace parity::report
