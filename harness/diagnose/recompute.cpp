#include "harness/diagnose/recompute.h"

#include <ATen/ATen.h>

#include "harness/core/error.h"

namespace parity::diagnose {

RecomputingLM::RecomputingLM(std::unique_ptr<forward::CausalLM> inner)
    : inner_(std::move(inner)), variants_(inner_->variants()) {
  variants_.kv_cache = false;
}

at::Tensor RecomputingLM::Forward(const at::Tensor& tokens, forward::KVCache& cache,
                                  const at::Tensor& attention_mask,
                                  const forward::Observer* observer) {
  if (cache.length == 0 || owner_ != &cache) {
    if (cache.length != 0) {
      throw InputError("RecomputingLM: a cache with history from another model instance");
    }
    owner_ = &cache;
    history_ = at::Tensor();
  }
  at::Tensor cpu_tokens = tokens.to(at::kCPU);
  history_ = history_.defined() ? at::cat({history_, cpu_tokens}, 1) : cpu_tokens.clone();
  forward::KVCache fresh;
  at::Tensor logits = inner_->Forward(history_, fresh, attention_mask, observer);
  const int64_t length = tokens.size(1);
  cache.length += length;
  if (logits.size(1) == history_.size(1)) {
    return logits.slice(1, logits.size(1) - length, logits.size(1));
  }
  return logits;  // LM head on the last position only: [B, 1, V]
}

}  // namespace parity::diagnose
