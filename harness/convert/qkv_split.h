// The split of InternLM2's packed `wqkv` into Llama's q_proj / k_proj / v_proj, exactly as InternLM's
// tools/convert2llama.py does it. Shared by the converter and by diff-weights (which compares an
// InternLM2 wqkv against a Llama q/k/v). Which roles correspond is model::CounterpartRoles.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/Tensor.h>

#include "harness/model/arch.h"
#include "harness/model/config.h"

namespace parity::convert {

// How wqkv is packed. Its rows are kv_heads blocks of (group + 2) * head_dim rows: `group` query
// heads, then that block's K head, then its V head. Shape [kv_heads * (group + 2) * head_dim, D].
struct QkvLayout {
  int64_t kv_heads = 0;  // KV heads
  int64_t group = 0;     // G = query heads per KV head
  int64_t head_dim = 0;  // d
  int64_t rows() const { return kv_heads * (group + 2) * head_dim; }
};

// convert2llama computes head_dim as hidden_size // num_attention_heads (InternLM2 has no head_dim
// field) and G as num_attention_heads // num_key_value_heads.
QkvLayout QkvLayoutOf(const model::ModelConfig& config);

struct SplitQkv {
  at::Tensor q;  // [kv_heads * group * head_dim, D]
  at::Tensor k;  // [kv_heads * head_dim, D]
  at::Tensor v;  // [kv_heads * head_dim, D]
};

// Splits a packed wqkv weight [rows, D] (or its packed bias [rows]; the parts are then 1-D) along
// its rows. Any dtype: data is copied, never converted, so the parts are bit-for-bit slices of the
// input. Throws InputError naming `name` when the shape does not fit `layout`.
SplitQkv SplitPackedQkv(const at::Tensor& wqkv, const QkvLayout& layout, const std::string& name);

}  // namespace parity::convert
