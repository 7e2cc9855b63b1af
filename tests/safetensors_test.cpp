// The safetensors reader and writer: every bad-input case of the catalogue (issue 2) with its
// expected message, round trips for every dtype, the writer's exact byte layout, and interop with
// files written by Python's `safetensors` (scripts/python_safetensors_interop.py).
#include "harness/io/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/core/atomic_file.h"
#include "harness/core/error.h"
#include "tests/test_util.h"

namespace parity::io {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string LittleEndian64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(value >> (8 * i));
  return bytes;
}

// Writes a file by hand: the 8-byte length of `header`, `header` verbatim, then `data`.
std::string WriteRaw(const TempDir& dir, const std::string& header, const std::string& data = "") {
  std::string path = dir.path() + "/bad.safetensors";
  WriteFileText(path, LittleEndian64(header.size()) + header + data);
  return path;
}

// The message of the InputError that opening `path` throws ("" and a test failure if none).
std::string OpenError(const std::string& path) {
  try {
    SafetensorsFile::Open(path);
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an InputError opening " << path;
  return "";
}

// ---- Bad input: one test per case of the catalogue. ----

TEST(SafetensorsBadInput, MissingFile) {
  TempDir dir;
  EXPECT_THAT(OpenError(dir.path() + "/absent.safetensors"),
              AllOf(HasSubstr("absent.safetensors"), HasSubstr("cannot open")));
}

TEST(SafetensorsBadInput, DirectoryInsteadOfFile) {
  TempDir dir;
  EXPECT_THAT(OpenError(dir.path()), HasSubstr("not a regular file"));
}

TEST(SafetensorsBadInput, TruncatedFileShorterThanLengthField) {
  TempDir dir;
  std::string path = dir.path() + "/short.safetensors";
  WriteFileText(path, std::string("\x05\x00\x00", 3));
  EXPECT_THAT(OpenError(path), AllOf(HasSubstr("short.safetensors"), HasSubstr("file is 3 bytes"),
                                     HasSubstr("8-byte header length")));
}

TEST(SafetensorsBadInput, EmptyFile) {
  TempDir dir;
  std::string path = dir.path() + "/empty.safetensors";
  WriteFileText(path, "");
  EXPECT_THAT(OpenError(path), HasSubstr("file is 0 bytes"));
}

TEST(SafetensorsBadInput, HeaderLengthLargerThanFile) {
  TempDir dir;
  std::string path = dir.path() + "/bad.safetensors";
  WriteFileText(path, LittleEndian64(1000) + "{}");
  EXPECT_THAT(OpenError(path), AllOf(HasSubstr("bad.safetensors"), HasSubstr("header length 1000"),
                                     HasSubstr("runs past the end of the file, which has 2 bytes")));
}

TEST(SafetensorsBadInput, HeaderOver100MB) {
  TempDir dir;
  std::string path = dir.path() + "/bad.safetensors";
  // The limit is checked before the file size, so no 100 MB file is needed.
  WriteFileText(path, LittleEndian64(100'000'001) + "{}");
  EXPECT_THAT(OpenError(path), AllOf(HasSubstr("header length 100000001"),
                                     HasSubstr("exceeds the limit of 100,000,000 bytes")));
}

TEST(SafetensorsBadInput, HugeHeaderLengthDoesNotOverflow) {
  TempDir dir;
  std::string path = dir.path() + "/bad.safetensors";
  WriteFileText(path, LittleEndian64(~0ull) + "{}");
  EXPECT_THAT(OpenError(path), HasSubstr("exceeds the limit"));
}

TEST(SafetensorsBadInput, HeaderNotJson) {
  TempDir dir;
  EXPECT_THAT(OpenError(WriteRaw(dir, R"({"a": {"dtype": "F32", )")),
              AllOf(HasSubstr("bad.safetensors"), HasSubstr("header is not valid JSON")));
}

TEST(SafetensorsBadInput, HeaderNotUtf8) {
  TempDir dir;
  EXPECT_THAT(OpenError(WriteRaw(dir, "{\"\xff\xfe\": 1}")), HasSubstr("header is not valid JSON"));
}

TEST(SafetensorsBadInput, HeaderJsonNotAnObject) {
  TempDir dir;
  EXPECT_THAT(OpenError(WriteRaw(dir, "[1, 2, 3]")),
              AllOf(HasSubstr("header must be a JSON object"), HasSubstr("found '['")));
}

TEST(SafetensorsBadInput, HeaderWithLeadingSpaceRefusedAsTheReferenceDoes) {
  TempDir dir;
  EXPECT_THAT(OpenError(WriteRaw(dir, " {}")), HasSubstr("header must be a JSON object"));
}

TEST(SafetensorsBadInput, TrailingGarbageAfterHeaderObject) {
  TempDir dir;
  EXPECT_THAT(OpenError(WriteRaw(dir, "{} x")), HasSubstr("header is not valid JSON"));
}

TEST(SafetensorsBadInput, UnknownDtype) {
  TempDir dir;
  std::string path =
      WriteRaw(dir, R"({"a.weight": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}})",
               std::string(4, '\0'));
  EXPECT_THAT(OpenError(path), AllOf(HasSubstr("tensor 'a.weight'"), HasSubstr("unknown dtype 'F33'"),
                                     HasSubstr("expected one of F64, F32")));
}

TEST(SafetensorsBadInput, ShapeByteSizeDisagreesWithOffsets) {
  TempDir dir;
  std::string path =
      WriteRaw(dir, R"({"a.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})",
               std::string(20, '\0'));
  EXPECT_THAT(OpenError(path),
              HasSubstr("bad.safetensors: tensor 'a.weight': shape [2, 3] of F32 needs 24 bytes but "
                        "data_offsets [0, 20) hold 20"));
}

TEST(SafetensorsBadInput, OffsetsOutsideDataArea) {
  TempDir dir;
  std::string path =
      WriteRaw(dir, R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})",
               std::string(8, '\0'));
  EXPECT_THAT(OpenError(path),
              AllOf(HasSubstr("tensor 'a': data_offsets [0, 16)"),
                    HasSubstr("extend past the end of the data area, which holds 8 bytes")));
}

TEST(SafetensorsBadInput, OverlappingTensors) {
  TempDir dir;
  std::string path = WriteRaw(dir,
                              R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                  "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                              std::string(12, '\0'));
  EXPECT_THAT(OpenError(path),
              HasSubstr("tensor 'b': data_offsets [4, 12) overlap tensor 'a' at [0, 8)"));
}

TEST(SafetensorsBadInput, GapBetweenTensors) {
  TempDir dir;
  std::string path = WriteRaw(dir,
                              R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                  "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}})",
                              std::string(20, '\0'));
  EXPECT_THAT(OpenError(path),
              HasSubstr("tensor 'b': data_offsets [12, 20) leave a gap of 4 bytes after tensor 'a'"));
}

TEST(SafetensorsBadInput, FirstTensorNotAtStartOfDataArea) {
  TempDir dir;
  std::string path = WriteRaw(
      dir, R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}})", std::string(4, '\0'));
  EXPECT_THAT(OpenError(path),
              AllOf(HasSubstr("tensor 'a'"), HasSubstr("gap of 2 bytes at the start"),
                    HasSubstr("must begin at 0")));
}

TEST(SafetensorsBadInput, EndBeforeBegin) {
  TempDir dir;
  std::string path = WriteRaw(
      dir, R"({"a": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}})", std::string(4, '\0'));
  EXPECT_THAT(OpenError(path), HasSubstr("tensor 'a': data_offsets [4, 0) end before they begin"));
}

TEST(SafetensorsBadInput, TrailingBytesBelongToNoTensor) {
  TempDir dir;
  std::string path = WriteRaw(
      dir, R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}})", std::string(5, '\0'));
  EXPECT_THAT(OpenError(path), HasSubstr("end at byte 2 of the data area but it holds 5 bytes"));
}

TEST(SafetensorsBadInput, DuplicateNames) {
  TempDir dir;
  std::string path = WriteRaw(dir,
                              R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                                  "a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}})",
                              std::string(4, '\0'));
  EXPECT_THAT(OpenError(path),
              AllOf(HasSubstr("bad.safetensors"), HasSubstr("tensor name 'a' appears twice")));
}

TEST(SafetensorsBadInput, DuplicateFieldInEntry) {
  TempDir dir;
  std::string path = WriteRaw(
      dir, R"({"a": {"dtype": "U8", "dtype": "I8", "shape": [2], "data_offsets": [0, 2]}})",
      std::string(2, '\0'));
  EXPECT_THAT(OpenError(path), HasSubstr("tensor 'a': field 'dtype' appears twice"));
}

TEST(SafetensorsBadInput, NegativeShapeEntry) {
  TempDir dir;
  std::string path = WriteRaw(
      dir, R"({"a": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 8]}})",
      std::string(8, '\0'));
  EXPECT_THAT(OpenError(path), HasSubstr("tensor 'a': shape entry -1 is negative"));
}

TEST(SafetensorsBadInput, NonIntegerShapeEntry) {
  TempDir dir;
  std::string path = WriteRaw(
      dir, R"({"a": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})",
      std::string(8, '\0'));
  EXPECT_THAT(OpenError(path),
              HasSubstr("tensor 'a': shape entries must be non-negative integers, got the "
                        "non-integer number 2.5"));
}

TEST(SafetensorsBadInput, ShapeOverflowIsAnErrorNotAnAllocation) {
  TempDir dir;
  // 2^40 * 2^40 elements: the product overflows 64 bits.
  std::string path = WriteRaw(
      dir, R"({"a": {"dtype": "F32", "shape": [1099511627776, 1099511627776], "data_offsets": [0, 4]}})",
      std::string(4, '\0'));
  EXPECT_THAT(OpenError(path), AllOf(HasSubstr("tensor 'a': shape [1099511627776, 1099511627776]"),
                                     HasSubstr("more elements than fit in int64")));
}

TEST(SafetensorsBadInput, ByteSizeOverflowAfterElementCount) {
  TempDir dir;
  // 2^62 elements fit in int64, but times 8 bytes they do not fit in 64 bits.
  std::string path = WriteRaw(
      dir, R"({"a": {"dtype": "F64", "shape": [4611686018427387904], "data_offsets": [0, 8]}})",
      std::string(8, '\0'));
  EXPECT_THAT(OpenError(path), HasSubstr("needs more bytes than fit in 64 bits"));
}

TEST(SafetensorsBadInput, MetadataNotStringMap) {
  TempDir dir;
  EXPECT_THAT(OpenError(WriteRaw(dir, R"({"__metadata__": {"format": 1}})")),
              HasSubstr("__metadata__ value for 'format' must be a string, got the number 1"));
  EXPECT_THAT(OpenError(WriteRaw(dir, R"({"__metadata__": ["pt"]})")),
              HasSubstr("__metadata__ must be an object of string to string, got an array"));
}

TEST(SafetensorsBadInput, MissingField) {
  TempDir dir;
  std::string path = WriteRaw(dir, R"({"a": {"dtype": "F32", "shape": [1]}})", std::string(4, '\0'));
  EXPECT_THAT(OpenError(path), HasSubstr("tensor 'a': entry lacks data_offsets"));
}

TEST(SafetensorsBadInput, DataOffsetsNotAPair) {
  TempDir dir;
  std::string path = WriteRaw(
      dir, R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}})",
      std::string(4, '\0'));
  EXPECT_THAT(OpenError(path), HasSubstr("data_offsets must be [begin, end], got more than 2"));
}

TEST(SafetensorsBadInput, EntryNotAnObject) {
  TempDir dir;
  EXPECT_THAT(OpenError(WriteRaw(dir, R"({"a": [1, 2]})")),
              HasSubstr("tensor 'a': entry must be an object with dtype, shape and data_offsets"));
}

TEST(SafetensorsBadInput, DeeplyNestedJsonIsRefusedWithoutRecursion) {
  TempDir dir;
  // An unknown field is skipped, but not to any depth: serde_json stops at 128 levels too.
  std::string header = R"({"a": {"extra": )" + std::string(200'000, '[');
  EXPECT_THAT(OpenError(WriteRaw(dir, header)), HasSubstr("nested deeper than 128 levels"));
}

TEST(SafetensorsBadInput, BoolByteOtherThanZeroOrOne) {
  TempDir dir;
  std::string path = WriteRaw(
      dir, R"({"flags": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]}})",
      std::string("\x01\x00\x02", 3));
  SafetensorsFile file = SafetensorsFile::Open(path);  // the layout is valid
  try {
    file.Get("flags");
    ADD_FAILURE() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_THAT(std::string(e.what()),
                HasSubstr("tensor 'flags': BOOL element 2 is byte 2, expected 0 or 1"));
  }
}

TEST(SafetensorsBadInput, AbsentTensorNamesFileAndTensor) {
  TempDir dir;
  SafetensorsFile file = SafetensorsFile::Open(WriteRaw(dir, "{}"));
  EXPECT_THROW(file.Get("nope"), InputError);
  try {
    file.Bytes("nope");
  } catch (const InputError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("bad.safetensors: no tensor named 'nope'"));
  }
}

// ---- Valid files written by hand: what the reader accepts. ----

TEST(SafetensorsReader, AcceptsUnorderedEntriesMetadataAndUnknownFields) {
  TempDir dir;
  // JSON order means nothing: entries are sorted by offset. Unknown fields are ignored (as serde does).
  std::string data = LittleEndian64(7) + std::string("\x01\x02", 2);
  std::string path = WriteRaw(dir,
                              R"({"b": {"dtype": "U8", "shape": [1, 2], "data_offsets": [8, 10]},
                                  "__metadata__": {"format": "pt", "note": "x"},
                                  "a": {"dtype": "I64", "shape": [], "data_offsets": [0, 8],
                                        "extra": {"nested": [1, {"k": null}]}}})",
                              data);
  SafetensorsFile file = SafetensorsFile::Open(path);
  ASSERT_EQ(file.tensors().size(), 2u);
  EXPECT_EQ(file.tensors()[0].name, "a");
  EXPECT_EQ(file.tensors()[1].name, "b");
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("note"), "x");
  EXPECT_EQ(file.Get("a").item<int64_t>(), 7);
  EXPECT_EQ(file.Get("b").sizes().vec(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(file.Get("b")[0][1].item<uint8_t>(), 2);
  EXPECT_EQ(file.file_size(), ReadFileText(path).size());
}

TEST(SafetensorsReader, EmptyHeaderAndNullMetadataAreValid) {
  TempDir dir;
  EXPECT_TRUE(SafetensorsFile::Open(WriteRaw(dir, "{}")).tensors().empty());
  EXPECT_TRUE(SafetensorsFile::Open(WriteRaw(dir, R"({"__metadata__": null})")).metadata().empty());
}

// Random corruption never crashes: each mutated file either opens (then every tensor can be read)
// or throws InputError. Also every truncation of a valid file.
TEST(SafetensorsReader, CorruptedFilesOnlyEverThrowInputError) {
  TempDir dir;
  std::string valid_path = dir.path() + "/valid.safetensors";
  WriteSafetensors(valid_path, {{"w", at::arange(6, at::kFloat).reshape({2, 3})},
                                {"b", at::ones({3}, at::kBool)},
                                {"s", at::scalar_tensor(2.0, at::kDouble)}},
                   {{"format", "pt"}});
  const std::string valid = ReadFileText(valid_path);
  std::mt19937 rng(1234);
  std::string path = dir.path() + "/mutated.safetensors";
  int opened = 0;
  unsigned checksum = 0;
  auto check = [&](const std::string& bytes) {
    WriteFileText(path, bytes);
    try {
      SafetensorsFile file = SafetensorsFile::Open(path);
      for (const TensorInfo& t : file.tensors()) {
        at::Tensor tensor = file.Get(t.name);
        EXPECT_EQ(tensor.numel(), t.numel());
        auto [bytes, length] = file.Bytes(t.name);
        checksum += std::accumulate(bytes, bytes + length, 0u);  // touch every byte
      }
      ++opened;
    } catch (const InputError&) {
      // expected for most mutations
    }
  };
  for (size_t length = 0; length < valid.size(); ++length) check(valid.substr(0, length));
  for (int round = 0; round < 1500; ++round) {
    std::string bytes = valid;
    int flips = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < flips; ++i) {
      // Mostly the header, where the parser is exposed; sometimes the length field or data.
      size_t at = rng() % std::min<size_t>(bytes.size(), 8 + 160);
      bytes[at] = static_cast<char>(rng() % 256);
    }
    check(bytes);
  }
  EXPECT_GT(opened, 0);  // some mutations (in data, or harmless) still open
  (void)checksum;
}

// ---- Round trips. ----

// A [3, 5] tensor of distinct values for `dtype`; FP8 as raw bytes (kByte).
at::Tensor SampleTensor(DType dtype) {
  at::Tensor base = at::arange(15, at::kDouble).reshape({3, 5});
  switch (dtype) {
    case DType::kF64:
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      return base.mul(0.375).sub(2.5).to(ToScalarType(dtype));  // exact in every float type
    case DType::kI64:
      return base.sub(7).mul(1e12).to(at::kLong);
    case DType::kI32:
      return base.sub(7).mul(1e8).to(at::kInt);
    case DType::kI16:
      return base.sub(7).mul(1000).to(at::kShort);
    case DType::kI8:
      return base.sub(7).mul(17).to(at::kChar);
    case DType::kU8:
    case DType::kF8E4M3:
    case DType::kF8E5M2:
      return base.mul(17).to(at::kByte);
    case DType::kBool:
      return base.remainder(3).eq(0);
  }
  return base;
}

bool SameBytes(const at::Tensor& a, std::pair<const uint8_t*, uint64_t> b) {
  at::Tensor c = a.contiguous();
  uint64_t n = static_cast<uint64_t>(c.numel() * c.element_size());
  return n == b.second && (n == 0 || std::memcmp(c.data_ptr(), b.first, n) == 0);
}

class SafetensorsRoundTrip : public ::testing::TestWithParam<DType> {};

TEST_P(SafetensorsRoundTrip, WriteThenReadGivesEqualValues) {
  const DType dtype = GetParam();
  TempDir dir;
  std::string path = dir.path() + "/rt.safetensors";
  at::Tensor values = SampleTensor(dtype);
  WriteSafetensors(path, {{"t", values, dtype}});
  SafetensorsFile file = SafetensorsFile::Open(path);
  ASSERT_EQ(file.tensors().size(), 1u);
  EXPECT_EQ(file.tensors()[0].dtype, dtype);
  EXPECT_EQ(file.tensors()[0].nbytes(), static_cast<uint64_t>(15 * DTypeSize(dtype)));
  at::Tensor read = file.Get("t");
  EXPECT_EQ(read.scalar_type(), ToScalarType(dtype));
  EXPECT_EQ(read.sizes().vec(), (std::vector<int64_t>{3, 5}));
  EXPECT_TRUE(at::equal(read, values)) << read << "\nvs\n" << values;
  EXPECT_TRUE(SameBytes(values, file.Bytes("t")));
}

INSTANTIATE_TEST_SUITE_P(AllDTypes, SafetensorsRoundTrip,
                         ::testing::Values(DType::kF64, DType::kF32, DType::kF16, DType::kBF16,
                                           DType::kI64, DType::kI32, DType::kI16, DType::kI8,
                                           DType::kU8, DType::kBool, DType::kF8E4M3,
                                           DType::kF8E5M2),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           std::string name(DTypeName(info.param));  // test names: no '_'
                           name.erase(std::remove(name.begin(), name.end(), '_'), name.end());
                           return name;
                         });

TEST(SafetensorsWriter, ZeroSizeAndScalarTensors) {
  TempDir dir;
  std::string path = dir.path() + "/edge.safetensors";
  WriteSafetensors(path, {{"empty", at::zeros({0, 3}, at::kFloat)},
                          {"scalar", at::scalar_tensor(3.5, at::kDouble)},
                          {"empty_bf16", at::zeros({4, 0}, at::kBFloat16)},
                          {"after", at::tensor({1, 2}, at::kInt)}});
  SafetensorsFile file = SafetensorsFile::Open(path);
  at::Tensor empty = file.Get("empty");
  EXPECT_EQ(empty.sizes().vec(), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(empty.numel(), 0);
  EXPECT_EQ(file.Get("empty_bf16").sizes().vec(), (std::vector<int64_t>{4, 0}));
  at::Tensor scalar = file.Get("scalar");
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_EQ(scalar.item<double>(), 3.5);
  EXPECT_EQ(file.Find("scalar")->numel(), 1);
  EXPECT_TRUE(at::equal(file.Get("after"), at::tensor({1, 2}, at::kInt)));
}

TEST(SafetensorsWriter, ExactBytesEntriesAndDataInGivenOrder) {
  TempDir dir;
  std::string path = dir.path() + "/layout.safetensors";
  WriteSafetensors(path, {{"b", at::tensor({1.0f, -2.0f})}, {"a", at::full({1}, 3, at::kLong)}},
                   {{"format", "pt"}});
  const std::string bytes = ReadFileText(path);
  // The header as Python's safetensors spells it: compact JSON, "__metadata__" first, then entries
  // with dtype, shape, data_offsets; padded with spaces to a multiple of 8.
  std::string json =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("a":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}})";
  std::string padded = json + std::string((8 - json.size() % 8) % 8, ' ');
  float b[2] = {1.0f, -2.0f};
  int64_t a = 3;
  std::string expected = LittleEndian64(padded.size()) + padded +
                         std::string(reinterpret_cast<char*>(b), 8) +
                         std::string(reinterpret_cast<char*>(&a), 8);
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(padded.size() % 8, 0u);
}

TEST(SafetensorsWriter, NonContiguousInputIsWrittenContiguously) {
  TempDir dir;
  std::string path = dir.path() + "/t.safetensors";
  at::Tensor matrix = at::arange(6, at::kFloat).reshape({2, 3});
  at::Tensor transposed = matrix.t();
  ASSERT_FALSE(transposed.is_contiguous());
  WriteSafetensors(path, {{"t", transposed}, {"slice", matrix.select(1, 1)}});
  SafetensorsFile file = SafetensorsFile::Open(path);
  EXPECT_EQ(file.Get("t").sizes().vec(), (std::vector<int64_t>{3, 2}));
  EXPECT_TRUE(at::equal(file.Get("t"), transposed));
  EXPECT_TRUE(at::equal(file.Get("slice"), at::tensor({1.0f, 4.0f})));
}

TEST(SafetensorsWriter, MisalignedTensorIsReadCorrectly) {
  TempDir dir;
  std::string path = dir.path() + "/m.safetensors";
  // BOOL[3] first puts the F32 tensor at data offset 3: not a multiple of 4.
  at::Tensor floats = at::tensor({1.5f, -2.25f, 3.0f});
  WriteSafetensors(path, {{"flags", at::ones({3}, at::kBool)}, {"f", floats}});
  SafetensorsFile file = SafetensorsFile::Open(path);
  EXPECT_EQ(file.Find("f")->begin, 3u);
  EXPECT_TRUE(at::equal(file.Get("f"), floats));
}

TEST(SafetensorsWriter, TensorViewsTheMappingAndOutlivesTheFileObject) {
  TempDir dir;
  std::string path = dir.path() + "/big.safetensors";
  at::Tensor values = at::arange(4096, at::kFloat).reshape({64, 64});
  WriteSafetensors(path, {{"w", values}});
  at::Tensor kept;
  {
    SafetensorsFile file = SafetensorsFile::Open(path);
    kept = file.Get("w");
    EXPECT_EQ(kept.data_ptr(), static_cast<const void*>(file.Bytes("w").first)) << "not a view";
  }
  std::filesystem::remove(path);  // the mapping survives the unlink, as the file object did
  EXPECT_TRUE(at::equal(kept, values));
}

TEST(SafetensorsWriter, RefusesBadInputWithoutWritingAFile) {
  TempDir dir;
  std::string path = dir.path() + "/w.safetensors";
  auto error = [&](const std::vector<NamedTensor>& tensors) -> std::string {
    try {
      WriteSafetensors(path, tensors);
    } catch (const InputError& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected an InputError";
    return "";
  };
  at::Tensor t = at::ones({2});
  EXPECT_THAT(error({{"x", t}, {"x", t}}), HasSubstr("tensor name 'x' is given twice"));
  EXPECT_THAT(error({{"__metadata__", t}}), HasSubstr("'__metadata__' is reserved"));
  EXPECT_THAT(error({{"c", at::ones({2}, at::kComplexFloat)}}),
              AllOf(HasSubstr("tensor 'c'"), HasSubstr("has no safetensors dtype")));
  EXPECT_THAT(error({{"f8", t, DType::kF8E4M3}}),
              AllOf(HasSubstr("tensor 'f8'"), HasSubstr("FP8 needs its raw bytes as kByte")));
  EXPECT_THAT(error({{"u", at::Tensor()}}), HasSubstr("tensor 'u' is undefined"));
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            0);
}

// ---- Interop with Python's safetensors (scripts/python_safetensors_interop.py). ----

// Decodes an FP8 byte (no NaN/inf handling: the fixtures avoid them). E4M3: 4 exponent bits, bias 7;
// E5M2: 5 exponent bits, bias 15 (OCP FP8 spec).
double DecodeFp8(uint8_t byte, DType dtype) {
  const int mantissa_bits = dtype == DType::kF8E4M3 ? 3 : 2;
  const int bias = dtype == DType::kF8E4M3 ? 7 : 15;
  const int exponent = (byte & 0x7f) >> mantissa_bits;
  const int mantissa = byte & ((1 << mantissa_bits) - 1);
  const double sign = (byte & 0x80) ? -1.0 : 1.0;
  if (exponent == 0) return sign * std::ldexp(mantissa, 1 - bias - mantissa_bits);
  return sign * std::ldexp(1.0 + std::ldexp(mantissa, -mantissa_bits), exponent - bias);
}

std::string Hex(std::pair<const uint8_t*, uint64_t> bytes) {
  std::string hex;
  for (uint64_t i = 0; i < bytes.second; ++i) hex += fmt::format("{:02x}", bytes.first[i]);
  return hex;
}

// Checks `file` against an expected-values JSON as the interop script writes it:
// {"metadata": {..}, "tensors": [{"name", "dtype", "shape", "hex", "values"}, ..]}.
void ExpectMatchesExpectedJson(const SafetensorsFile& file, const nlohmann::json& expected) {
  using StringMap = std::map<std::string, std::string>;
  EXPECT_EQ(file.metadata(), expected.at("metadata").get<StringMap>());
  ASSERT_EQ(file.tensors().size(), expected.at("tensors").size());
  for (const nlohmann::json& e : expected.at("tensors")) {
    const std::string name = e.at("name");
    SCOPED_TRACE("tensor " + name);
    const TensorInfo* info = file.Find(name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(DTypeName(info->dtype), e.at("dtype").get<std::string>());
    EXPECT_EQ(info->shape, e.at("shape").get<std::vector<int64_t>>());
    EXPECT_EQ(Hex(file.Bytes(name)), e.at("hex").get<std::string>());
    const std::vector<double> values = e.at("values").get<std::vector<double>>();
    at::Tensor tensor = file.Get(name).reshape({-1});
    ASSERT_EQ(tensor.numel(), static_cast<int64_t>(values.size()));
    for (size_t i = 0; i < values.size(); ++i) {
      double got = (info->dtype == DType::kF8E4M3 || info->dtype == DType::kF8E5M2)
                       ? DecodeFp8(tensor[i].item<uint8_t>(), info->dtype)
                       : tensor[i].to(at::kDouble).item<double>();
      EXPECT_EQ(got, values[i]) << "element " << i;
    }
  }
}

// The tensors Parity writes for Python to check, in Python's own write order (alignment descending,
// then name), so that Python's save_file of the same dict gives the same bytes.
std::vector<NamedTensor> InteropTensors() {
  at::Tensor f8_e4m3 = at::tensor({0x38, 0x40, 0x3c, 0xb8, 0x01}, at::kByte);  // 1, 2, 1.5, -1, 2^-9
  at::Tensor f8_e5m2 = at::tensor({0x3c, 0x40, 0x3e, 0xbc, 0x01}, at::kByte);  // 1, 2, 1.5, -1, 2^-16
  return {
      {"i64", at::tensor({-(int64_t{1} << 40) - 1, int64_t{0}, int64_t{1} << 52}, at::kLong)},
      {"f64", at::tensor({0.1, -1e300, 5e-324, 2.5}, at::kDouble).reshape({2, 2})},
      {"empty", at::zeros({0, 4}, at::kFloat)},
      {"f32", at::tensor({1.0f, -0.5f, 3.25f, 1e-8f, 65504.0f, -7.0f}).reshape({2, 3})},
      {"scalar", at::scalar_tensor(0.25, at::kFloat)},
      {"i32", at::tensor({-2147483647 - 1, 7, 2147483647}, at::kInt)},
      {"bf16", at::tensor({1.0, -2.5, 3.140625, 1e-3}, at::kDouble).to(at::kBFloat16)},
      {"f16", at::tensor({1.0, -2.5, 65504.0, 6e-8}, at::kDouble).to(at::kHalf).reshape({2, 2})},
      {"i16", at::tensor({-32768, 1, 32767}, at::kShort)},
      {"f8_e4m3", f8_e4m3, DType::kF8E4M3},
      {"f8_e5m2", f8_e5m2, DType::kF8E5M2},
      {"i8", at::tensor({-128, 0, 127}, at::kChar)},
      {"u8", at::tensor({0, 128, 255}, at::kByte)},
      {"bool", at::tensor({1, 0, 1, 1, 0}, at::kByte).to(at::kBool)},
  };
}

const std::map<std::string, std::string> kInteropMetadata = {{"format", "pt"}};

// The expected-values JSON for InteropTensors(), independent of the reader.
nlohmann::json InteropExpectedJson() {
  nlohmann::json tensors = nlohmann::json::array();
  for (const NamedTensor& t : InteropTensors()) {
    DType dtype = t.dtype ? *t.dtype : FromScalarType(t.tensor.scalar_type());
    at::Tensor flat = t.tensor.contiguous().reshape({-1});
    std::vector<double> values;
    for (int64_t i = 0; i < flat.numel(); ++i) {
      values.push_back(t.dtype ? DecodeFp8(flat[i].item<uint8_t>(), dtype)
                               : flat[i].to(at::kDouble).item<double>());
    }
    tensors.push_back({{"name", t.name},
                       {"dtype", std::string(DTypeName(dtype))},
                       {"shape", t.tensor.sizes().vec()},
                       {"hex", Hex({static_cast<const uint8_t*>(flat.data_ptr()),
                                    static_cast<uint64_t>(flat.numel() * flat.element_size())})},
                       {"values", values}});
  }
  return {{"metadata", kInteropMetadata}, {"tensors", tensors}};
}

// Set PARITY_INTEROP_OUT=DIR to write DIR/parity_written.safetensors and its expected JSON for
// `scripts/python_safetensors_interop.py read`.
TEST(SafetensorsInterop, WritesFileForPythonCheck) {
  const char* out = std::getenv("PARITY_INTEROP_OUT");
  if (out == nullptr) GTEST_SKIP() << "set PARITY_INTEROP_OUT=DIR to write the file for Python";
  WriteSafetensors(std::string(out) + "/parity_written.safetensors", InteropTensors(),
                   kInteropMetadata);
  WriteFileAtomic(std::string(out) + "/parity_written.expected.json",
                  InteropExpectedJson().dump(1) + "\n");
}

// The committed parity_written.safetensors was checked by Python's safetensors (see the script);
// the writer must keep producing exactly those bytes.
TEST(SafetensorsInterop, WriterStillMatchesTheFilePythonChecked) {
  const std::string golden = TestDataPath("safetensors/parity_written.safetensors");
  ASSERT_TRUE(std::filesystem::exists(golden)) << golden;
  TempDir dir;
  std::string path = dir.path() + "/parity_written.safetensors";
  WriteSafetensors(path, InteropTensors(), kInteropMetadata);
  EXPECT_EQ(ReadFileText(path), ReadFileText(golden));
  ExpectMatchesExpectedJson(SafetensorsFile::Open(golden), InteropExpectedJson());
}

std::string PythonFixture() { return TestDataPath("safetensors/python_written.safetensors"); }

#define SKIP_IF_NO_PYTHON_FIXTURE()                                                           \
  if (!std::filesystem::exists(PythonFixture()))                                              \
  GTEST_SKIP() << PythonFixture() << " is not there yet: run `python3 "                       \
               << "scripts/python_safetensors_interop.py write tests/data/safetensors` where " \
               << "Python's safetensors is installed and commit the two files"

TEST(SafetensorsInterop, ReadsFileWrittenByPython) {
  SKIP_IF_NO_PYTHON_FIXTURE();
  nlohmann::json expected = nlohmann::json::parse(
      ReadFileText(TestDataPath("safetensors/python_written.expected.json")));
  ExpectMatchesExpectedJson(SafetensorsFile::Open(PythonFixture()), expected);
}

// Python's tensors, taken in name order, put in Python's write order and written with its metadata,
// give Python's exact bytes: this checks InPythonWriteOrder against save_file's own sort.
TEST(SafetensorsInterop, RewritesPythonFileByteForByte) {
  SKIP_IF_NO_PYTHON_FIXTURE();
  SafetensorsFile python = SafetensorsFile::Open(PythonFixture());
  ASSERT_LE(python.metadata().size(), 1u) << "Python orders a larger metadata map arbitrarily";
  std::vector<NamedTensor> tensors;
  for (const TensorInfo& t : python.tensors()) tensors.push_back({t.name, python.Get(t.name), t.dtype});
  std::sort(tensors.begin(), tensors.end(),
            [](const NamedTensor& a, const NamedTensor& b) { return a.name < b.name; });
  TempDir dir;
  std::string path = dir.path() + "/rewritten.safetensors";
  WriteSafetensors(path, InPythonWriteOrder(tensors), python.metadata());
  EXPECT_EQ(ReadFileText(path), ReadFileText(PythonFixture()));
}

TEST(SafetensorsWriter, InPythonWriteOrderSortsByDTypeThenName) {
  std::vector<NamedTensor> expected = InteropTensors();  // listed in Python's order
  std::vector<NamedTensor> shuffled(expected.rbegin(), expected.rend());
  std::vector<std::string> names;
  for (const NamedTensor& t : InPythonWriteOrder(shuffled)) names.push_back(t.name);
  std::vector<std::string> expected_names;
  for (const NamedTensor& t : expected) expected_names.push_back(t.name);
  EXPECT_EQ(names, expected_names);
  EXPECT_THROW(InPythonWriteOrder({{"u", at::Tensor()}}), InputError);
}

}  // namespace
}  // namespace parity::io
