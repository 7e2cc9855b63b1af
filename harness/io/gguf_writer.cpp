#include "harness/io/gguf_writer.h"

#include <stdexcept>

#include <fmt/format.h>

#include "harness/core/atomic_file.h"
#include "harness/core/error.h"

namespace parity::io {
namespace {

constexpr uint64_t kAlignment = 32;

// Little-endian serialisation into a byte string (every supported host is little-endian, as GGUF).
class Bytes {
 public:
  template <typename T>
  void Put(T value) {
    text_.append(reinterpret_cast<const char*>(&value), sizeof(T));
  }
  void PutString(const std::string& value) {
    Put<uint64_t>(value.size());
    text_.append(value);
  }
  void Pad(uint64_t alignment) {
    while (text_.size() % alignment != 0) text_.push_back('\0');
  }
  std::string& text() { return text_; }

 private:
  std::string text_;
};

void PutScalar(Bytes& out, GgufType type, const nlohmann::json& value) {
  switch (type) {
    case GgufType::kU8: out.Put<uint8_t>(value.get<uint8_t>()); return;
    case GgufType::kI8: out.Put<int8_t>(value.get<int8_t>()); return;
    case GgufType::kU16: out.Put<uint16_t>(value.get<uint16_t>()); return;
    case GgufType::kI16: out.Put<int16_t>(value.get<int16_t>()); return;
    case GgufType::kU64: out.Put<uint64_t>(value.get<uint64_t>()); return;
    case GgufType::kI64: out.Put<int64_t>(value.get<int64_t>()); return;
    case GgufType::kF64: out.Put<double>(value.get<double>()); return;
    case GgufType::kU32: out.Put<uint32_t>(value.get<uint32_t>()); return;
    case GgufType::kI32: out.Put<int32_t>(value.get<int32_t>()); return;
    case GgufType::kF32: out.Put<float>(value.get<float>()); return;
    case GgufType::kBool: out.Put<uint8_t>(value.get<bool>() ? 1 : 0); return;
    case GgufType::kString: out.PutString(value.get<std::string>()); return;
    default: throw std::logic_error("GgufWriter: unsupported value type");
  }
}

}  // namespace

void GgufWriter::AddValue(const std::string& key, GgufValue value) {
  if (value.type == GgufType::kArray && value.element_type == GgufType::kArray) {
    throw std::logic_error("GgufWriter: nested arrays are not written: " + key);
  }
  for (const auto& [existing, unused] : metadata_) {
    if (existing == key) throw std::logic_error("GgufWriter: metadata key added twice: " + key);
  }
  metadata_.emplace_back(key, std::move(value));
}

void GgufWriter::AddString(const std::string& key, const std::string& value) {
  AddValue(key, {GgufType::kString, GgufType::kU8, value});
}
void GgufWriter::AddU32(const std::string& key, uint32_t value) {
  AddValue(key, {GgufType::kU32, GgufType::kU8, value});
}
void GgufWriter::AddI32(const std::string& key, int32_t value) {
  AddValue(key, {GgufType::kI32, GgufType::kU8, value});
}
void GgufWriter::AddF32(const std::string& key, float value) {
  AddValue(key, {GgufType::kF32, GgufType::kU8, value});
}
void GgufWriter::AddBool(const std::string& key, bool value) {
  AddValue(key, {GgufType::kBool, GgufType::kU8, value});
}
void GgufWriter::AddStringArray(const std::string& key, const std::vector<std::string>& values) {
  AddValue(key, {GgufType::kArray, GgufType::kString, values});
}
void GgufWriter::AddF32Array(const std::string& key, const std::vector<float>& values) {
  AddValue(key, {GgufType::kArray, GgufType::kF32, values});
}
void GgufWriter::AddI32Array(const std::string& key, const std::vector<int32_t>& values) {
  AddValue(key, {GgufType::kArray, GgufType::kI32, values});
}

void GgufWriter::AddTensor(const std::string& name, const std::vector<int64_t>& torch_shape,
                           const GgmlTypeInfo& type, std::vector<uint8_t> bytes) {
  int64_t numel = 1;
  for (int64_t d : torch_shape) numel *= d;
  if (torch_shape.empty() || torch_shape.size() > 4 || torch_shape.back() % type.block_size != 0 ||
      bytes.size() != static_cast<size_t>(numel / type.block_size * type.type_size)) {
    throw std::logic_error(fmt::format("GgufWriter: tensor '{}': {} bytes do not hold [{}] as {}",
                                       name, bytes.size(), numel, type.name));
  }
  for (const Tensor& t : tensors_) {
    if (t.name == name) throw std::logic_error("GgufWriter: tensor added twice: " + name);
  }
  tensors_.push_back({name, {torch_shape.rbegin(), torch_shape.rend()}, &type, std::move(bytes)});
}

void GgufWriter::Write(const std::string& path) const {
  Bytes header;
  header.text().append("GGUF");
  header.Put<uint32_t>(3);
  header.Put<uint64_t>(tensors_.size());
  header.Put<uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_) {
    header.PutString(key);
    header.Put<uint32_t>(static_cast<uint32_t>(value.type));
    if (value.type != GgufType::kArray) {
      PutScalar(header, value.type, value.value);
      continue;
    }
    header.Put<uint32_t>(static_cast<uint32_t>(value.element_type));
    header.Put<uint64_t>(value.value.size());
    for (const nlohmann::json& element : value.value) PutScalar(header, value.element_type, element);
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    header.PutString(t.name);
    header.Put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) header.Put<uint64_t>(static_cast<uint64_t>(d));
    header.Put<uint32_t>(t.type->id);
    header.Put<uint64_t>(offset);
    offset += (t.bytes.size() + kAlignment - 1) / kAlignment * kAlignment;
  }
  header.Pad(kAlignment);
  AtomicFile file(path);
  file.Write(header.text());
  static const char kZeros[kAlignment] = {};
  for (const Tensor& t : tensors_) {
    file.Write(t.bytes.data(), t.bytes.size());
    const size_t padding = (kAlignment - t.bytes.size() % kAlignment) % kAlignment;
    file.Write(kZeros, padding);
  }
  file.Commit();
}

}  // namespace parity::io
