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

}  // namespace parity::io
