// The GGUF writer and ggml's reference quantizers (io/gguf_writer.h, io/ggml_quants.h), checked
// against an independent numpy implementation written here (gguf-py's quants.py formulas: numpy's
// float16 cast, the BF16 rounding, Q8_0 with np.round-half-away-from-zero), and a written file read
// back by the reader (io/gguf.h).
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "harness/io/ggml_quants.h"
#include "harness/io/gguf.h"
#include "harness/io/gguf_writer.h"
#include "test_util.h"

namespace parity::io {
namespace {

// Edge cases and a wide random spread: subnormals, half's overflow edge, ties, NaN, infinities.
std::vector<float> TestValues() {
  std::vector<float> values = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f,
                               1e-8f, 5.96e-8f, 2.98e-8f, 2.9802322e-8f, 6.1e-5f, 6.103515625e-05f,
                               1.00048828125f, 1.0009765625f, 1.00146484375f, 3.14159265f,
                               std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(),
                               std::numeric_limits<float>::quiet_NaN(), 1e30f, -1e-30f,
                               std::numeric_limits<float>::denorm_min()};
  std::mt19937 random(7);
  std::uniform_real_distribution<float> exponent(-30.0f, 18.0f);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 4000; ++i) {
    values.push_back((i % 2 ? -1.0f : 1.0f) * std::exp2(exponent(random)));
    uint32_t raw = bits(random);
    float f;
    std::memcpy(&f, &raw, 4);
    values.push_back(f);
  }
  while (values.size() % 32 != 0) values.push_back(0.5f);
  return values;
}

// Q8_0 input: blocks of realistic weights, an all-zero block, a block with a tie at x * id = k + .5.
std::vector<float> Q8Values() {
  std::vector<float> values;
  std::mt19937 random(3);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (int i = 0; i < 32 * 300; ++i) values.push_back(normal(random));
  for (int i = 0; i < 32; ++i) values.push_back(0.0f);
  for (int i = 0; i < 32; ++i) values.push_back(i == 0 ? 127.0f : static_cast<float>(i) + 0.5f);
  for (int i = 0; i < 32; ++i) values.push_back(i == 0 ? -1e-3f : 1e-7f * static_cast<float>(i));
  return values;
}

void WriteFloats(const std::string& path, const std::vector<float>& values) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size() * 4));
}

constexpr const char* kNumpyReference = R"PY(
import sys
import numpy as np
src, out_f16, out_bf16, q8_src, out_q8 = sys.argv[1:6]
x = np.fromfile(src, dtype=np.float32)
x.astype(np.float16).view(np.uint16).tofile(out_f16)
# gguf-py quants.py __compute_fp32_to_bf16
n = x.view(np.uint32).astype(np.uint64)
n = np.where((n & 0x7fffffff) > 0x7f800000, (n & np.uint64(0xffff0000)) | np.uint64(64 << 16), n)
n = (n + (np.uint64(0x7fff) + ((n >> np.uint64(16)) & np.uint64(1)))) >> np.uint64(16)
n.astype(np.uint16).tofile(out_bf16)
# ggml quantize_row_q8_0_ref: d = amax / 127, id = 1 / d (0 for d == 0), q = round half away from 0
b = np.fromfile(q8_src, dtype=np.float32).reshape(-1, 32)
d = (np.abs(b).max(axis=1, keepdims=True) / np.float32(127)).astype(np.float32)
with np.errstate(divide="ignore"):
    inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
y = (b * inv).astype(np.float32)
a = np.abs(y)
fl = np.floor(a)
q = (np.sign(y) * (fl + np.floor(np.float32(2) * (a - fl)))).astype(np.int8)  # gguf-py np_roundf
with open(out_q8, "wb") as f:
    for i in range(b.shape[0]):
        f.write(d[i].astype(np.float16).tobytes())
        f.write(q[i].tobytes())
)PY";

TEST(GgufWriter, QuantizersMatchAnIndependentNumpyImplementation) {
  if (RunCommand("/usr/bin/python3 -c 'import numpy'") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 with numpy (Debian python3-numpy) is not installed";
  }
  TempDir dir;
  const std::vector<float> values = TestValues();
  const std::vector<float> q8_values = Q8Values();
  WriteFloats(dir.path() + "/x.f32", values);
  WriteFloats(dir.path() + "/q8.f32", q8_values);
  WriteFileText(dir.path() + "/ref.py", kNumpyReference);
  std::string log;
  ASSERT_EQ(RunCommand("/usr/bin/python3 " + dir.path() + "/ref.py " + dir.path() + "/x.f32 " +
                           dir.path() + "/f16 " + dir.path() + "/bf16 " + dir.path() + "/q8.f32 " +
                           dir.path() + "/q8",
                       &log),
            0)
      << log;
  const std::string f16 = ReadFileText(dir.path() + "/f16");
  const std::string bf16 = ReadFileText(dir.path() + "/bf16");
  ASSERT_EQ(f16.size(), values.size() * 2);
  int64_t f16_mismatches = 0, bf16_mismatches = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    uint16_t expected_half, expected_bf16;
    std::memcpy(&expected_half, f16.data() + 2 * i, 2);
    std::memcpy(&expected_bf16, bf16.data() + 2 * i, 2);
    const uint16_t half = FloatToHalf(values[i]);
    // numpy keeps a NaN's payload bits differently; both must be NaN of the same sign.
    const bool nan = std::isnan(values[i]);
    if (nan ? !(std::isnan(HalfToFloat(half)) && (half >> 15) == (expected_half >> 15))
            : half != expected_half) {
      if (++f16_mismatches <= 5) {
        ADD_FAILURE() << "f16 of " << values[i] << ": " << std::hex << half << " vs numpy " << expected_half;
      }
    }
    if (FloatToBFloat16(values[i]) != expected_bf16 && ++bf16_mismatches <= 5) {
      ADD_FAILURE() << "bf16 of " << values[i] << ": " << std::hex << FloatToBFloat16(values[i])
                    << " vs numpy " << expected_bf16;
    }
  }
  EXPECT_EQ(f16_mismatches, 0);
  EXPECT_EQ(bf16_mismatches, 0);

  const GgmlTypeInfo& q8_0 = *FindGgmlTypeByName("q8_0");
  std::vector<uint8_t> bytes(q8_values.size() / 32 * 34);
  QuantizeRow(q8_0, q8_values.data(), static_cast<int64_t>(q8_values.size()), bytes.data());
  const std::string expected = ReadFileText(dir.path() + "/q8");
  ASSERT_EQ(expected.size(), bytes.size());
  EXPECT_EQ(std::memcmp(expected.data(), bytes.data(), bytes.size()), 0)
      << "Q8_0 bytes differ from numpy's reference";
  // Dequantized, each value is within half a step (plus the FP16 rounding of d) of the input.
  std::vector<float> back(q8_values.size());
  DequantizeRow(q8_0, bytes.data(), static_cast<int64_t>(back.size()), back.data());
  for (size_t b = 0; b < back.size() / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(q8_values[b * 32 + j]));
    const float d = amax / 127.0f;
    for (int j = 0; j < 32; ++j) {
      EXPECT_LE(std::fabs(back[b * 32 + j] - q8_values[b * 32 + j]), d * (0.5f + 127.0f / 2048.0f) + 1e-12f)
          << "block " << b << " value " << j;
    }
  }
}

TEST(GgufWriter, WritesWhatTheReaderReadsBack) {
  TempDir dir;
  GgufWriter writer;
  writer.AddString("general.architecture", "llama");
  writer.AddU32("llama.block_count", 2);
  writer.AddF32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  writer.AddBool("tokenizer.ggml.add_bos_token", true);
  writer.AddStringArray("tokenizer.ggml.tokens", {"<unk>", "<s>", "a b"});
  writer.AddF32Array("tokenizer.ggml.scores", {0.0f, -1.5f, 2.0f});
  writer.AddI32Array("tokenizer.ggml.token_type", {2, 3, 1});
  std::vector<float> matrix(3 * 64), vector(5);
  for (size_t i = 0; i < matrix.size(); ++i) matrix[i] = std::sin(static_cast<float>(i)) * 0.1f;
  for (size_t i = 0; i < vector.size(); ++i) vector[i] = static_cast<float>(i) - 2.0f;
  const GgmlTypeInfo& q8_0 = *FindGgmlTypeByName("Q8_0");
  const GgmlTypeInfo& f32 = *FindGgmlTypeByName("F32");
  std::vector<uint8_t> q8(3 * 2 * 34), raw(5 * 4);
  QuantizeRow(q8_0, matrix.data(), 192, q8.data());
  QuantizeRow(f32, vector.data(), 5, raw.data());
  writer.AddTensor("m", {3, 64}, q8_0, q8);
  writer.AddTensor("v", {5}, f32, raw);
  EXPECT_THROW(writer.AddTensor("v", {5}, f32, raw), std::logic_error);
  EXPECT_THROW(writer.AddU32("llama.block_count", 3), std::logic_error);
  writer.Write(dir.path() + "/t.gguf");

  const GgufFile file = GgufFile::Open(dir.path() + "/t.gguf");
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(file.alignment(), 32u);
  EXPECT_EQ(file.data_offset() % 32, 0u);
  EXPECT_EQ(file.Find("general.architecture")->value, "llama");
  EXPECT_EQ(file.Find("llama.block_count")->type, GgufType::kU32);
  EXPECT_EQ(file.Find("llama.attention.layer_norm_rms_epsilon")->value.get<float>(), 1e-5f);
  EXPECT_EQ(file.Find("tokenizer.ggml.add_bos_token")->value, true);
  EXPECT_EQ(file.Find("tokenizer.ggml.tokens")->value, nlohmann::json({"<unk>", "<s>", "a b"}));
  EXPECT_EQ(file.Find("tokenizer.ggml.token_type")->element_type, GgufType::kI32);
  ASSERT_EQ(file.tensors().size(), 2u);
  EXPECT_EQ(file.tensors()[0].TorchShape(), (std::vector<int64_t>{3, 64}));
  EXPECT_EQ(file.tensors()[1].offset % 32, 0u);
  EXPECT_EQ(file.ReadRaw(file.tensors()[0]), q8);
  EXPECT_EQ(file.ReadFloat(file.tensors()[1]), vector);
  // A tensor whose rows are not whole Q8_0 blocks is refused.
  EXPECT_THROW(writer.AddTensor("bad", {2, 40}, q8_0, std::vector<uint8_t>(2 * 34)), std::logic_error);
}

}  // namespace
}  // namespace parity::io
