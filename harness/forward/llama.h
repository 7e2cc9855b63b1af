// HF transformers' LlamaForCausalLM forward pass (models/llama/modeling_llama.py, eager attention):
// q_proj/k_proj/v_proj as three GEMMs, each viewed [B, T, heads, d] and transposed; scores
// multiplied by scaling = d ** -0.5; rotary cos/sin computed per step in FP32 and cast. Variants:
// fused_qkv = true concatenates [q; k; v] at load and does one GEMM then splits; sdpa_attention,
// rotary_precomputed and lm_head_all_positions as in causal_lm.h.
#pragma once

#include <memory>

#include "harness/forward/causal_lm.h"
#include "harness/forward/weights.h"

namespace parity::forward {

// Throws InputError listing every config or weight problem (roles kQ/kK/kV).
std::unique_ptr<CausalLM> MakeLlama(const model::ModelConfig& config, const Weights& weights,
                                    const Numerics& numerics, const Variants& variants);

}  // namespace parity::forward
