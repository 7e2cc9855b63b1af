#include "harness/model/gguf_checkpoint.h"

#include <filesystem>
#include <fstream>
#include <memory>

#include <fmt/format.h>

#include "harness/core/error.h"
#include "harness/io/gguf.h"
#include "harness/io/gguf_tensor.h"
#include "harness/model/arch.h"
#include "harness/model/gguf_model.h"

namespace parity::model {

bool IsGgufFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::string(magic, 4) == "GGUF";
}

io::Checkpoint OpenGgufCheckpoint(const std::string& path) {
  auto file = std::make_shared<io::GgufFile>(io::GgufFile::Open(path));
  nlohmann::json config_json = GgufConfigJson(*file);
  const ModelConfig config = ParseConfig(config_json, path + " (metadata)");
  const bool permuted = SpecOf(config.arch).gguf.permuted_qk;
  const std::string file_name = std::filesystem::path(path).filename().string();
  std::vector<io::ExternalTensor> tensors;
  for (const io::GgufTensorInfo& info : file->tensors()) {
    io::ExternalTensor tensor;
    tensor.file = file_name;
    tensor.source_name = info.name;
    tensor.stored_type = info.type->name;
    tensor.info.dtype = io::DType::kF32;
    tensor.info.shape = info.TorchShape();
    tensor.info.name = info.name;
    int64_t heads = 0;  // rows to un-permute per head group, 0: none
    if (const auto parsed = ParseGgufTensorName(info.name)) {
      if (FindSpec(config.arch, parsed->role) != nullptr) {
        tensor.info.name = TensorName(config, parsed->role, parsed->layer);
      }
      if (permuted && (parsed->role == Role::kQ || parsed->role == Role::kQBias)) heads = config.num_heads;
      if (permuted && (parsed->role == Role::kK || parsed->role == Role::kKBias)) heads = config.num_kv_heads;
    }
    const io::GgufTensorInfo* raw = &info;
    tensor.load = [file, raw, heads]() {
      at::Tensor value = io::GgufTensorToTorch(*file, *raw);
      if (heads == 0) return value;
      try {
        return io::UnpermuteLlamaQK(value, heads);
      } catch (const InputError& e) {
        throw InputError(fmt::format("{}: tensor '{}': {}", file->path(), raw->name, e.what()));
      }
    };
    tensors.push_back(std::move(tensor));
  }
  return io::Checkpoint::FromExternal(path, std::move(config_json), std::move(tensors),
                                      file->file_size());
}

io::Checkpoint OpenCheckpointPath(const std::string& path) {
  if (IsGgufFile(path)) return OpenGgufCheckpoint(path);
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) {
    throw InputError(fmt::format("{}: neither a checkpoint directory nor a GGUF file (it does not "
                                 "start with the 'GGUF' magic)", path));
  }
  return io::Checkpoint::Open(path);
}

}  // namespace parity::model
