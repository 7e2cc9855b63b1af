#include "harness/forward/decoder.h"

#include <string>

#include <ATen/ATen.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/core/error.h"

namespace parity::forward {

namespace {

// What this implementation cannot run, in words naming the config field (empty when fine).
std::vector<std::string> UnsupportedConfig(const model::ModelConfig& config) {
  std::vector<std::string> problems;
  auto where = [&](const char* field) {
    return config.source.empty() ? std::string(field) : fmt::format("{}: {}", config.source, field);
  };
  if (config.bias) problems.push_back(where("bias/attention_bias") + ": true is not supported (the "
                                      "architecture table has no bias tensors)");
  if (config.mlp_bias) problems.push_back(where("mlp_bias") + ": true is not supported");
  if (config.hidden_act != "silu") {
    problems.push_back(where("hidden_act") + ": '" + config.hidden_act + "' is not supported (silu)");
  }
  if (config.num_layers <= 0 || config.hidden_size <= 0 || config.vocab_size <= 0 ||
      config.intermediate_size <= 0) {
    problems.push_back(where("sizes") + ": num_hidden_layers, hidden_size, vocab_size and "
                       "intermediate_size must be positive");
  }
  if (config.num_heads <= 0 || config.num_kv_heads <= 0 || config.num_heads % config.num_kv_heads) {
    problems.push_back(fmt::format("{}: num_key_value_heads {} must divide num_attention_heads {}",
                                   where("num_key_value_heads"), config.num_kv_heads,
                                   config.num_heads));
  }
  if (config.head_dim <= 0 || config.head_dim % 2) {
    problems.push_back(fmt::format("{}: {} must be positive and even (rotary halves)",
                                   where("head_dim"), config.head_dim));
  }
  if (config.max_position_embeddings <= 0) {
    problems.push_back(where("max_position_embeddings") + ": must be positive");
  }
  return problems;
}

// `config` after checking it and the weights: one InputError listing every problem.
const model::ModelConfig& Checked(const model::ModelConfig& config, const Weights& weights) {
  std::vector<std::string> problems = UnsupportedConfig(config);
  if (!problems.empty()) {
    throw InputError(fmt::format("cannot run this model:\n  {}", fmt::join(problems, "\n  ")));
  }
  CheckWeights(config, weights);
  return config;
}

void Observe(const Observer* observer, ObservationPoint point, int64_t layer,
             const at::Tensor& value) {
  if (observer != nullptr && *observer) (*observer)(Observation{point, layer, value});
}

}  // namespace

Decoder::Decoder(const model::ModelConfig& config, const Weights& weights,
                 const Numerics& numerics, const Variants& variants)
    : config_(Checked(config, weights)),
      numerics_(numerics),
      variants_(variants),
      rotary_(config, numerics,
              variants.rotary_precomputed ? RotaryStyle::kPrecomputedTable
                                          : RotaryStyle::kPerStep) {
  using model::Role;
  if (variants_.sdpa_attention && !ops::SdpaAvailable()) {
    throw InputError("variant sdpa_attention: sdpa needs libtorch 2.x");
  }
  embedding_ = numerics_.FromCheckpoint(weights.Get(Role::kEmbedding));
  final_norm_ = numerics_.FromCheckpoint(weights.Get(Role::kFinalNorm));
  lm_head_ = config_.tie_word_embeddings ? embedding_
                                         : numerics_.FromCheckpoint(weights.Get(Role::kLmHead));
  for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
    layers_.push_back({numerics_.FromCheckpoint(weights.Get(Role::kAttentionNorm, layer)),
                       numerics_.FromCheckpoint(weights.Get(Role::kMlpNorm, layer)),
                       numerics_.FromCheckpoint(weights.Get(Role::kGate, layer)),
                       numerics_.FromCheckpoint(weights.Get(Role::kUp, layer)),
                       numerics_.FromCheckpoint(weights.Get(Role::kDown, layer))});
  }
}

at::Tensor Decoder::AttendAndMerge(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const ops::AttentionInputs& inputs) const {
  const ops::ScoreScaling scaling = variants_.divide_scores_by_sqrt
                                        ? ops::ScoreScaling::kDivideBySqrt
                                        : ops::ScoreScaling::kMultiplyByInverse;
  at::Tensor out = variants_.sdpa_attention ? ops::SdpaAttention(numerics_, q, k, v, inputs)
                                            : ops::EagerAttention(numerics_, q, k, v, inputs, scaling);
  // [B, H, T, d] -> [B, T, H, d] -> [B, T, H * d]
  return out.transpose(1, 2).contiguous().reshape({inputs.batch, inputs.length, -1});
}

at::Tensor Decoder::Forward(const at::Tensor& tokens, KVCache& cache,
                            const at::Tensor& attention_mask, const Observer* observer) {
  // No autograd bookkeeping: weights never require grad, and this skips the autograd dispatch.
  at::AutoDispatchBelowADInplaceOrView no_autograd;
  if (!tokens.defined() || tokens.dim() != 2 || tokens.scalar_type() != at::kLong ||
      tokens.size(1) == 0) {
    throw InputError("Forward: tokens must be a non-empty int64 tensor [batch, tokens]");
  }
  const int64_t batch = tokens.size(0), length = tokens.size(1), past = cache.length;
  const int64_t low = tokens.min().item<int64_t>(), high = tokens.max().item<int64_t>();
  if (low < 0 || high >= config_.vocab_size) {
    throw InputError(fmt::format("Forward: token id {} is outside the vocabulary [0, {})",
                                 low < 0 ? low : high, config_.vocab_size));
  }
  if (cache.keys.empty()) {
    cache.keys.resize(config_.num_layers);
    cache.values.resize(config_.num_layers);
  }
  if (static_cast<int64_t>(cache.keys.size()) != config_.num_layers ||
      cache.values.size() != cache.keys.size()) {
    throw InputError(fmt::format("Forward: the KV cache has {} layers, the model {}",
                                 cache.keys.size(), config_.num_layers));
  }
  if (cache.keys[0].defined() &&
      (cache.keys[0].size(0) != batch || cache.keys[0].size(2) != past)) {
    throw InputError(fmt::format(
        "Forward: the KV cache holds batch {} with {} positions, but length says {} and the "
        "tokens have batch {}", cache.keys[0].size(0), cache.keys[0].size(2), past, batch));
  }

  const ops::AttentionInputs inputs =
      ops::MakeAttentionInputs(numerics_, batch, past, length, attention_mask,
                               !variants_.sdpa_attention, variants_.sdpa_attention);
  const CosSin rotary = rotary_.Compute(inputs.positions, past + length);

  at::Tensor hidden = at::embedding(embedding_, tokens.to(numerics_.device));  // [B, T, D]
  Observe(observer, ObservationPoint::kEmbedding, -1, hidden);
  for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
    const LayerWeights& w = layers_[layer];
    at::Tensor normed = ops::RmsNorm(numerics_, hidden, w.attention_norm, config_.rms_norm_eps);
    at::Tensor attention =
        Attention(layer, normed, cache.keys[layer], cache.values[layer], inputs, rotary);
    hidden = ops::Add(numerics_, hidden, attention);
    Observe(observer, ObservationPoint::kAttentionBlock, layer, hidden);

    normed = ops::RmsNorm(numerics_, hidden, w.mlp_norm, config_.rms_norm_eps);
    hidden = ops::Add(numerics_, hidden, ops::GatedMlp(numerics_, normed, w.gate, w.up, w.down));
    Observe(observer, ObservationPoint::kMlpBlock, layer, hidden);
  }
  hidden = ops::RmsNorm(numerics_, hidden, final_norm_, config_.rms_norm_eps);
  Observe(observer, ObservationPoint::kFinalNorm, -1, hidden);
  if (!variants_.lm_head_all_positions) hidden = hidden.slice(1, length - 1, length);
  // The LM head's output is a run-dtype tensor (rounded); the references then call .float().
  at::Tensor logits = ops::Linear(numerics_, hidden, lm_head_).to(numerics_.logits_type);
  Observe(observer, ObservationPoint::kLogits, -1, logits);
  cache.length = past + length;
  return logits;
}

}  // namespace parity::forward
