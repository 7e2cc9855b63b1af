// A Hugging Face checkpoint directory: config.json, one model.safetensors or shards listed in
// model.safetensors.index.json, tokenizer and generation files beside them.
//
// A checkpoint can also be presented from another format (a GGUF file, model/gguf_checkpoint.h):
// then a config.json-shaped object made from its metadata, and tensors under their Hugging Face
// names that are read (dequantized, reordered) by a function when asked for. Everything that takes a
// Checkpoint (inspect, diff-weights, the forward pass) works on such a view unchanged.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <nlohmann/json.hpp>

#include "harness/io/safetensors.h"

namespace parity::io {

// A tensor of a checkpoint presented from another format.
struct ExternalTensor {
  TensorInfo info;          // its Hugging Face name, dtype and shape as Get returns it (offsets 0)
  std::string file;         // the file holding it, as ShardOf names it (e.g. "model.gguf")
  std::string source_name;  // its name in that file (e.g. "blk.0.attn_q.weight")
  std::string stored_type;  // how that file stores it (e.g. "Q8_0")
  std::function<at::Tensor()> load;
};

class Checkpoint {
 public:
  // Opens `dir`. Uses model.safetensors.index.json when present (every shard it names must exist,
  // and every tensor it maps must be in that shard), else model.safetensors. Throws InputError naming
  // the file and the tensor at fault. A tensor present in two shards is an error.
  static Checkpoint Open(const std::string& dir);
  // A checkpoint presented from another format: `path` (the file), `config_json` made from its
  // metadata, `tensors` with distinct names, `bytes_on_disk` the file's size.
  static Checkpoint FromExternal(const std::string& path, nlohmann::json config_json,
                                 std::vector<ExternalTensor> tensors, uint64_t bytes_on_disk);

  // "safetensors", or the external format's name given by the view ("gguf").
  const std::string& format() const { return format_; }
  // Where the config came from: dir/config.json, or "<file> (metadata)".
  std::string config_source() const;
  // The tensor as the external file names and stores it; nullptr for safetensors tensors.
  const ExternalTensor* External(const std::string& name) const;

  const std::string& dir() const { return dir_; }
  // config.json, parsed; throws InputError when missing or not JSON.
  const nlohmann::json& config_json() const { return config_json_; }
  // Tensor names in sorted order.
  std::vector<std::string> names() const;
  bool Contains(const std::string& name) const;
  const TensorInfo& Info(const std::string& name) const;
  // The shard file name (relative to dir) holding `name`.
  const std::string& ShardOf(const std::string& name) const;
  // A view of the mapped tensor (see SafetensorsFile::Get).
  at::Tensor Get(const std::string& name) const;
  // Shard file names the index uses, sorted (HF names shards model-0000k-of-0000n, so this is shard
  // order); a single "model.safetensors" when not sharded.
  const std::vector<std::string>& shard_files() const { return shard_files_; }
  const SafetensorsFile& shard(const std::string& file) const;
  bool sharded() const { return sharded_; }
  // Bytes of all shard files together (the external file's size for an external view).
  uint64_t bytes_on_disk() const;
  // Sum over tensors of numel().
  int64_t parameter_count() const;
  // The index file's JSON (empty object when not sharded).
  const nlohmann::json& index_json() const { return index_json_; }

 private:
  std::string dir_;
  nlohmann::json config_json_;
  nlohmann::json index_json_ = nlohmann::json::object();
  bool sharded_ = false;
  std::vector<std::string> shard_files_;
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards_;  // by file name
  std::map<std::string, std::string> tensor_to_shard_;
  std::string format_ = "safetensors";
  std::map<std::string, ExternalTensor> external_;  // by Hugging Face name (external views only)
  uint64_t external_bytes_ = 0;
};

// Reads a JSON file; throws InputError naming the file when it is missing or not valid JSON.
nlohmann::json ReadJsonFile(const std::string& path);

}  // namespace parity::io
