// ggml's tensor types (the block layouts GGUF files store) and exact dequantization of the ones Parity
// reads: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, computed with the same FP32 operations in the same
// order as ggml's dequantize_row_* (ggml-quants.c; the layouts as gguf-py/gguf/quants.py documents
// them), so results are bit-identical to llama.cpp's.
//   Q4_0  32 values, 18 bytes: f16 d, 16 bytes; byte j holds value j (low nibble) and j+16 (high);
//         x = d * (q - 8).
//   Q8_0  32 values, 34 bytes: f16 d, 32 int8; x = d * q.
//   Q4_K  256 values, 144 bytes: f16 d, f16 dmin, 12 bytes of eight 6-bit (scale, min) pairs, 128
//         bytes of nibbles (each 32-byte group: low nibbles = sub-block 2g, high = 2g+1);
//         x = (d * scale) * q - (dmin * min).
//   Q6_K  256 values, 210 bytes: 128 bytes low nibbles, 64 bytes high 2-bit pairs, 16 int8 scales,
//         f16 d; x = (d * scale) * (q - 32), one scale per 16 values.
#pragma once

#include <cstdint>
#include <string>

namespace parity::io {

struct GgmlTypeInfo {
  uint32_t id;            // ggml_type value in GGUF tensor infos
  const char* name;       // "Q4_K"
  int64_t block_size;     // values per block
  int64_t type_size;      // bytes per block
  bool dequantizable;     // Parity can dequantize it
};

// The type with ggml_type value `id`, or nullptr when unknown (the table lists ggml's types up to
// MXFP4 so that inspect can name what it cannot read).
const GgmlTypeInfo* FindGgmlType(uint32_t id);

// Bits per weight of a type: 8 * type_size / block_size (Q4_K: 4.5, Q6_K: 6.5625, Q8_0: 8.5).
double BitsPerWeight(const GgmlTypeInfo& type);

// Dequantizes `count` values (a multiple of the type's block size) from `data` into `out`.
// Throws InputError for types Parity cannot dequantize.
void DequantizeRow(const GgmlTypeInfo& type, const uint8_t* data, int64_t count, float* out);

// IEEE half to float, exactly (as ggml's GGML_FP16_TO_FP32).
float HalfToFloat(uint16_t half);
// Float to IEEE half, rounded to nearest even (ggml's GGML_FP32_TO_FP16, numpy's astype(float16)):
// overflow to infinity, subnormals kept, NaN stays a quiet NaN with its sign.
uint16_t FloatToHalf(float value);
// Float to bfloat16 as gguf-py writes it (quants.py __compute_fp32_to_bf16): round to nearest even
// on the upper 16 bits; a NaN keeps its sign and upper bits with the quiet bit set.
uint16_t FloatToBFloat16(float value);

// Types Parity can write: F32, F16, BF16, Q8_0 (the `--outtype` choices of convert_hf_to_gguf.py
// apart from the ternary ones).
bool Quantizable(const GgmlTypeInfo& type);
// Encodes `count` FP32 values (a multiple of the block size) into count / block_size * type_size
// bytes at `out`, exactly as ggml's reference quantize_row_*_ref / gguf-py's quantize do:
//   Q8_0: per block of 32, amax = max|x|, d = amax / 127, id = d ? 1 / d : 0 (FP32),
//         q = roundf(x * id) (half away from zero), d stored as FloatToHalf(d).
// Throws InputError for a type Parity cannot write.
void QuantizeRow(const GgmlTypeInfo& type, const float* values, int64_t count, uint8_t* out);
// The ggml type named `name` ("Q8_0", "f16", case-insensitive); nullptr when unknown.
const GgmlTypeInfo* FindGgmlTypeByName(const std::string& name);

}  // namespace parity::io
