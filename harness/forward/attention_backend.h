// Which attention computation a model runs, as recorded in summary.json (models.<label>.attention
// and settings.attention_backend) and by `parity bench`. Each family's reference code fixes the
// implementation (model/arch_spec.h ReferenceStack, forward::ReferenceVariants):
//   InternLM2 (trust_remote_code): eager attention: scores = q k^T / sqrt(d), + mask, softmax in
//     FP32 then cast back, @ v;
//   Llama, Qwen2, Qwen3 (HF transformers): torch.nn.functional.scaled_dot_product_attention (HF's
//     default "sdpa"; a converted copy's config names no attn_implementation), scale d ** -0.5.
// With SDPA, libtorch picks a kernel per call from the shapes, dtypes and device: "math" (the
// composite reference), "flash_attention", "efficient_attention" or "cudnn_attention"; the choice
// for a one-token decode step over `keys` cached keys (the static cache's live slice) is what a run
// mostly executes. cuDNN's version and the TF32 switches are process-wide.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "harness/forward/causal_lm.h"
#include "harness/forward/numerics.h"
#include "harness/model/config.h"

namespace parity::forward {

// The kernel at::scaled_dot_product_attention picks for one decode step of `config` at `numerics`
// over `keys` cached keys: "math", "flash_attention", "efficient_attention", "cudnn_attention";
// "n/a (libtorch < 2.1)" where libtorch cannot say.
std::string SdpaKernel(const model::ModelConfig& config, const Numerics& numerics, int64_t keys);

// {"implementation": "eager"|"sdpa", "sdpa_kernel": <SdpaKernel> or null for eager,
//  "scores": "divide_by_sqrt_d"|"multiply_by_inverse_sqrt_d", "decode_keys": keys}.
nlohmann::json DescribeAttention(const model::ModelConfig& config, const Variants& variants,
                                 const Numerics& numerics, int64_t keys);

// Process-wide: {"cudnn_version": N or null (no cuDNN), "tf32": {"cublas": b, "cudnn": b}}.
nlohmann::json DescribeAttentionSettings();

}  // namespace parity::forward
