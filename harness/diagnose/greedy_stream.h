// Greedy decoding of one model alone (with its KV cache, or recomputing when the model is a
// RecomputingLM): the stream a teacher-forced diagnosis feeds to both models.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/Tensor.h>

#include "harness/forward/causal_lm.h"

namespace parity::diagnose {

// A's argmax tokens for up to `steps` steps after `prompt` (fewer when it emits one of `eos_ids`,
// which is then the last token). `logits`, when given, receives each step's [V] FP32/FP64 logits.
std::vector<int64_t> GreedyStream(forward::CausalLM& model, const std::vector<int64_t>& prompt,
                                  int64_t steps, const std::vector<int64_t>& eos_ids,
                                  std::vector<at::Tensor>* logits = nullptr);

}  // namespace parity::diagnose
