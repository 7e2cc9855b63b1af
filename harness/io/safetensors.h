// Reading and writing the safetensors format, validated the way the reference Rust library does it
// (see BRIEF.md): 8-byte little-endian header length N <= 100,000,000, N bytes of JSON object, then the
// data area. Entries sorted by offset must tile the data area exactly; sizes are overflow-checked.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/Tensor.h>

#include "harness/io/dtype.h"

namespace parity::io {

// One entry of a safetensors header.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // empty for a scalar
  uint64_t begin = 0;          // byte offsets [begin, end) relative to the data area
  uint64_t end = 0;

  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// A read-only memory-mapped safetensors file. Tensors handed out are views of the mapping (no copy);
// they keep the mapping alive through a shared reference, so they may outlive this object.
class SafetensorsFile {
 public:
  // Opens and validates `path`. Throws InputError naming the file (and the tensor, where one is at
  // fault) for every malformed input: truncated file, header length beyond the file or over 100 MB,
  // header not a JSON object, unknown dtype, size/offset disagreement, gaps, overlaps, out-of-range
  // offsets, duplicate names.
  static SafetensorsFile Open(const std::string& path);

  const std::string& path() const { return path_; }
  // Entries in data-offset order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // The optional "__metadata__" map.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // nullptr when absent.
  const TensorInfo* Find(const std::string& name) const;
  bool Contains(const std::string& name) const { return Find(name) != nullptr; }
  // A CPU tensor viewing the mapped bytes. The mapping is read-only (PROT_READ): writing to the
  // tensor crashes with SIGSEGV, so clone() before modifying. Empty tensors, and tensors whose address
  // is not a multiple of their element size (possible in files not written by Python), are copies.
  // FP8 tensors come back as kByte with the same shape (one byte per element). BOOL bytes other than
  // 0/1 throw. Throws InputError naming the file when the tensor is absent.
  at::Tensor Get(const std::string& name) const;
  // The raw bytes of a tensor.
  std::pair<const uint8_t*, uint64_t> Bytes(const std::string& name) const;
  // Total size of the file in bytes.
  uint64_t file_size() const { return file_size_; }

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> mapping_;
  const uint8_t* data_ = nullptr;  // start of the data area
  uint64_t file_size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: its name, its values (any CPU tensor; made contiguous on write) and, for FP8, the
// dtype to record for raw bytes.
struct NamedTensor {
  std::string name;
  at::Tensor tensor;
  // The dtype to record. Unset: derived from tensor.scalar_type(). Needed for FP8 under libtorch 1.13,
  // where the tensor holds raw bytes (kByte) and this says kF8E4M3 or kF8E5M2.
  std::optional<DType> dtype = std::nullopt;
};

// Writes a safetensors file atomically, in the order given, header padded with spaces to a multiple of
// 8 bytes as the Python library does, so that files load in Python's `safetensors`. Throws InputError
// on duplicate names or an unsupported dtype. Python's save_file sorts the tensors first (see
// InPythonWriteOrder); given tensors in that order and at most one metadata key (HF writes
// {"format": "pt"}), the bytes are identical to save_file's (tested against safetensors 0.8.0).
void WriteSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// `tensors` in the order Python's safetensors writes them: by dtype, I64 F64 F32 I32 BF16 F16 I16
// F8_E4M3 F8_E5M2 I8 U8 BOOL (the reverse of its Dtype enum, which keeps every tensor aligned),
// then by name. Throws InputError for an unsupported dtype.
std::vector<NamedTensor> InPythonWriteOrder(std::vector<NamedTensor> tensors);

}  // namespace parity::io
