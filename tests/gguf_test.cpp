// GGUF reading and ggml dequantization against an independent numpy implementation
// (tests/data/gguf/make_reference.py, written from the GGUF spec and gguf-py's block layouts): every
// metadata value type, tensor infos and alignment, and F32/F16/BF16/Q8_0/Q4_0/Q4_K/Q6_K values
// bit-identical to the reference's FP32 computation. Plus malformed files, each a named error.
#include "harness/io/gguf.h"
#include "harness/io/gguf_tensor.h"

#include <cmath>

#include <ATen/ATen.h>
#include <cstring>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "tests/test_util.h"

namespace parity::io {
namespace {

using ::testing::HasSubstr;

TEST(Gguf, ReadsHeaderMetadataAndTensorInfos) {
  nlohmann::json expected = ReadJsonFile(TestDataPath("gguf/expected.json"));
  GgufFile file = GgufFile::Open(TestDataPath("gguf/tiny.gguf"));
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(file.alignment(), 64u);
  EXPECT_EQ(file.data_offset(), expected["data_offset"].get<uint64_t>());
  ASSERT_EQ(file.metadata().size(), expected["metadata"].size());
  for (const auto& [key, entry] : expected["metadata"].items()) {
    const GgufValue* value = file.Find(key);
    ASSERT_NE(value, nullptr) << key;
    EXPECT_EQ(static_cast<int>(value->type), entry["type"].get<int>()) << key;
    if (value->type == GgufType::kF32) {
      EXPECT_EQ(value->value.get<float>(), entry["value"].get<float>()) << key;
    } else {
      EXPECT_EQ(value->value, entry["value"]) << key;
    }
  }
  EXPECT_EQ(file.Find("test.array_nested")->element_type, GgufType::kArray);
  ASSERT_EQ(file.tensors().size(), expected["tensors"].size());
  for (size_t i = 0; i < file.tensors().size(); ++i) {
    const GgufTensorInfo& tensor = file.tensors()[i];
    const nlohmann::json& want = expected["tensors"][i];
    EXPECT_EQ(tensor.name, want["name"].get<std::string>());
    EXPECT_EQ(tensor.dims, want["dims"].get<std::vector<int64_t>>());
    EXPECT_EQ(tensor.type->id, want["type"].get<uint32_t>());
    EXPECT_EQ(tensor.n_bytes, want["bytes"].get<uint64_t>());
    EXPECT_EQ(tensor.offset % 64, 0u);
  }
  EXPECT_EQ(file.FindTensor("q4_k.weight")->TorchShape(), (std::vector<int64_t>{2, 256}));
}

// The container as HF's JavaScript GGUF parser reads it (tests/data/gguf/hf_gguf.json, npm
// @huggingface/gguf@0.4.6): an implementation independent of both Parity and make_reference.py.
TEST(Gguf, AgreesWithHfJavascriptParser) {
  nlohmann::json hf = ReadJsonFile(TestDataPath("gguf/hf_gguf.json"));
  GgufFile file = GgufFile::Open(TestDataPath("gguf/tiny.gguf"));
  EXPECT_EQ(std::to_string(file.data_offset()), hf["tensorDataOffset"].get<std::string>());
  EXPECT_EQ(hf["metadata"]["version"], file.version());
  for (const auto& [key, value] : file.metadata()) {
    ASSERT_TRUE(hf["metadata"].contains(key)) << key;
    const nlohmann::json& theirs = hf["metadata"][key];
    if (theirs.is_string() && value.value.is_number_integer()) {  // 64-bit integers come as strings
      EXPECT_EQ(theirs.get<std::string>(), value.value.dump()) << key;
    } else if (value.type == GgufType::kF32) {
      EXPECT_EQ(theirs.get<float>(), value.value.get<float>()) << key;
    } else {
      EXPECT_EQ(theirs, value.value) << key;
    }
  }
  ASSERT_EQ(hf["tensors"].size(), file.tensors().size());
  for (size_t i = 0; i < file.tensors().size(); ++i) {
    const GgufTensorInfo& tensor = file.tensors()[i];
    const nlohmann::json& theirs = hf["tensors"][i];
    EXPECT_EQ(theirs["name"], tensor.name);
    EXPECT_EQ(theirs["dtype"], tensor.type->id);
    EXPECT_EQ(theirs["offset"].get<std::string>(), std::to_string(tensor.offset));
    std::vector<std::string> dims;
    for (int64_t d : tensor.dims) dims.push_back(std::to_string(d));
    EXPECT_EQ(theirs["shape"].get<std::vector<std::string>>(), dims) << tensor.name;
  }
}

TEST(Gguf, DequantizesBitIdenticallyToTheReference) {
  nlohmann::json expected = ReadJsonFile(TestDataPath("gguf/expected.json"));
  GgufFile file = GgufFile::Open(TestDataPath("gguf/tiny.gguf"));
  for (const auto& want : expected["tensors"]) {
    const std::string name = want["name"].get<std::string>();
    std::vector<float> values = file.ReadFloat(*file.FindTensor(name));
    const auto reference = want["values"].get<std::vector<double>>();
    ASSERT_EQ(values.size(), reference.size()) << name;
    int mismatches = 0;
    for (size_t i = 0; i < values.size(); ++i) {
      const float r = static_cast<float>(reference[i]);
      // Bitwise, so that -0.0 vs 0.0 or a 1-ulp difference would show.
      if (std::memcmp(&values[i], &r, 4) != 0 && ++mismatches <= 3) {
        ADD_FAILURE() << name << "[" << i << "]: parity " << values[i] << ", reference " << r;
      }
    }
    EXPECT_EQ(mismatches, 0) << name;
  }
}

TEST(Gguf, TypeTableBitsPerWeight) {
  EXPECT_DOUBLE_EQ(BitsPerWeight(*FindGgmlType(12)), 4.5);      // Q4_K
  EXPECT_DOUBLE_EQ(BitsPerWeight(*FindGgmlType(14)), 6.5625);   // Q6_K
  EXPECT_DOUBLE_EQ(BitsPerWeight(*FindGgmlType(8)), 8.5);       // Q8_0
  EXPECT_DOUBLE_EQ(BitsPerWeight(*FindGgmlType(2)), 4.5);       // Q4_0
  EXPECT_DOUBLE_EQ(BitsPerWeight(*FindGgmlType(30)), 16);       // BF16
  EXPECT_EQ(FindGgmlType(4), nullptr);                          // removed upstream
  EXPECT_STREQ(FindGgmlType(13)->name, "Q5_K");
  EXPECT_FALSE(FindGgmlType(13)->dequantizable);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));        // smallest subnormal
  EXPECT_TRUE(std::isinf(HalfToFloat(0x7C00)));
}

TEST(Gguf, SummaryListsTypesAndBitsPerWeight) {
  GgufFile file = GgufFile::Open(TestDataPath("gguf/tiny.gguf"));
  nlohmann::json summary = SummarizeGguf(file);
  EXPECT_EQ(summary["tensor_count"], 7);
  EXPECT_EQ(summary["types"]["Q6_K"]["bits_per_weight"], 6.5625);
  EXPECT_EQ(summary["types"]["Q4_K"]["block_size"], 256);
  EXPECT_EQ(summary["metadata"]["test.array_string"]["length"], 3);
  std::string text = GgufSummaryText(file);
  EXPECT_THAT(text, HasSubstr("GGUF v3, alignment 64, 7 tensors"));
  EXPECT_THAT(text, HasSubstr("q4_k.weight"));
}

class GgufErrors : public ::testing::Test {
 protected:
  std::string good_ = ReadFileText(TestDataPath("gguf/tiny.gguf"));
  TempDir dir_;
  std::string ErrorFor(const std::string& bytes) {
    WriteFileText(dir_.path() + "/bad.gguf", bytes);
    try {
      GgufFile::Open(dir_.path() + "/bad.gguf");
    } catch (const InputError& e) {
      return e.what();
    }
    return "no error";
  }
  // Offset of the first tensor info: the name of the first tensor, minus its 8-byte length.
  size_t TensorInfoStart() const { return good_.find("f32.weight") - 8; }
};

TEST_F(GgufErrors, WrongMagicVersionAndTruncation) {
  EXPECT_THAT(ErrorFor("GGML" + good_.substr(4)), HasSubstr("not a GGUF file"));
  std::string v1 = good_;
  v1[4] = 1;
  EXPECT_THAT(ErrorFor(v1), HasSubstr("GGUF version 1"));
  EXPECT_THAT(ErrorFor(good_.substr(0, good_.find("q6_k.weight") + 5)),
              HasSubstr("tensor name 6 claims 11 bytes at offset 903, only 5 remain"));
  EXPECT_THAT(ErrorFor(good_.substr(0, 100)),
              HasSubstr("17 metadata entries and 7 tensors cannot fit in 100 bytes"));
  EXPECT_THAT(ErrorFor(good_.substr(0, good_.size() - 64)), HasSubstr("file truncated?"));
}

TEST_F(GgufErrors, BadTensorInfosAreNamed) {
  // First tensor: name, u32 n_dims = 2, u64 8, u64 3, u32 type, u64 offset.
  const size_t info = TensorInfoStart() + 8 + 10;
  std::string bad_type = good_;
  uint32_t unknown = 99;
  std::memcpy(bad_type.data() + info + 4 + 16, &unknown, 4);
  EXPECT_THAT(ErrorFor(bad_type), HasSubstr("tensor 'f32.weight': unknown ggml type 99"));
  std::string misaligned = good_;
  uint64_t offset = 4;
  std::memcpy(misaligned.data() + info + 4 + 16 + 4, &offset, 8);
  EXPECT_THAT(ErrorFor(misaligned), HasSubstr("offset 4 is not a multiple of the alignment 64"));
  std::string overlapping = good_;
  offset = 64;  // the second tensor (F16, 64 bytes) starts at 128: make the first [64, 160)
  std::memcpy(overlapping.data() + info + 4 + 16 + 4, &offset, 8);
  EXPECT_THAT(ErrorFor(overlapping), HasSubstr("overlap"));
  std::string zero_dim = good_;
  uint64_t zero = 0;
  std::memcpy(zero_dim.data() + info + 4, &zero, 8);
  EXPECT_THAT(ErrorFor(zero_dim), HasSubstr("dimension 0 is 0"));
}

TEST_F(GgufErrors, BadMetadataIsNamed) {
  // The first key is general.architecture (a string): change its value type to 13.
  std::string bad_value_type = good_;
  const size_t type_at = good_.find("general.architecture") + std::strlen("general.architecture");
  bad_value_type[type_at] = 13;
  EXPECT_THAT(ErrorFor(bad_value_type),
              HasSubstr("metadata 'general.architecture': unknown value type 13"));
  std::string huge_string = good_;
  uint64_t huge = uint64_t{1} << 50;
  std::memcpy(huge_string.data() + type_at + 4, &huge, 8);
  EXPECT_THAT(ErrorFor(huge_string), HasSubstr("claims 1125899906842624 bytes"));
}

TEST(GgufCli, InspectPrintsTypesAndRefusesOtherFiles) {
  std::string output;
  ASSERT_EQ(RunCommand(fmt::format("'{}' inspect '{}' --json 2>/dev/null", ParityCli(),
                                   TestDataPath("gguf/tiny.gguf")),
                       &output),
            0)
      << output;
  nlohmann::json summary = nlohmann::json::parse(output);
  EXPECT_EQ(summary["format"], "gguf");
  EXPECT_EQ(summary["types"]["Q8_0"]["bits_per_weight"], 8.5);
  EXPECT_EQ(RunCommand(fmt::format("'{}' inspect '{}'", ParityCli(), TestDataPath("kld/base.kld")),
                       &output),
            2);
  EXPECT_THAT(output, HasSubstr("not a GGUF file"));
}

TEST(GgufDequantize, UnsupportedTypeIsNamed) {
  std::vector<uint8_t> block(176, 0);
  std::vector<float> out(256);
  try {
    DequantizeRow(*FindGgmlType(13), block.data(), 256, out.data());
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("Q5_K cannot be dequantized"));
  }
}

TEST(GgufTensor, TorchShapeAndValues) {
  GgufFile file = GgufFile::Open(TestDataPath("gguf/tiny.gguf"));
  const GgufTensorInfo& q4k = *file.FindTensor("q4_k.weight");
  at::Tensor t = GgufTensorToTorch(file, q4k);
  EXPECT_EQ(t.sizes(), at::IntArrayRef({2, 256}));
  std::vector<float> flat = file.ReadFloat(q4k);
  EXPECT_EQ(t[1][3].item<float>(), flat[256 + 3]);  // row-major: innermost GGUF dim is the last
}

// The converter's permutation, by index: within head h (d = rows / n_head rows), row i * d/2 + j of
// HF's layout (rotary half i, pair j) moves to row 2 * j + i.
TEST(GgufTensor, LlamaQKPermutationByIndex) {
  const int64_t n_head = 3, head_dim = 8, cols = 5;
  at::Tensor w = at::arange(n_head * head_dim * cols, at::kFloat).reshape({n_head * head_dim, cols});
  at::Tensor permuted = PermuteLlamaQK(w, n_head);
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < head_dim / 2; ++j) {
        EXPECT_TRUE(at::equal(permuted[h * head_dim + 2 * j + i], w[h * head_dim + i * head_dim / 2 + j]))
            << "head " << h << " half " << i << " pair " << j;
      }
    }
  }
  EXPECT_TRUE(at::equal(UnpermuteLlamaQK(permuted, n_head), w));
  at::Tensor bias = at::arange(n_head * head_dim, at::kFloat);  // 1-D biases permute the same way
  EXPECT_TRUE(at::equal(UnpermuteLlamaQK(PermuteLlamaQK(bias, n_head), n_head), bias));
  EXPECT_THROW(PermuteLlamaQK(at::zeros({10, 4}), 3), InputError);
}

}  // namespace
}  // namespace parity::io
