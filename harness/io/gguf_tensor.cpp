#include "harness/io/gguf_tensor.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "harness/core/error.h"

namespace parity::io {
namespace {

// [rows, ...] -> [n_head, a, b, ...] with a * b * n_head = rows, swap a and b, back to [rows, ...].
at::Tensor SwapWithinHeads(const at::Tensor& weight, int64_t n_head, bool forward) {
  const int64_t rows = weight.dim() > 0 ? weight.size(0) : 0;
  if (n_head <= 0 || rows % (2 * n_head) != 0) {
    throw InputError(fmt::format("Q/K permutation: {} rows is not a multiple of 2 x {} heads", rows,
                                 n_head));
  }
  const int64_t half = rows / n_head / 2;
  std::vector<int64_t> shape{n_head};
  if (forward) {
    shape.insert(shape.end(), {2, half});
  } else {
    shape.insert(shape.end(), {half, 2});
  }
  for (int64_t d = 1; d < weight.dim(); ++d) shape.push_back(weight.size(d));
  return weight.reshape(shape).transpose(1, 2).reshape(weight.sizes()).contiguous();
}

}  // namespace

at::Tensor GgufTensorToTorch(const GgufFile& file, const GgufTensorInfo& tensor) {
  std::vector<float> values = file.ReadFloat(tensor);
  at::Tensor flat = at::empty({tensor.n_elements}, at::kFloat);
  std::copy(values.begin(), values.end(), flat.data_ptr<float>());
  return flat.reshape(tensor.TorchShape());
}

at::Tensor PermuteLlamaQK(const at::Tensor& weight, int64_t n_head) {
  return SwapWithinHeads(weight, n_head, /*forward=*/true);
}

at::Tensor UnpermuteLlamaQK(const at::Tensor& weight, int64_t n_head) {
  return SwapWithinHeads(weight, n_head, /*forward=*/false);
}

}  // namespace parity::io
