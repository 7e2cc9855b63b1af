// Seeded random InternLM2 models for the precision tests (policy, bisection, range watch), held in
// memory with BF16 weights as a published checkpoint stores them: projections 1/sqrt(fan_in)
// (activations O(1)) and an LM head scaled so that the logits' standard deviation is
// `logit_scale` (2-4 in released LLMs), as in verdict_labelled_test.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "harness/forward/weights.h"
#include "harness/io/safetensors.h"
#include "harness/model/arch.h"
#include "harness/model/config.h"
#include "tests/test_util.h"

namespace parity::testing {

inline model::ModelConfig PrecisionTestConfig(int64_t layers, int64_t hidden = 128) {
  model::ModelConfig c;
  c.arch = model::Architecture::kInternLM2;
  c.source = "precision-test";
  c.vocab_size = 512;
  c.hidden_size = hidden;
  c.num_layers = layers;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = hidden / 4;
  c.intermediate_size = hidden * 11 / 4;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.bias = false;
  return c;
}

inline forward::Weights PrecisionTestWeights(const model::ModelConfig& c, double logit_scale,
                                             uint64_t seed) {
  using model::Role;
  at::manual_seed(seed);
  auto bf16 = [](const at::Tensor& x) { return x.to(at::kBFloat16); };
  auto randn = [&](std::vector<int64_t> shape, double scale) {
    return bf16(at::randn(shape, at::kDouble) * scale);
  };
  auto norm = [&] { return bf16(1.0 + at::randn({c.hidden_size}, at::kDouble) * 0.1); };
  const double in = 1.0 / std::sqrt(double(c.hidden_size));
  const int64_t qkv_rows = c.num_kv_heads * (c.group_size() + 2) * c.head_dim;
  forward::Weights w;
  w.Set(Role::kEmbedding, -1, randn({c.vocab_size, c.hidden_size}, 1.0));
  w.Set(Role::kFinalNorm, -1, norm());
  w.Set(Role::kLmHead, -1, randn({c.vocab_size, c.hidden_size}, logit_scale * in));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    w.Set(Role::kAttentionNorm, i, norm());
    w.Set(Role::kQkv, i, randn({qkv_rows, c.hidden_size}, in));
    w.Set(Role::kO, i, randn({c.hidden_size, c.num_heads * c.head_dim}, in));
    w.Set(Role::kMlpNorm, i, norm());
    w.Set(Role::kGate, i, randn({c.intermediate_size, c.hidden_size}, in));
    w.Set(Role::kUp, i, randn({c.intermediate_size, c.hidden_size}, in));
    w.Set(Role::kDown, i, randn({c.hidden_size, c.intermediate_size},
                                1.0 / std::sqrt(double(c.intermediate_size))));
  }
  return w;
}

// The same model with layer `layer`'s MLP made to overflow FP16 inside: gate and up scaled by
// `scale`, down by 1 / scale^2, so silu(gate x) * up x is ~scale^2 larger (past 65504 in FP16) while
// the MLP's output keeps its size: BF16 (range 3.4e38) and FP32 stay finite.
inline forward::Weights WithFp16MlpOverflow(const forward::Weights& weights, int64_t layer,
                                            double scale) {
  using model::Role;
  forward::Weights w = weights;
  auto scaled = [&](Role role, double by) {
    w.Set(role, layer, (weights.Get(role, layer).to(at::kDouble) * by).to(at::kBFloat16));
  };
  scaled(Role::kGate, scale);
  scaled(Role::kUp, scale);
  scaled(Role::kDown, 1.0 / (scale * scale));
  return w;
}

// The same model with layer `layer`'s MLP output (its down projection) scaled by `scale`: the
// residual stream after that layer's MLP grows to about `scale` times the MLP's output and stays
// there (later blocks add O(1) values; each RMSNorm rescales what the blocks read), so the range
// watch sees it first at "layer `layer` mlp".
inline forward::Weights WithScaledMlpOutput(const forward::Weights& weights, int64_t layer,
                                            double scale) {
  forward::Weights w = weights;
  w.Set(model::Role::kDown, layer,
        (weights.Get(model::Role::kDown, layer).to(at::kDouble) * scale).to(at::kBFloat16));
  return w;
}

// Writes `weights` as an InternLM2 checkpoint directory (model.safetensors, config.json) for the
// command-line tests.
inline void WritePrecisionTestCheckpoint(const std::string& dir, const model::ModelConfig& c,
                                         const forward::Weights& weights) {
  nlohmann::json config = {{"model_type", "internlm2"},
                           {"architectures", {"InternLM2ForCausalLM"}},
                           {"vocab_size", c.vocab_size},
                           {"hidden_size", c.hidden_size},
                           {"intermediate_size", c.intermediate_size},
                           {"num_hidden_layers", c.num_layers},
                           {"num_attention_heads", c.num_heads},
                           {"num_key_value_heads", c.num_kv_heads},
                           {"max_position_embeddings", c.max_position_embeddings},
                           {"rms_norm_eps", c.rms_norm_eps},
                           {"rope_theta", c.rope_theta},
                           {"bias", false},
                           {"torch_dtype", "bfloat16"},
                           {"bos_token_id", 1},
                           {"eos_token_id", 2},
                           {"tie_word_embeddings", false}};
  std::vector<io::NamedTensor> tensors;
  for (const auto& [key, tensor] : weights.tensors) {
    tensors.push_back({model::TensorName(model::Architecture::kInternLM2, key.first, key.second),
                       tensor});
  }
  std::filesystem::create_directories(dir);
  io::WriteSafetensors(dir + "/model.safetensors", tensors);
  WriteFileText(dir + "/config.json", config.dump(2));
}

inline std::vector<int64_t> PrecisionTestPrompt(int64_t variant = 0) {
  std::vector<int64_t> ids = {1};
  for (int64_t i = 0; i < 7; ++i) ids.push_back((37 * (variant + 1) + 101 * i) % 500 + 3);
  return ids;
}

}  // namespace parity::testing
