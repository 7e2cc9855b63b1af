#include "harness/io/gguf.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/core/error.h"

namespace parity::io {
namespace {

constexpr uint64_t kMaxDims = 4;  // GGML_MAX_DIMS

// Sequential reads with every length checked against what is left of the file.
class Cursor {
 public:
  Cursor(const std::string& path) : path_(path), in_(path, std::ios::binary | std::ios::ate) {
    if (!in_) throw InputError(fmt::format("{}: cannot open", path));
    size_ = static_cast<uint64_t>(in_.tellg());
    in_.seekg(0);
  }
  uint64_t size() const { return size_; }
  uint64_t position() const { return position_; }
  uint64_t remaining() const { return size_ - position_; }

  void Read(void* out, uint64_t bytes, const std::string& what) {
    if (bytes > remaining()) {
      throw InputError(fmt::format("{}: truncated: {} needs {} bytes at offset {}, the file has {}",
                                   path_, what, bytes, position_, remaining()));
    }
    in_.read(static_cast<char*>(out), static_cast<std::streamsize>(bytes));
    if (!in_) throw InputError(fmt::format("{}: read failed at offset {}", path_, position_));
    position_ += bytes;
  }
  template <typename T>
  T Get(const std::string& what) {
    T value;
    Read(&value, sizeof(T), what);
    return value;
  }
  std::string String(const std::string& what) {
    const uint64_t length = Get<uint64_t>(what + " length");
    if (length > remaining()) {
      throw InputError(fmt::format("{}: {} claims {} bytes at offset {}, only {} remain", path_, what,
                                   length, position_, remaining()));
    }
    std::string text(length, '\0');
    Read(text.data(), length, what);
    return text;
  }

 private:
  std::string path_;
  std::ifstream in_;
  uint64_t size_ = 0;
  uint64_t position_ = 0;
};

uint64_t ScalarSize(GgufType type) {
  switch (type) {
    case GgufType::kU8: case GgufType::kI8: case GgufType::kBool: return 1;
    case GgufType::kU16: case GgufType::kI16: return 2;
    case GgufType::kU32: case GgufType::kI32: case GgufType::kF32: return 4;
    case GgufType::kU64: case GgufType::kI64: case GgufType::kF64: return 8;
    case GgufType::kString: return 8;  // at least the length
    case GgufType::kArray: return 12;  // at least element type + count
  }
  return 0;
}

GgufType CheckType(uint32_t raw, const std::string& path, const std::string& key) {
  if (raw > 12) {
    throw InputError(fmt::format("{}: metadata '{}': unknown value type {} (GGUF types are 0..12)",
                                 path, key, raw));
  }
  return static_cast<GgufType>(raw);
}

nlohmann::json ReadScalar(Cursor& cursor, GgufType type, const std::string& what) {
  switch (type) {
    case GgufType::kU8: return cursor.Get<uint8_t>(what);
    case GgufType::kI8: return cursor.Get<int8_t>(what);
    case GgufType::kU16: return cursor.Get<uint16_t>(what);
    case GgufType::kI16: return cursor.Get<int16_t>(what);
    case GgufType::kU32: return cursor.Get<uint32_t>(what);
    case GgufType::kI32: return cursor.Get<int32_t>(what);
    case GgufType::kF32: return cursor.Get<float>(what);
    case GgufType::kBool: return cursor.Get<uint8_t>(what) != 0;
    case GgufType::kString: return cursor.String(what);
    case GgufType::kU64: return cursor.Get<uint64_t>(what);
    case GgufType::kI64: return cursor.Get<int64_t>(what);
    case GgufType::kF64: return cursor.Get<double>(what);
    case GgufType::kArray: break;
  }
  return nullptr;
}

GgufValue ReadValue(Cursor& cursor, GgufType type, const std::string& path, const std::string& key) {
  GgufValue value;
  value.type = type;
  if (type != GgufType::kArray) {
    value.value = ReadScalar(cursor, type, fmt::format("metadata '{}'", key));
    return value;
  }
  value.element_type = CheckType(cursor.Get<uint32_t>("array type"), path, key);
  const uint64_t count = cursor.Get<uint64_t>("array length");
  if (count > cursor.remaining() / ScalarSize(value.element_type)) {
    throw InputError(fmt::format("{}: metadata '{}': array of {} {} values does not fit in the {} "
                                 "bytes left",
                                 path, key, count, GgufTypeName(value.element_type),
                                 cursor.remaining()));
  }
  value.value = nlohmann::json::array();
  for (uint64_t i = 0; i < count; ++i) {
    if (value.element_type == GgufType::kArray) {
      value.value.push_back(ReadValue(cursor, GgufType::kArray, path, key).value);
    } else {
      value.value.push_back(ReadScalar(cursor, value.element_type, fmt::format("metadata '{}'", key)));
    }
  }
  return value;
}

}  // namespace

const char* GgufTypeName(GgufType type) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  auto index = static_cast<uint32_t>(type);
  return index < 13 ? names[index] : "?";
}

GgufFile GgufFile::Open(const std::string& path) {
  Cursor cursor(path);
  GgufFile file;
  file.path_ = path;
  file.file_size_ = cursor.size();
  char magic[4] = {};
  if (cursor.size() < 4) throw InputError(fmt::format("{}: not a GGUF file (too short)", path));
  cursor.Read(magic, 4, "magic");
  if (std::string(magic, 4) != "GGUF") {
    throw InputError(fmt::format("{}: not a GGUF file (magic '{}', expected 'GGUF')", path,
                                 nlohmann::json(std::string(magic, 4)).dump(
                                     -1, ' ', true, nlohmann::json::error_handler_t::replace)));
  }
  file.version_ = cursor.Get<uint32_t>("version");
  if (file.version_ != 2 && file.version_ != 3) {
    throw InputError(fmt::format("{}: GGUF version {}; Parity reads versions 2 and 3", path,
                                 file.version_));
  }
  const uint64_t tensor_count = cursor.Get<uint64_t>("tensor count");
  const uint64_t kv_count = cursor.Get<uint64_t>("metadata count");
  // Each entry takes at least 12 bytes (key length + type); each tensor info at least 24.
  if (kv_count > cursor.remaining() / 12 || tensor_count > cursor.remaining() / 24) {
    throw InputError(fmt::format("{}: {} metadata entries and {} tensors cannot fit in {} bytes",
                                 path, kv_count, tensor_count, cursor.size()));
  }
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key = cursor.String(fmt::format("metadata key {}", i));
    GgufType type = CheckType(cursor.Get<uint32_t>("value type"), path, key);
    for (const auto& [existing, value] : file.metadata_) {
      if (existing == key) throw InputError(fmt::format("{}: metadata '{}' appears twice", path, key));
    }
    file.metadata_.emplace_back(key, ReadValue(cursor, type, path, key));
  }
  if (const GgufValue* alignment = file.Find("general.alignment")) {
    if (alignment->type != GgufType::kU32 || alignment->value.get<uint64_t>() == 0 ||
        (alignment->value.get<uint64_t>() & (alignment->value.get<uint64_t>() - 1)) != 0) {
      throw InputError(fmt::format("{}: general.alignment must be a u32 power of two, got {} {}",
                                   path, GgufTypeName(alignment->type), alignment->value.dump()));
    }
    file.alignment_ = alignment->value.get<uint64_t>();
  }

  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo tensor;
    tensor.name = cursor.String(fmt::format("tensor name {}", i));
    if (file.tensor_index_.count(tensor.name)) {
      throw InputError(fmt::format("{}: tensor '{}' appears twice", path, tensor.name));
    }
    const uint32_t n_dims = cursor.Get<uint32_t>("n_dims");
    if (n_dims == 0 || n_dims > kMaxDims) {
      throw InputError(fmt::format("{}: tensor '{}': {} dimensions (expected 1..{})", path,
                                   tensor.name, n_dims, kMaxDims));
    }
    tensor.n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = cursor.Get<uint64_t>("dimension");
      if (dim == 0 || dim > (uint64_t{1} << 40) ||
          static_cast<uint64_t>(tensor.n_elements) > (uint64_t{1} << 62) / dim) {
        throw InputError(fmt::format("{}: tensor '{}': dimension {} is {} (must be positive and the "
                                     "product must not overflow)",
                                     path, tensor.name, d, dim));
      }
      tensor.dims.push_back(static_cast<int64_t>(dim));
      tensor.n_elements *= static_cast<int64_t>(dim);
    }
    const uint32_t type_id = cursor.Get<uint32_t>("tensor type");
    tensor.type = FindGgmlType(type_id);
    if (tensor.type == nullptr) {
      throw InputError(fmt::format("{}: tensor '{}': unknown ggml type {}", path, tensor.name, type_id));
    }
    if (tensor.dims[0] % tensor.type->block_size != 0) {
      throw InputError(fmt::format("{}: tensor '{}': innermost dimension {} is not a multiple of the "
                                   "{} block size {}",
                                   path, tensor.name, tensor.dims[0], tensor.type->name,
                                   tensor.type->block_size));
    }
    // Bounded by the file before multiplying: 2^62 F32 values would wrap around to 0 bytes.
    const uint64_t blocks = static_cast<uint64_t>(tensor.n_elements / tensor.type->block_size);
    if (blocks > file.file_size_ / static_cast<uint64_t>(tensor.type->type_size)) {
      throw InputError(fmt::format("{}: tensor '{}': {} {} values need more bytes than the whole "
                                   "file has ({})",
                                   path, tensor.name, tensor.n_elements, tensor.type->name,
                                   file.file_size_));
    }
    tensor.n_bytes = blocks * static_cast<uint64_t>(tensor.type->type_size);
    tensor.offset = cursor.Get<uint64_t>("tensor offset");
    file.tensor_index_[tensor.name] = file.tensors_.size();
    file.tensors_.push_back(std::move(tensor));
  }
  file.data_offset_ = (cursor.position() + file.alignment_ - 1) / file.alignment_ * file.alignment_;
  const uint64_t data_size = file.file_size_ >= file.data_offset_ ? file.file_size_ - file.data_offset_ : 0;

  std::vector<const GgufTensorInfo*> by_offset;
  for (const GgufTensorInfo& tensor : file.tensors_) {
    if (tensor.offset % file.alignment_ != 0) {
      throw InputError(fmt::format("{}: tensor '{}': offset {} is not a multiple of the alignment {}",
                                   path, tensor.name, tensor.offset, file.alignment_));
    }
    if (tensor.offset > data_size || tensor.n_bytes > data_size - tensor.offset) {
      throw InputError(fmt::format("{}: tensor '{}': bytes [{}, {}) of the data area, which has {} "
                                   "bytes (file truncated?)",
                                   path, tensor.name, tensor.offset, tensor.offset + tensor.n_bytes,
                                   data_size));
    }
    by_offset.push_back(&tensor);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto* a, const auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i - 1]->offset + by_offset[i - 1]->n_bytes > by_offset[i]->offset) {
      throw InputError(fmt::format("{}: tensors '{}' and '{}' overlap in the data area", path,
                                   by_offset[i - 1]->name, by_offset[i]->name));
    }
  }
  return file;
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  for (const auto& [name, value] : metadata_) {
    if (name == key) return &value;
  }
  return nullptr;
}

const GgufTensorInfo* GgufFile::FindTensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::vector<uint8_t> GgufFile::ReadRaw(const GgufTensorInfo& tensor) const {
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(data_offset_ + tensor.offset));
  std::vector<uint8_t> bytes(tensor.n_bytes);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!in) throw InputError(fmt::format("{}: cannot read tensor '{}'", path_, tensor.name));
  return bytes;
}

std::vector<float> GgufFile::ReadFloat(const GgufTensorInfo& tensor) const {
  std::vector<uint8_t> bytes = ReadRaw(tensor);
  std::vector<float> out(static_cast<size_t>(tensor.n_elements));
  try {
    DequantizeRow(*tensor.type, bytes.data(), tensor.n_elements, out.data());
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: tensor '{}': {}", path_, tensor.name, e.what()));
  }
  return out;
}

nlohmann::json SummarizeGguf(const GgufFile& file) {
  nlohmann::json metadata = nlohmann::json::object();
  for (const auto& [key, value] : file.metadata()) {
    nlohmann::json entry = {{"type", GgufTypeName(value.type)}};
    if (value.type == GgufType::kArray) {
      entry["element_type"] = GgufTypeName(value.element_type);
      entry["length"] = value.value.size();
      if (value.value.size() <= 16) entry["value"] = value.value;
    } else {
      entry["value"] = value.value;
    }
    metadata[key] = entry;
  }
  nlohmann::json tensors = nlohmann::json::array();
  std::map<std::string, nlohmann::json> by_type;
  for (const GgufTensorInfo& tensor : file.tensors()) {
    tensors.push_back({{"name", tensor.name},
                       {"type", tensor.type->name},
                       {"shape", tensor.TorchShape()},
                       {"bytes", tensor.n_bytes}});
    nlohmann::json& row = by_type[tensor.type->name];
    if (row.is_null()) {
      row = {{"tensors", 0}, {"elements", 0}, {"bytes", 0},
             {"block_size", tensor.type->block_size}, {"block_bytes", tensor.type->type_size},
             {"bits_per_weight", BitsPerWeight(*tensor.type)},
             {"dequantizable", tensor.type->dequantizable}};
    }
    row["tensors"] = row["tensors"].get<int64_t>() + 1;
    row["elements"] = row["elements"].get<int64_t>() + tensor.n_elements;
    row["bytes"] = row["bytes"].get<uint64_t>() + tensor.n_bytes;
  }
  int64_t elements = 0;
  uint64_t bytes = 0;
  for (const GgufTensorInfo& tensor : file.tensors()) {
    elements += tensor.n_elements;
    bytes += tensor.n_bytes;
  }
  return {{"path", file.path()},
          {"format", "gguf"},
          {"version", file.version()},
          {"alignment", file.alignment()},
          {"file_bytes", file.file_size()},
          {"tensor_count", file.tensors().size()},
          {"parameters", elements},
          {"tensor_bytes", bytes},
          {"bits_per_weight", elements ? 8.0 * double(bytes) / double(elements) : 0.0},
          {"types", by_type},
          {"metadata", metadata},
          {"tensors", tensors}};
}

std::string GgufSummaryText(const GgufFile& file) {
  nlohmann::json summary = SummarizeGguf(file);
  std::ostringstream out;
  out << fmt::format("{}: GGUF v{}, alignment {}, {} tensors, {} parameters, {:.2f} bits per weight\n",
                     file.path(), file.version(), file.alignment(), file.tensors().size(),
                     summary["parameters"].get<int64_t>(), summary["bits_per_weight"].get<double>());
  out << "types:\n";
  for (const auto& [name, row] : summary["types"].items()) {
    out << fmt::format("  {:<8} {:>4} tensors {:>14} values  block {:>3} values / {:>3} bytes  "
                       "{:.4g} bits/weight{}\n",
                       name, row["tensors"].get<int64_t>(), row["elements"].get<int64_t>(),
                       row["block_size"].get<int64_t>(), row["block_bytes"].get<int64_t>(),
                       row["bits_per_weight"].get<double>(),
                       row["dequantizable"].get<bool>() ? "" : "  (Parity cannot dequantize)");
  }
  out << "metadata:\n";
  for (const auto& [key, value] : file.metadata()) {
    std::string shown;
    if (value.type == GgufType::kArray) {
      shown = fmt::format("[{} x {}]", value.value.size(), GgufTypeName(value.element_type));
    } else {
      shown = value.value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      if (shown.size() > 80) shown = shown.substr(0, 77) + "...";
    }
    out << fmt::format("  {:<40} {:<6} {}\n", key, GgufTypeName(value.type), shown);
  }
  out << "tensors:\n";
  for (const GgufTensorInfo& tensor : file.tensors()) {
    out << fmt::format("  {:<40} {:<6} [{}] {} bytes\n", tensor.name, tensor.type->name,
                       fmt::join(tensor.TorchShape(), ", "), tensor.n_bytes);
  }
  return out.str();
}

}  // namespace parity::io
