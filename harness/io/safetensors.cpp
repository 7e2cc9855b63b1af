// The safetensors reader: maps the file, parses the header with a streaming (SAX) JSON parser, and
// validates it the way the reference Rust library does (BRIEF.md, "The safetensors format").
//
// Why SAX and not a DOM: the header may be up to 100 MB of hostile JSON. A DOM of `[[[[...` or of a
// long array costs tens of bytes per input byte; the handler below keeps only what a valid header
// needs (one TensorInfo per entry, the metadata strings), refuses nesting deeper than serde_json's
// limit of 128, and sees every key, so duplicate names are caught (nlohmann's DOM keeps the last).
#include "harness/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <tuple>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "harness/core/error.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; a big-endian host would need byte swapping");

namespace parity::io {

// The read-only mapping of a whole file. Shared by the SafetensorsFile and every tensor it hands out.
struct SafetensorsFile::Mapping {
  void* address = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (address != nullptr) ::munmap(address, size);
  }
  static std::shared_ptr<Mapping> OfWholeFile(const std::string& path);
};

namespace {

constexpr uint64_t kHeaderLengthBytes = 8;
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference library's MAX_HEADER_SIZE
constexpr int kMaxJsonDepth = 128;                 // serde_json's recursion limit
constexpr const char* kMetadataKey = "__metadata__";

std::string ShapeString(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::string KnownDTypeNames() {
  std::vector<std::string_view> names;
  for (int i = 0; i <= static_cast<int>(DType::kF8E5M2); ++i) {
    names.push_back(DTypeName(static_cast<DType>(i)));
  }
  return fmt::format("{}", fmt::join(names, ", "));
}

// Closes a file descriptor on scope exit.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

}  // namespace

std::shared_ptr<SafetensorsFile::Mapping> SafetensorsFile::Mapping::OfWholeFile(
    const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer ("never hang"); S_ISREG rejects it below.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw InputError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  FdCloser closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    throw InputError(fmt::format("{}: cannot stat: {}", path, std::strerror(errno)));
  }
  if (!S_ISREG(info.st_mode)) throw InputError(fmt::format("{}: not a regular file", path));
  auto mapping = std::make_shared<Mapping>();
  mapping->size = static_cast<size_t>(info.st_size);
  if (mapping->size == 0) return mapping;  // mmap refuses length 0; Open reports the truncation
  void* address = ::mmap(nullptr, mapping->size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (address == MAP_FAILED) {
    throw InputError(fmt::format("{}: cannot map {} bytes: {}", path, mapping->size,
                                 std::strerror(errno)));
  }
  mapping->address = address;
  return mapping;
}

namespace {

// Streams the header JSON, building TensorInfo entries and the metadata map. Each callback returns
// false to stop the parse at the first problem, leaving the message in error().
class HeaderParser : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit HeaderParser(std::string path) : path_(std::move(path)) {}

  const std::string& error() const { return error_; }
  bool done() const { return where_ == Where::kDone; }
  std::vector<TensorInfo>& tensors() { return tensors_; }
  std::map<std::string, std::string>& metadata() { return metadata_; }

  bool null() override { return OnOtherScalar("null"); }
  bool boolean(bool) override { return OnOtherScalar("a boolean"); }
  bool number_integer(number_integer_t value) override {
    if (value >= 0) return OnUnsigned(static_cast<uint64_t>(value));
    return OnNegative(value);
  }
  bool number_unsigned(number_unsigned_t value) override { return OnUnsigned(value); }
  bool number_float(number_float_t, const string_t& text) override {
    return OnOtherScalar(fmt::format("the non-integer number {}", text));
  }
  bool string(string_t& value) override { return OnString(value); }
  bool binary(binary_t&) override { return OnOtherScalar("binary data"); }
  bool start_object(std::size_t) override { return OnStart(/*is_object=*/true); }
  bool start_array(std::size_t) override { return OnStart(/*is_object=*/false); }
  bool end_object() override { return OnEnd(); }
  bool end_array() override { return OnEnd(); }
  bool key(string_t& name) override { return OnKey(name); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    return Fail(fmt::format("header is not valid JSON: {}", e.what()));
  }

 private:
  // Where the parser is in the expected structure
  // {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, "__metadata__": {...}}.
  enum class Where { kBeforeRoot, kRoot, kMetadata, kEntry, kShape, kOffsets, kSkip, kDone };
  enum class Field { kDType, kShape, kOffsets, kOther };
  static constexpr unsigned kFieldBit[] = {1, 2, 4, 0};

  bool Fail(std::string message) {
    if (error_.empty()) error_ = fmt::format("{}: {}", path_, message);
    return false;
  }
  bool FailTensor(const std::string& message) {
    return Fail(fmt::format("tensor '{}': {}", entry_.name, message));
  }
  bool InMetadataValue() const { return where_ == Where::kRoot && root_key_ == kMetadataKey; }

  bool OnKey(std::string& name) {
    switch (where_) {
      case Where::kRoot:
        if (!root_keys_.insert(name).second) {
          if (name == kMetadataKey) return Fail("'__metadata__' appears twice in the header");
          return Fail(fmt::format("tensor name '{}' appears twice in the header", name));
        }
        root_key_ = name;
        return true;
      case Where::kMetadata:
        if (metadata_.count(name) != 0) {
          return Fail(fmt::format("__metadata__ key '{}' appears twice", name));
        }
        metadata_key_ = name;
        return true;
      case Where::kEntry:
        field_ = name == "dtype"          ? Field::kDType
                 : name == "shape"        ? Field::kShape
                 : name == "data_offsets" ? Field::kOffsets
                                          : Field::kOther;
        if ((fields_seen_ & kFieldBit[static_cast<int>(field_)]) != 0) {
          return FailTensor(fmt::format("field '{}' appears twice", name));
        }
        fields_seen_ |= kFieldBit[static_cast<int>(field_)];
        return true;
      default:
        return true;  // keys inside a skipped value
    }
  }

  // A value that is none of: string, non-negative integer, array, object.
  bool OnOtherScalar(const std::string& what) {
    switch (where_) {
      case Where::kRoot:
        if (root_key_ == kMetadataKey) return what == "null" ? true : MetadataNotAMap(what);
        return EntryNotAnObject(what);
      case Where::kMetadata:
        return Fail(fmt::format("__metadata__ value for '{}' must be a string, got {}",
                                metadata_key_, what));
      case Where::kEntry:
        return WrongFieldType(what);
      case Where::kShape:
        return FailTensor(fmt::format("shape entries must be non-negative integers, got {}", what));
      case Where::kOffsets:
        return FailTensor(
            fmt::format("data_offsets entries must be non-negative integers, got {}", what));
      case Where::kSkip:
        return true;
      default:
        return Fail(fmt::format("header must be a JSON object, got {}", what));
    }
  }

  bool OnNegative(int64_t value) {
    if (where_ == Where::kShape) {
      return FailTensor(fmt::format("shape entry {} is negative (shape entries must be >= 0)", value));
    }
    if (where_ == Where::kOffsets) {
      return FailTensor(fmt::format("data_offsets entry {} is negative", value));
    }
    return OnOtherScalar(fmt::format("the negative number {}", value));
  }

  bool OnUnsigned(uint64_t value) {
    if (where_ == Where::kShape) {
      if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return FailTensor(fmt::format("shape entry {} does not fit in int64", value));
      }
      entry_.shape.push_back(static_cast<int64_t>(value));
      return true;
    }
    if (where_ == Where::kOffsets) {
      if (offsets_count_ == 2) {
        return FailTensor("data_offsets must be [begin, end], got more than 2 numbers");
      }
      (offsets_count_++ == 0 ? entry_.begin : entry_.end) = value;
      return true;
    }
    return OnOtherScalar(fmt::format("the number {}", value));
  }

  bool OnString(std::string& value) {
    if (where_ == Where::kMetadata) {
      metadata_.emplace(std::move(metadata_key_), std::move(value));
      return true;
    }
    if (where_ == Where::kEntry && field_ == Field::kDType) {
      std::optional<DType> dtype = ParseDType(value);
      if (!dtype) {
        return FailTensor(
            fmt::format("unknown dtype '{}' (expected one of {})", value, KnownDTypeNames()));
      }
      entry_.dtype = *dtype;
      return true;
    }
    return OnOtherScalar(fmt::format("the string \"{}\"", value.substr(0, 40)));
  }

  bool OnStart(bool is_object) {
    if (++depth_ > kMaxJsonDepth) {
      return Fail(fmt::format("header JSON is nested deeper than {} levels", kMaxJsonDepth));
    }
    const char* what = is_object ? "an object" : "an array";
    switch (where_) {
      case Where::kBeforeRoot:
        if (!is_object) return Fail("header must be a JSON object, got an array");
        where_ = Where::kRoot;
        return true;
      case Where::kRoot:
        if (root_key_ == kMetadataKey) {
          if (!is_object) return MetadataNotAMap(what);
          where_ = Where::kMetadata;
          return true;
        }
        if (!is_object) return EntryNotAnObject(what);
        entry_ = TensorInfo();
        entry_.name = root_key_;
        fields_seen_ = 0;
        offsets_count_ = 0;
        where_ = Where::kEntry;
        return true;
      case Where::kMetadata:
        return Fail(fmt::format("__metadata__ value for '{}' must be a string, got {}",
                                metadata_key_, what));
      case Where::kEntry:
        if (field_ == Field::kOther) {
          where_ = Where::kSkip;  // unknown fields are ignored, as serde does
          skip_depth_ = 1;
          return true;
        }
        if (is_object || field_ == Field::kDType) return WrongFieldType(what);
        where_ = field_ == Field::kShape ? Where::kShape : Where::kOffsets;
        return true;
      case Where::kShape:
      case Where::kOffsets:
        return OnOtherScalar(what);
      case Where::kSkip:
        ++skip_depth_;
        return true;
      default:
        return Fail("unexpected JSON after the header object");
    }
  }

  bool OnEnd() {
    --depth_;
    switch (where_) {
      case Where::kRoot:
        where_ = Where::kDone;
        return true;
      case Where::kMetadata:
        where_ = Where::kRoot;
        return true;
      case Where::kEntry:
        return FinishEntry();
      case Where::kShape:
        where_ = Where::kEntry;
        return true;
      case Where::kOffsets:
        if (offsets_count_ != 2) {
          return FailTensor(
              fmt::format("data_offsets must be [begin, end], got {} numbers", offsets_count_));
        }
        where_ = Where::kEntry;
        return true;
      case Where::kSkip:
        if (--skip_depth_ == 0) where_ = Where::kEntry;
        return true;
      default:
        return Fail("unbalanced JSON");
    }
  }

  bool FinishEntry() {
    const unsigned all = kFieldBit[0] | kFieldBit[1] | kFieldBit[2];
    if ((fields_seen_ & all) != all) {
      std::vector<std::string> missing;
      if ((fields_seen_ & kFieldBit[0]) == 0) missing.push_back("dtype");
      if ((fields_seen_ & kFieldBit[1]) == 0) missing.push_back("shape");
      if ((fields_seen_ & kFieldBit[2]) == 0) missing.push_back("data_offsets");
      return FailTensor(fmt::format("entry lacks {} (expected dtype, shape and data_offsets)",
                                    fmt::join(missing, " and ")));
    }
    tensors_.push_back(std::move(entry_));
    where_ = Where::kRoot;
    return true;
  }

  bool MetadataNotAMap(const std::string& what) {
    return Fail(fmt::format("__metadata__ must be an object of string to string, got {}", what));
  }
  bool EntryNotAnObject(const std::string& what) {
    return Fail(fmt::format(
        "tensor '{}': entry must be an object with dtype, shape and data_offsets, got {}",
        root_key_, what));
  }
  bool WrongFieldType(const std::string& what) {
    switch (field_) {
      case Field::kDType:
        return FailTensor(fmt::format("dtype must be a string, got {}", what));
      case Field::kShape:
        return FailTensor(fmt::format("shape must be an array of integers, got {}", what));
      case Field::kOffsets:
        return FailTensor(fmt::format("data_offsets must be [begin, end], got {}", what));
      default:
        return true;  // an unknown field: ignored
    }
  }

  std::string path_;
  std::string error_;
  Where where_ = Where::kBeforeRoot;
  int depth_ = 0;
  int skip_depth_ = 0;
  std::set<std::string> root_keys_;
  std::string root_key_;
  std::string metadata_key_;
  Field field_ = Field::kOther;
  unsigned fields_seen_ = 0;
  int offsets_count_ = 0;
  TensorInfo entry_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Bytes a tensor of this shape and dtype needs, or an error naming the overflow.
uint64_t CheckedByteSize(const std::string& path, const TensorInfo& t) {
  uint64_t elements = 1;
  for (int64_t dim : t.shape) {
    if (__builtin_mul_overflow(elements, static_cast<uint64_t>(dim), &elements) ||
        elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw InputError(fmt::format("{}: tensor '{}': shape {} has more elements than fit in int64",
                                   path, t.name, ShapeString(t.shape)));
    }
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(elements, static_cast<uint64_t>(DTypeSize(t.dtype)), &bytes)) {
    throw InputError(fmt::format("{}: tensor '{}': shape {} of {} needs more bytes than fit in 64 bits",
                                 path, t.name, ShapeString(t.shape), DTypeName(t.dtype)));
  }
  return bytes;
}

// Entries sorted by offset must tile [0, data_length) exactly (reference: Metadata::validate).
void ValidateLayout(const std::string& path, std::vector<TensorInfo>& tensors,
                    uint64_t data_length) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t expected_begin = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : tensors) {
    std::string where = fmt::format("{}: tensor '{}': data_offsets [{}, {})", path, t.name,
                                    t.begin, t.end);
    if (t.end < t.begin) throw InputError(where + " end before they begin");
    if (t.begin > expected_begin) {
      if (previous == nullptr) {
        throw InputError(fmt::format(
            "{} leave a gap of {} bytes at the start of the data area (the first tensor must "
            "begin at 0)",
            where, t.begin));
      }
      throw InputError(fmt::format(
          "{} leave a gap of {} bytes after tensor '{}' which ends at {} (tensors must follow "
          "each other with no gap)",
          where, t.begin - expected_begin, previous->name, previous->end));
    }
    if (t.begin < expected_begin) {
      throw InputError(fmt::format("{} overlap tensor '{}' at [{}, {})", where, previous->name,
                                   previous->begin, previous->end));
    }
    if (t.end > data_length) {
      throw InputError(fmt::format("{} extend past the end of the data area, which holds {} bytes",
                                   where, data_length));
    }
    uint64_t needed = CheckedByteSize(path, t);
    if (needed != t.end - t.begin) {
      throw InputError(fmt::format(
          "{}: tensor '{}': shape {} of {} needs {} bytes but data_offsets [{}, {}) hold {}", path,
          t.name, ShapeString(t.shape), DTypeName(t.dtype), needed, t.begin, t.end,
          t.end - t.begin));
    }
    expected_begin = t.end;
    previous = &t;
  }
  if (expected_begin != data_length) {
    throw InputError(fmt::format(
        "{}: the tensors end at byte {} of the data area but it holds {} bytes ({} trailing bytes "
        "belong to no tensor)",
        path, expected_begin, data_length, data_length - expected_begin));
  }
}

std::string DescribeFirstByte(const uint8_t* header, uint64_t length) {
  if (length == 0) return "an empty header";
  uint8_t c = header[0];
  if (c >= 0x21 && c < 0x7f) return fmt::format("'{}'", static_cast<char>(c));
  return fmt::format("byte 0x{:02x}", c);
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;  // validated by Open not to overflow
  return n;
}

SafetensorsFile SafetensorsFile::Open(const std::string& path) {
  SafetensorsFile file;
  file.path_ = path;
  file.mapping_ = Mapping::OfWholeFile(path);
  file.file_size_ = file.mapping_->size;
  const auto* base = static_cast<const uint8_t*>(file.mapping_->address);
  const uint64_t size = file.file_size_;

  if (size < kHeaderLengthBytes) {
    throw InputError(fmt::format(
        "{}: file is {} bytes, too short for the 8-byte header length (truncated or not "
        "safetensors)",
        path, size));
  }
  uint64_t header_length = 0;
  std::memcpy(&header_length, base, sizeof(header_length));  // little-endian, see static_assert
  if (header_length > kMaxHeaderBytes) {
    throw InputError(fmt::format(
        "{}: header length {} exceeds the limit of 100,000,000 bytes (corrupt or not safetensors)",
        path, header_length));
  }
  if (header_length > size - kHeaderLengthBytes) {
    throw InputError(fmt::format(
        "{}: header length {} runs past the end of the file, which has {} bytes after the length "
        "field (truncated?)",
        path, header_length, size - kHeaderLengthBytes));
  }
  const uint8_t* header = base + kHeaderLengthBytes;
  if (header_length == 0 || header[0] != '{') {
    throw InputError(fmt::format("{}: header must be a JSON object starting with '{{', found {}",
                                 path, DescribeFirstByte(header, header_length)));
  }

  HeaderParser parser(path);
  bool parsed = false;
  try {
    const char* text = reinterpret_cast<const char*>(header);
    parsed = nlohmann::json::sax_parse(text, text + header_length, &parser);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: header is not valid JSON: {}", path, e.what()));
  }
  if (!parser.error().empty()) throw InputError(parser.error());
  if (!parsed || !parser.done()) throw InputError(fmt::format("{}: header is not valid JSON", path));

  const uint64_t data_length = size - kHeaderLengthBytes - header_length;
  ValidateLayout(path, parser.tensors(), data_length);
  file.tensors_ = std::move(parser.tensors());
  file.metadata_ = std::move(parser.metadata());
  for (size_t i = 0; i < file.tensors_.size(); ++i) file.index_.emplace(file.tensors_[i].name, i);
  file.data_ = header + header_length;
  return file;
}

const TensorInfo* SafetensorsFile::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::pair<const uint8_t*, uint64_t> SafetensorsFile::Bytes(const std::string& name) const {
  const TensorInfo* info = Find(name);
  if (info == nullptr) throw InputError(fmt::format("{}: no tensor named '{}'", path_, name));
  return {data_ + info->begin, info->nbytes()};
}

at::Tensor SafetensorsFile::Get(const std::string& name) const {
  auto [bytes, length] = Bytes(name);
  const TensorInfo& info = *Find(name);
  at::TensorOptions options = at::TensorOptions().dtype(ToScalarType(info.dtype));
  if (info.dtype == DType::kBool) {
    // libtorch assumes a bool byte is 0 or 1; any other byte would give undefined results.
    const uint8_t* bad = std::find_if(bytes, bytes + length, [](uint8_t b) { return b > 1; });
    if (bad != bytes + length) {
      throw InputError(fmt::format("{}: tensor '{}': BOOL element {} is byte {}, expected 0 or 1",
                                   path_, name, bad - bytes, *bad));
    }
  }
  // A writer that does not order tensors by alignment (ours keeps the caller's order) can leave a
  // tensor at an address that is not a multiple of its element size; such tensors, and empty ones,
  // are copied instead of viewed so that no kernel ever sees a misaligned pointer.
  const auto address = reinterpret_cast<uintptr_t>(bytes);
  if (length == 0 || address % static_cast<uintptr_t>(DTypeSize(info.dtype)) != 0) {
    at::Tensor copy = at::empty(info.shape, options);
    if (length != 0) std::memcpy(copy.data_ptr(), bytes, length);
    return copy;
  }
  std::shared_ptr<Mapping> keep_alive = mapping_;
  return at::from_blob(
      const_cast<uint8_t*>(bytes), info.shape, [keep_alive](void*) {}, options);
}

}  // namespace parity::io
