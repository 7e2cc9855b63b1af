#include "harness/io/ggml_quants.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "harness/core/error.h"

namespace parity::io {
namespace {

// ggml's enum ggml_type (ggml.h); ids 4, 5 and 31-33, 36-38 were removed upstream.
constexpr GgmlTypeInfo kTypes[] = {
    {0, "F32", 1, 4, true},         {1, "F16", 1, 2, true},        {2, "Q4_0", 32, 18, true},
    {3, "Q4_1", 32, 20, false},     {6, "Q5_0", 32, 22, false},    {7, "Q5_1", 32, 24, false},
    {8, "Q8_0", 32, 34, true},      {9, "Q8_1", 32, 36, false},    {10, "Q2_K", 256, 84, false},
    {11, "Q3_K", 256, 110, false},  {12, "Q4_K", 256, 144, true},  {13, "Q5_K", 256, 176, false},
    {14, "Q6_K", 256, 210, true},   {15, "Q8_K", 256, 292, false}, {16, "IQ2_XXS", 256, 66, false},
    {17, "IQ2_XS", 256, 74, false}, {18, "IQ3_XXS", 256, 98, false}, {19, "IQ1_S", 256, 50, false},
    {20, "IQ4_NL", 32, 18, false},  {21, "IQ3_S", 256, 110, false}, {22, "IQ2_S", 256, 82, false},
    {23, "IQ4_XS", 256, 136, false}, {24, "I8", 1, 1, false},      {25, "I16", 1, 2, false},
    {26, "I32", 1, 4, false},       {27, "I64", 1, 8, false},      {28, "F64", 1, 8, false},
    {29, "IQ1_M", 256, 56, false},  {30, "BF16", 1, 2, true},      {34, "TQ1_0", 256, 54, false},
    {35, "TQ2_0", 256, 66, false},  {39, "MXFP4", 32, 17, false},
};

uint16_t ReadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

void DequantizeQ4_0(const uint8_t* block, float* y) {
  const float d = HalfToFloat(ReadU16(block));
  const uint8_t* qs = block + 2;
  for (int j = 0; j < 16; ++j) {
    const int x0 = (qs[j] & 0x0F) - 8;
    const int x1 = (qs[j] >> 4) - 8;
    y[j] = static_cast<float>(x0) * d;
    y[j + 16] = static_cast<float>(x1) * d;
  }
}

void DequantizeQ8_0(const uint8_t* block, float* y) {
  const float d = HalfToFloat(ReadU16(block));
  const auto* qs = reinterpret_cast<const int8_t*>(block + 2);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

// The j-th 6-bit (scale, min) pair of a Q4_K/Q5_K block (ggml's get_scale_min_k4).
void ScaleMinK4(int j, const uint8_t* q, uint8_t& scale, uint8_t& min) {
  if (j < 4) {
    scale = q[j] & 63;
    min = q[j + 4] & 63;
  } else {
    scale = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

void DequantizeQ4_K(const uint8_t* block, float* y) {
  const float d = HalfToFloat(ReadU16(block));
  const float dmin = HalfToFloat(ReadU16(block + 2));
  const uint8_t* scales = block + 4;
  const uint8_t* q = block + 16;
  int is = 0;
  for (int j = 0; j < 256; j += 64) {
    uint8_t sc, m;
    ScaleMinK4(is + 0, scales, sc, m);
    const float d1 = d * sc, m1 = dmin * m;
    ScaleMinK4(is + 1, scales, sc, m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    q += 32;
    is += 2;
  }
}

void DequantizeQ6_K(const uint8_t* block, float* y) {
  const uint8_t* ql = block;
  const uint8_t* qh = block + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(block + 192);
  const float d = HalfToFloat(ReadU16(block + 208));
  for (int n = 0; n < 256; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = static_cast<int8_t>((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = static_cast<int8_t>((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l + 0] = d * sc[is + 0] * q1;
      y[l + 32] = d * sc[is + 2] * q2;
      y[l + 64] = d * sc[is + 4] * q3;
      y[l + 96] = d * sc[is + 6] * q4;
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

}  // namespace

float HalfToFloat(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000) << 16;
  uint32_t exponent = (half >> 10) & 0x1F;
  uint32_t mantissa = half & 0x3FF;
  uint32_t bits;
  if (exponent == 0x1F) {
    bits = sign | 0x7F800000 | (mantissa << 13);  // inf / nan
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    exponent = 113;
    while ((mantissa & 0x400) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3FF) << 13);
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

uint16_t FloatToHalf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t magnitude = bits & 0x7FFFFFFF;
  if (magnitude > 0x7F800000) {  // NaN: quiet, top mantissa bits kept
    return static_cast<uint16_t>(sign | 0x7E00 | ((magnitude >> 13) & 0x3FF));
  }
  if (magnitude >= 0x477FF000) return static_cast<uint16_t>(sign | 0x7C00);  // rounds to >= 65520
  const int32_t exponent = static_cast<int32_t>(magnitude >> 23) - 127;
  if (exponent >= -14) {  // normal half: drop 13 mantissa bits, round to nearest even
    const uint32_t rebased = magnitude - (112u << 23);  // exponent bias 127 -> 15
    const uint32_t round = 0xFFF + ((rebased >> 13) & 1);
    return static_cast<uint16_t>(sign | ((rebased + round) >> 13));
  }
  if (exponent < -25) return sign;  // below half the smallest subnormal: zero
  // Subnormal half: value = m * 2^-24 with m = mantissa (implicit bit set) >> (-exponent - 1).
  const uint32_t mantissa = (magnitude & 0x7FFFFF) | 0x800000;
  const int shift = -exponent - 1;  // 14 .. 24
  const uint32_t half_ulp = 1u << (shift - 1);
  uint32_t result = mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1);
  if (rest > half_ulp || (rest == half_ulp && (result & 1))) ++result;
  return static_cast<uint16_t>(sign | result);
}

uint16_t FloatToBFloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>(((bits & 0xFFFF0000) | (64u << 16)) >> 16);
  return static_cast<uint16_t>((bits + (0x7FFF + ((bits >> 16) & 1))) >> 16);
}

bool Quantizable(const GgmlTypeInfo& type) {
  return type.id == 0 || type.id == 1 || type.id == 8 || type.id == 30;
}

void QuantizeRow(const GgmlTypeInfo& type, const float* values, int64_t count, uint8_t* out) {
  if (count % type.block_size != 0) {
    throw InputError(fmt::format("{} values is not a whole number of {} blocks of {}", count,
                                 type.name, type.block_size));
  }
  switch (type.id) {
    case 0:
      std::memcpy(out, values, static_cast<size_t>(count) * 4);
      return;
    case 1:
    case 30:
      for (int64_t i = 0; i < count; ++i) {
        const uint16_t h = type.id == 1 ? FloatToHalf(values[i]) : FloatToBFloat16(values[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    case 8:
      for (int64_t b = 0; b < count / 32; ++b) {
        const float* x = values + b * 32;
        uint8_t* block = out + b * 34;
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t d16 = FloatToHalf(d);
        std::memcpy(block, &d16, 2);
        for (int j = 0; j < 32; ++j) {
          block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(x[j] * id)));
        }
      }
      return;
    default:
      throw InputError(fmt::format("Parity cannot write ggml type {} (it writes F32, F16, BF16, Q8_0)",
                                   type.name));
  }
}

const GgmlTypeInfo* FindGgmlTypeByName(const std::string& name) {
  std::string upper;
  for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const GgmlTypeInfo& type : kTypes) {
    if (upper == type.name) return &type;
  }
  return nullptr;
}

const GgmlTypeInfo* FindGgmlType(uint32_t id) {
  for (const GgmlTypeInfo& type : kTypes) {
    if (type.id == id) return &type;
  }
  return nullptr;
}

double BitsPerWeight(const GgmlTypeInfo& type) {
  return 8.0 * static_cast<double>(type.type_size) / static_cast<double>(type.block_size);
}

void DequantizeRow(const GgmlTypeInfo& type, const uint8_t* data, int64_t count, float* out) {
  if (count % type.block_size != 0) {
    throw InputError(fmt::format("{} values is not a whole number of {} blocks of {}", count,
                                 type.name, type.block_size));
  }
  const int64_t blocks = count / type.block_size;
  switch (type.id) {
    case 0:
      std::memcpy(out, data, static_cast<size_t>(count) * 4);
      return;
    case 1:
      for (int64_t i = 0; i < count; ++i) out[i] = HalfToFloat(ReadU16(data + 2 * i));
      return;
    case 30:
      for (int64_t i = 0; i < count; ++i) {
        const uint32_t bits = static_cast<uint32_t>(ReadU16(data + 2 * i)) << 16;
        std::memcpy(out + i, &bits, 4);
      }
      return;
    case 2:
      for (int64_t b = 0; b < blocks; ++b) DequantizeQ4_0(data + b * 18, out + b * 32);
      return;
    case 8:
      for (int64_t b = 0; b < blocks; ++b) DequantizeQ8_0(data + b * 34, out + b * 32);
      return;
    case 12:
      for (int64_t b = 0; b < blocks; ++b) DequantizeQ4_K(data + b * 144, out + b * 256);
      return;
    case 14:
      for (int64_t b = 0; b < blocks; ++b) DequantizeQ6_K(data + b * 210, out + b * 256);
      return;
    default:
      throw InputError(fmt::format(
          "ggml type {} cannot be dequantized by Parity (it reads F32, F16, BF16, Q8_0, Q4_0, Q4_K, "
          "Q6_K)",
          type.name));
  }
}

}  // namespace parity::io
