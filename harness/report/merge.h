// `parity merge DIR... --out DIR`: combines the outputs of shards (`parity run --shard i/N`) into
// the one run an unsharded `parity run` would have written: runs ordered by pair then prompt
// index, their steps in the same order, pair summaries and the verdict recomputed from the runs.
//
// Refused (InputError naming the shard directories): shards of different cases, settings
// (num_threads excepted: machine-dependent), versions, gates or models (a converted model's path
// excepted: each shard writes its own copy), runs present in two shards, and gaps: with shard.json
// in every directory, a missing shard or prompt; without, prompt indices that are not 0..max or a
// pair missing a prompt that another pair has.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "harness/compare/run_result.h"
#include "harness/report/shard.h"

namespace parity::report {

struct ShardOutputs {
  std::string name;                // the directory, for messages
  compare::RunOutputs outputs;
  std::optional<ShardInfo> info;   // DIR/shard.json
};

compare::RunOutputs MergeShards(const std::vector<ShardOutputs>& shards);

// Reads every directory (summary.json, steps.jsonl, shard.json) and merges them.
compare::RunOutputs MergeShardDirs(const std::vector<std::string>& dirs);

// (A pair's aggregate over its runs: compare::SummarizePair, compare/metrics.h, shared with the
// comparison itself.)

}  // namespace parity::report
