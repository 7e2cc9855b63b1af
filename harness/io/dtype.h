// The element types a safetensors file can hold, with their names, sizes and libtorch equivalents.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <c10/core/ScalarType.h>

namespace parity::io {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool, kF8E4M3, kF8E5M2 };

// "F32", "BF16", "F8_E4M3"... exactly as safetensors spells them.
std::string_view DTypeName(DType dtype);
// Parses a safetensors dtype name; std::nullopt for an unknown name.
std::optional<DType> ParseDType(std::string_view name);
// Bytes per element.
int64_t DTypeSize(DType dtype);
// The libtorch type a tensor of this dtype is handed out as. FP8 has no libtorch 1.13 type, so FP8
// tensors are handed out as raw bytes (kByte) and the caller keeps the DType beside them.
c10::ScalarType ToScalarType(DType dtype);
// The safetensors dtype for a libtorch type; throws InputError for types safetensors cannot hold.
DType FromScalarType(c10::ScalarType type);

}  // namespace parity::io
