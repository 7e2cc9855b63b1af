// The "no KV cache" implementation variant: a wrapper that recomputes the whole prefix at every
// Forward call instead of reading cached keys and values, as generate(use_cache=False) does. The
// forward passes themselves always cache; the decode loop decides, so this lives beside it.
#pragma once

#include <memory>
#include <vector>

#include "harness/forward/causal_lm.h"

namespace parity::diagnose {

class RecomputingLM : public forward::CausalLM {
 public:
  explicit RecomputingLM(std::unique_ptr<forward::CausalLM> inner);

  const model::ModelConfig& config() const override { return inner_->config(); }
  const forward::Numerics& numerics() const override { return inner_->numerics(); }
  const forward::Variants& variants() const override { return variants_; }

  // Appends `tokens` [B, T] to the history kept for `cache` (a cache with length 0 starts a new
  // history), runs the inner model on the whole history with a fresh cache, and returns the logits
  // of the last T positions ([B, T, V], or [B, 1, V] when the LM head runs on the last position
  // only). `cache.length` is advanced; its key/value tensors stay empty. The attention mask, when
  // given, covers the whole history as for the cached model. The observer sees the full history.
  at::Tensor Forward(const at::Tensor& tokens, forward::KVCache& cache,
                     const at::Tensor& attention_mask = at::Tensor(),
                     const forward::Observer* observer = nullptr) override;

 private:
  std::unique_ptr<forward::CausalLM> inner_;
  forward::Variants variants_;  // the inner model's, with kv_cache = false
  const forward::KVCache* owner_ = nullptr;  // the cache whose history `history_` is
  at::Tensor history_;          // [B, T_cached] int64
};

}  // namespace parity::diagnose
