// The safetensors writer. Layout: u64 LE header length N, N bytes of compact JSON padded with spaces
// to a multiple of 8, then each tensor's bytes back to back.
//
// Order: entries and data follow the caller's order exactly. Python's safetensors instead sorts by
// (dtype alignment descending, name) before writing, which keeps every tensor aligned to its element
// size; pass tensors through InPythonWriteOrder and the file is byte-identical to what save_file
// writes for the same tensors and a metadata map of at most one key (Python serialises its metadata
// HashMap in no fixed order). Each entry is written as {"dtype":..,"shape":..,"data_offsets":..} and
// "__metadata__" comes first, both as in Python. Misaligned tensors are legal; the reader copies them
// (see Get()).
#include <algorithm>
#include <cstring>
#include <set>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/core/atomic_file.h"
#include "harness/core/error.h"
#include "harness/io/safetensors.h"

namespace parity::io {
namespace {

// One tensor ready to write: its recorded dtype and a contiguous CPU copy (or the input itself).
struct PreparedTensor {
  const NamedTensor* source = nullptr;
  DType dtype = DType::kF32;
  at::Tensor data;
  uint64_t begin = 0;
  uint64_t end = 0;
};

bool IsFp8(DType dtype) { return dtype == DType::kF8E4M3 || dtype == DType::kF8E5M2; }

DType ResolveDType(const std::string& path, const NamedTensor& named) {
  if (!named.tensor.defined()) {
    throw InputError(fmt::format("{}: tensor '{}' is undefined", path, named.name));
  }
  const at::ScalarType type = named.tensor.scalar_type();
  DType natural = DType::kU8;
  try {
    natural = FromScalarType(type);
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: tensor '{}': {}", path, named.name, e.what()));
  }
  if (!named.dtype || *named.dtype == natural) return natural;
  // FP8 under libtorch 1.13: raw bytes (kByte, FromScalarType -> U8) labelled by the caller.
  if (IsFp8(*named.dtype) && type == at::kByte) return *named.dtype;
  throw InputError(fmt::format("{}: tensor '{}': cannot record a {} tensor as {}{}", path,
                               named.name, c10::toString(type), DTypeName(*named.dtype),
                               IsFp8(*named.dtype) ? " (FP8 needs its raw bytes as kByte)" : ""));
}

std::vector<PreparedTensor> Prepare(const std::string& path,
                                    const std::vector<NamedTensor>& tensors) {
  std::set<std::string> names;
  std::vector<PreparedTensor> prepared;
  prepared.reserve(tensors.size());
  uint64_t offset = 0;
  for (const NamedTensor& named : tensors) {
    if (named.name == "__metadata__") {
      throw InputError(fmt::format(
          "{}: tensor name '__metadata__' is reserved for the metadata map", path));
    }
    if (!names.insert(named.name).second) {
      throw InputError(fmt::format("{}: tensor name '{}' is given twice", path, named.name));
    }
    PreparedTensor p;
    p.source = &named;
    p.dtype = ResolveDType(path, named);
    p.data = named.tensor.device().is_cpu() ? named.tensor : named.tensor.cpu();
    p.data = p.data.contiguous();
    p.begin = offset;
    p.end = offset + static_cast<uint64_t>(p.data.numel()) *
                         static_cast<uint64_t>(p.data.element_size());
    offset = p.end;
    prepared.push_back(std::move(p));
  }
  return prepared;
}

std::string HeaderText(const std::string& path, const std::vector<PreparedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps insertion order; the plain json type would sort the keys.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json map = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) map[key] = value;
    header["__metadata__"] = std::move(map);
  }
  for (const PreparedTensor& t : tensors) {
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = std::string(DTypeName(t.dtype));
    entry["shape"] = t.data.sizes().vec();
    entry["data_offsets"] = {t.begin, t.end};
    header[t.source->name] = std::move(entry);
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format(
        "{}: a tensor name or metadata entry is not valid UTF-8: {}", path, e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

// Rank in Python's write order: the position in safetensors' Rust `Dtype` enum (BOOL, U8, I8,
// F8_E5M2, F8_E4M3, I16, F16, BF16, I32, F32, F64, I64, leaving out dtypes we do not handle), which
// save_file sorts in descending order.
int PythonDTypeRank(DType dtype) {
  switch (dtype) {
    case DType::kBool: return 0;
    case DType::kU8: return 1;
    case DType::kI8: return 2;
    case DType::kF8E5M2: return 3;
    case DType::kF8E4M3: return 4;
    case DType::kI16: return 5;
    case DType::kF16: return 6;
    case DType::kBF16: return 7;
    case DType::kI32: return 8;
    case DType::kF32: return 9;
    case DType::kF64: return 10;
    case DType::kI64: return 11;
  }
  return 0;
}

}  // namespace

std::vector<NamedTensor> InPythonWriteOrder(std::vector<NamedTensor> tensors) {
  std::vector<std::pair<int, size_t>> keys;  // (rank, position)
  for (size_t i = 0; i < tensors.size(); ++i) {
    keys.emplace_back(PythonDTypeRank(ResolveDType("InPythonWriteOrder", tensors[i])), i);
  }
  std::sort(keys.begin(), keys.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first > b.first;
    return tensors[a.second].name < tensors[b.second].name;
  });
  std::vector<NamedTensor> sorted;
  sorted.reserve(tensors.size());
  for (const auto& [rank, i] : keys) sorted.push_back(std::move(tensors[i]));
  return sorted;
}

void WriteSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<PreparedTensor> prepared = Prepare(path, tensors);
  const std::string header = HeaderText(path, prepared, metadata);
  const uint64_t header_length = header.size();
  unsigned char length_bytes[8];
  for (int i = 0; i < 8; ++i) length_bytes[i] = static_cast<unsigned char>(header_length >> (8 * i));

  AtomicFile file(path);
  file.Write(length_bytes, sizeof(length_bytes));
  file.Write(header);
  for (const PreparedTensor& t : prepared) {
    if (t.end > t.begin) file.Write(t.data.data_ptr(), t.end - t.begin);
  }
  file.Commit();
}

}  // namespace parity::io
