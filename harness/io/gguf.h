// GGUF (llama.cpp's checkpoint format), version 2 and 3, read-only. Layout, little-endian:
//   "GGUF", u32 version, u64 tensor_count, u64 kv_count;
//   kv_count x (string key, u32 value type, value), types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32,
//     6 f32, 7 bool, 8 string (u64 length + UTF-8 bytes), 9 array (u32 element type, u64 count,
//     elements), 10 u64, 11 i64, 12 f64;
//   tensor_count x (string name, u32 n_dims, u64 dims[n_dims] innermost first, u32 ggml type,
//     u64 offset relative to the data area);
//   padding to `general.alignment` (default 32), then the data area; each tensor's offset is a
//   multiple of the alignment.
// Dequantization is in ggml_quants.h. Mapping GGUF tensor names to Parity's roles (token_embd,
// blk.N.attn_q, ...) belongs to the architecture registry (harness/archs) and is not done here.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/io/ggml_quants.h"

namespace parity::io {

// GGUF metadata value types.
enum class GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8,
  kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
const char* GgufTypeName(GgufType type);

struct GgufValue {
  GgufType type = GgufType::kU8;
  GgufType element_type = GgufType::kU8;  // for arrays
  nlohmann::json value;                   // numbers, bools, strings; arrays as JSON arrays
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // GGUF order: innermost (contiguous) first, e.g. [hidden, vocab]
  const GgmlTypeInfo* type = nullptr;
  uint64_t offset = 0;        // relative to the data area
  int64_t n_elements = 0;
  uint64_t n_bytes = 0;
  // PyTorch order (outermost first), e.g. [vocab, hidden]: what a safetensors checkpoint stores.
  std::vector<int64_t> TorchShape() const { return {dims.rbegin(), dims.rend()}; }
};

class GgufFile {
 public:
  // Reads and validates the header, metadata and tensor infos of PATH (not the tensor data): every
  // size against the file length, known value and tensor types, aligned and non-overlapping tensor
  // data inside the file. Throws InputError naming the file, the key or tensor, and the problem.
  static GgufFile Open(const std::string& path);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute start of the data area
  uint64_t file_size() const { return file_size_; }
  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* Find(const std::string& key) const;
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(const std::string& name) const;

  // The tensor's raw bytes.
  std::vector<uint8_t> ReadRaw(const GgufTensorInfo& tensor) const;
  // The tensor dequantized to FP32, flat in GGUF order (innermost dimension fastest).
  std::vector<float> ReadFloat(const GgufTensorInfo& tensor) const;

 private:
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  uint64_t file_size_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// What `parity inspect FILE.gguf` prints: version, alignment, metadata (long arrays abbreviated),
// tensors with type, shape, bytes, and per type: tensor count, elements, bytes, block size, bits per
// weight.
nlohmann::json SummarizeGguf(const GgufFile& file);
std::string GgufSummaryText(const GgufFile& file);

}  // namespace parity::io
