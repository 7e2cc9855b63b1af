// Writing GGUF version 3 (the layout gguf.h reads): metadata in the order added, tensor infos in the
// order added, each tensor's data at a multiple of the alignment (general.alignment, default 32;
// this writer always uses 32 and does not write the key), zero padding between tensors, as gguf-py's
// GGUFWriter writes it. The file is written atomically (a temporary file renamed into place).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "harness/io/gguf.h"

namespace parity::io {

class GgufWriter {
 public:
  // Scalars and arrays of metadata. A key added twice is a logic error (throws std::logic_error).
  void AddString(const std::string& key, const std::string& value);
  void AddU32(const std::string& key, uint32_t value);
  void AddI32(const std::string& key, int32_t value);
  void AddF32(const std::string& key, float value);
  void AddBool(const std::string& key, bool value);
  void AddStringArray(const std::string& key, const std::vector<std::string>& values);
  void AddF32Array(const std::string& key, const std::vector<float>& values);
  void AddI32Array(const std::string& key, const std::vector<int32_t>& values);
  // Any value as GgufFile reads it (copying another file's metadata); nested arrays are refused.
  void AddValue(const std::string& key, GgufValue value);

  // A tensor of PyTorch shape `torch_shape` (outermost first; GGUF stores it reversed) already
  // encoded as `type` (QuantizeRow): bytes.size() must be numel / block_size * type_size.
  void AddTensor(const std::string& name, const std::vector<int64_t>& torch_shape,
                 const GgmlTypeInfo& type, std::vector<uint8_t> bytes);

  // Writes the file atomically. Throws InputError naming the path when it cannot be written.
  void Write(const std::string& path) const;

  size_t tensor_count() const { return tensors_.size(); }

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;  // GGUF order (innermost first)
    const GgmlTypeInfo* type;
    std::vector<uint8_t> bytes;
  };
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace parity::io
