// What `parity inspect` reports about a checkpoint: its architecture and sizes from config.json, the
// dtypes and the parameter count actually in its tensors, and whether they agree with the config
// and with the architecture's tensor table.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/model/config.h"

namespace parity::io {
class Checkpoint;
}

namespace parity::model {

struct CheckpointSummary {
  std::string dir;
  bool config_only = false;         // a directory with config.json and no weights: sizes and counts only
  ModelConfig config;
  std::vector<std::string> architectures;  // config.json's `architectures`, as written
  ParameterCount from_config;
  int64_t tensor_parameters = 0;    // sum of numel over the tensors in the files
  // What the tensors should sum to: the config's total, plus V * D when embeddings are tied and the
  // file stores the LM head anyway (HF may save the shared matrix twice).
  int64_t expected_tensor_parameters = 0;
  bool counts_agree = false;        // tensor_parameters == expected_tensor_parameters
  std::map<std::string, int64_t> dtype_tensors;     // "BF16" -> number of tensors
  std::map<std::string, int64_t> dtype_parameters;  // "BF16" -> number of elements
  int64_t num_tensors = 0;
  int64_t num_shards = 0;
  bool sharded = false;
  uint64_t bytes_on_disk = 0;
  // Against the architecture's table (ExpectedTensors): each entry is a tensor name, with the
  // expected and actual shapes for shape mismatches.
  std::vector<std::string> missing;          // required by the table, absent from the files
  std::vector<std::string> unexpected;       // in the files, not in the table for this config
  std::vector<std::string> shape_mismatches; // "name: expected [a, b], got [c, d]"
  // Tensors of a VL checkpoint outside the language model (vision tower, projector): listed, ignored.
  std::vector<std::string> ignored;
  int64_t ignored_parameters = 0;

  bool table_agrees() const { return missing.empty() && unexpected.empty() && shape_mismatches.empty(); }
  nlohmann::json ToJson() const;
  std::string ToText() const;
};

// Reads config.json (throws InputError listing its problems) and the tensor headers (no tensor data
// is read).
CheckpointSummary SummarizeCheckpoint(const io::Checkpoint& checkpoint);
// The same for a directory (or config.json path) without weights: config, sizes, parameter counts.
CheckpointSummary SummarizeConfigOnly(const std::string& dir_or_config);
// True when `dir` holds no weights (neither model.safetensors nor an index), only a config.
bool IsConfigOnly(const std::string& dir);

// "[4096, 128]".
std::string FormatShape(const std::vector<int64_t>& shape);

}  // namespace parity::model
