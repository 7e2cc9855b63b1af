#include "harness/convert/python_safetensors.h"

#include <algorithm>

namespace parity::convert {
namespace {

// Position of a dtype in the reference library's Dtype enum, which is declared in increasing
// alignment order (unsigned types, absent from io::DType, sit beside their signed twins).
int ReferenceDtypeRank(io::DType dtype) {
  switch (dtype) {
    case io::DType::kBool: return 0;
    case io::DType::kU8: return 1;
    case io::DType::kI8: return 2;
    case io::DType::kF8E5M2: return 3;
    case io::DType::kF8E4M3: return 4;
    case io::DType::kI16: return 5;
    case io::DType::kF16: return 7;
    case io::DType::kBF16: return 8;
    case io::DType::kI32: return 9;
    case io::DType::kF32: return 11;
    case io::DType::kF64: return 12;
    case io::DType::kI64: return 13;
  }
  return 0;
}

io::DType RecordedDtype(const io::NamedTensor& named) {
  return named.dtype ? *named.dtype : io::FromScalarType(named.tensor.scalar_type());
}

}  // namespace

void SortLikePythonSafetensors(std::vector<io::NamedTensor>& tensors) {
  std::stable_sort(tensors.begin(), tensors.end(),
                   [](const io::NamedTensor& a, const io::NamedTensor& b) {
                     const int rank_a = ReferenceDtypeRank(RecordedDtype(a));
                     const int rank_b = ReferenceDtypeRank(RecordedDtype(b));
                     if (rank_a != rank_b) return rank_a > rank_b;
                     return a.name < b.name;  // Rust String order: bytewise, as std::string's
                   });
}

void WriteSafetensorsLikePython(const std::string& path, std::vector<io::NamedTensor> tensors) {
  SortLikePythonSafetensors(tensors);
  io::WriteSafetensors(path, tensors, {{"format", "pt"}});
}

}  // namespace parity::convert
