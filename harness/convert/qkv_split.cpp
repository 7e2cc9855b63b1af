#include "harness/convert/qkv_split.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/core/error.h"

namespace parity::convert {

QkvLayout QkvLayoutOf(const model::ModelConfig& config) {
  QkvLayout layout;
  layout.kv_heads = config.num_kv_heads;
  layout.group = config.num_heads / config.num_kv_heads;
  layout.head_dim = config.hidden_size / config.num_heads;
  return layout;
}

SplitQkv SplitPackedQkv(const at::Tensor& wqkv, const QkvLayout& layout, const std::string& name) {
  if (wqkv.dim() < 1 || wqkv.dim() > 2 || wqkv.size(0) != layout.rows()) {
    throw InputError(fmt::format(
        "tensor '{}': expected {} rows (kv_heads {} x (G {} + 2) x head_dim {}), got shape [{}]",
        name, layout.rows(), layout.kv_heads, layout.group, layout.head_dim,
        fmt::join(wqkv.sizes(), ", ")));
  }
  const bool is_bias = wqkv.dim() == 1;
  const int64_t columns = is_bias ? 1 : wqkv.size(1);
  // [kv, G + 2, d, D]: block b holds query heads b*G .. b*G+G-1, then K head b, then V head b.
  at::Tensor blocks = wqkv.reshape({layout.kv_heads, layout.group + 2, layout.head_dim, columns});
  auto rows_of = [&](const at::Tensor& part, int64_t heads) {
    std::vector<int64_t> shape{layout.kv_heads * heads * layout.head_dim};
    if (!is_bias) shape.push_back(columns);
    return part.reshape(shape).contiguous();
  };
  SplitQkv parts;
  parts.q = rows_of(blocks.narrow(1, 0, layout.group), layout.group);
  parts.k = rows_of(blocks.select(1, layout.group), 1);
  parts.v = rows_of(blocks.select(1, layout.group + 1), 1);
  return parts;
}

}  // namespace parity::convert
