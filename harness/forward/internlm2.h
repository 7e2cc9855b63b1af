// InternLM2's forward pass as its remote code (modeling_internlm2.py) computes it: one GEMM with the
// packed wqkv [kv * (G + 2) * d, D], viewed as [B, T, kv, G + 2, d]; q = [..., :G, :] flattened to
// H heads, k = [..., -2, :], v = [..., -1, :]; scores divided by math.sqrt(d); rotary from the
// precomputed table. Variants: fused_qkv = false splits wqkv at load (the same grouping) into three
// GEMMs; sdpa_attention, rotary_precomputed and lm_head_all_positions as in causal_lm.h.
#pragma once

#include <memory>

#include "harness/forward/causal_lm.h"
#include "harness/forward/weights.h"

namespace parity::forward {

// Throws InputError listing every config or weight problem (role kQkv, not kQ/kK/kV).
std::unique_ptr<CausalLM> MakeInternLM2(const model::ModelConfig& config, const Weights& weights,
                                        const Numerics& numerics, const Variants& variants);

}  // namespace parity::forward
