#include "harness/io/dtype.h"

#include <array>

#include <fmt/format.h>
#include <torch/version.h>

#include "harness/core/error.h"

// libtorch 2.1 added FP8 scalar types; 1.13 has none, so FP8 is raw bytes there (see dtype.h).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define PARITY_HAS_TORCH_FP8 1
#else
#define PARITY_HAS_TORCH_FP8 0
#endif

namespace parity::io {
namespace {

struct DTypeRow {
  DType dtype;
  std::string_view name;  // as safetensors spells it
  int64_t size;           // bytes per element
  c10::ScalarType scalar_type;
};

// One row per safetensors dtype this harness reads. Order follows the enum.
constexpr std::array<DTypeRow, 12> kDTypes = {{
    {DType::kF64, "F64", 8, c10::ScalarType::Double},
    {DType::kF32, "F32", 4, c10::ScalarType::Float},
    {DType::kF16, "F16", 2, c10::ScalarType::Half},
    {DType::kBF16, "BF16", 2, c10::ScalarType::BFloat16},
    {DType::kI64, "I64", 8, c10::ScalarType::Long},
    {DType::kI32, "I32", 4, c10::ScalarType::Int},
    {DType::kI16, "I16", 2, c10::ScalarType::Short},
    {DType::kI8, "I8", 1, c10::ScalarType::Char},
    {DType::kU8, "U8", 1, c10::ScalarType::Byte},
    {DType::kBool, "BOOL", 1, c10::ScalarType::Bool},
    {DType::kF8E4M3, "F8_E4M3", 1, c10::ScalarType::Byte},  // raw bytes, see dtype.h
    {DType::kF8E5M2, "F8_E5M2", 1, c10::ScalarType::Byte},
}};

// RowOf indexes the table by enum value, so the rows must follow the enum exactly.
constexpr bool RowsFollowEnum() {
  for (size_t i = 0; i < kDTypes.size(); ++i) {
    if (static_cast<size_t>(kDTypes[i].dtype) != i) return false;
  }
  return true;
}
static_assert(RowsFollowEnum(), "kDTypes rows must be in DType enum order");

const DTypeRow& RowOf(DType dtype) { return kDTypes[static_cast<size_t>(dtype)]; }

}  // namespace

std::string_view DTypeName(DType dtype) { return RowOf(dtype).name; }

std::optional<DType> ParseDType(std::string_view name) {
  for (const DTypeRow& row : kDTypes) {
    if (row.name == name) return row.dtype;
  }
  return std::nullopt;
}

int64_t DTypeSize(DType dtype) { return RowOf(dtype).size; }

c10::ScalarType ToScalarType(DType dtype) { return RowOf(dtype).scalar_type; }

DType FromScalarType(c10::ScalarType type) {
#if PARITY_HAS_TORCH_FP8
  if (type == c10::ScalarType::Float8_e4m3fn) return DType::kF8E4M3;
  if (type == c10::ScalarType::Float8_e5m2) return DType::kF8E5M2;
#endif
  // kByte maps to U8: FP8 raw bytes must be labelled by the caller (NamedTensor::dtype).
  for (const DTypeRow& row : kDTypes) {
    if (row.scalar_type == type && row.dtype != DType::kF8E4M3 && row.dtype != DType::kF8E5M2) {
      return row.dtype;
    }
  }
  throw InputError(fmt::format("libtorch type {} has no safetensors dtype", c10::toString(type)));
}

}  // namespace parity::io
