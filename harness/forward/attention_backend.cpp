#include "harness/forward/attention_backend.h"

#include <cmath>
#include <optional>

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <fmt/format.h>
#include <torch/version.h>

namespace parity::forward {

std::string SdpaKernel(const model::ModelConfig& config, const Numerics& numerics, int64_t keys) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  // The shapes Decoder passes: q [1, H, 1, d]; keys the live slice of a longer static buffer.
  const auto options = at::TensorOptions().dtype(numerics.storage).device(numerics.device);
  const int64_t heads = config.num_heads, d = config.head_dim;
  at::Tensor q = at::zeros({1, heads, 1, d}, options);
  at::Tensor buffer = at::zeros({1, heads, keys + 64, d}, options);
  at::Tensor k = buffer.slice(2, 0, keys);
  const int64_t choice = at::_fused_sdp_choice(q, k, k, std::optional<at::Tensor>(), 0.0, false,
                                               std::pow(static_cast<double>(d), -0.5));
  switch (choice) {
    case 0: return "math";
    case 1: return "flash_attention";
    case 2: return "efficient_attention";
    case 3: return "cudnn_attention";
    default: return fmt::format("backend {}", choice);
  }
#else
  (void)config, (void)numerics, (void)keys;
  return "n/a (libtorch < 2.1)";
#endif
}

nlohmann::json DescribeAttention(const model::ModelConfig& config, const Variants& variants,
                                 const Numerics& numerics, int64_t keys) {
  return {{"implementation", variants.sdpa_attention ? "sdpa" : "eager"},
          {"sdpa_kernel", variants.sdpa_attention
                              ? nlohmann::json(SdpaKernel(config, numerics, keys))
                              : nlohmann::json(nullptr)},
          {"scores", variants.divide_scores_by_sqrt ? "divide_by_sqrt_d"
                                                    : "multiply_by_inverse_sqrt_d"},
          {"decode_keys", keys}};
}

nlohmann::json DescribeAttentionSettings() {
  const bool cudnn = at::detail::getCUDAHooks().hasCuDNN();
  return {{"cudnn_version", cudnn ? nlohmann::json(at::detail::getCUDAHooks().versionCuDNN())
                                  : nlohmann::json(nullptr)},
          {"tf32", {{"cublas", at::globalContext().allowTF32CuBLAS()},
                    {"cudnn", at::globalContext().allowTF32CuDNN()}}}};
}

}  // namespace parity::forward
