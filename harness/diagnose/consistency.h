// Consistency checks of one model against itself, each a greedy decode compared with a reference
// decode of the same model, dtype and prompt:
//   batch:    the prompt decoded alone vs as a left-padded row of a batch with a longer prompt;
//   kv-cache: decoding with the KV cache vs recomputing the whole prefix at every step;
//   device:   CPU vs CUDA (needs a libtorch with CUDA).
// Greedy tokens must be identical; the report gives the first step where they are not and the
// largest |logit difference| over the steps where both read the same context.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "harness/diagnose/model_source.h"
#include "harness/forward/numerics.h"

namespace parity::diagnose {

struct CheckOptions {
  forward::Precision precision = forward::Precision::kFP32;
  c10::Device device = c10::Device(c10::kCPU);  // the reference side's device
  int64_t max_new_tokens = 32;
  std::vector<int64_t> eos_ids;       // end the reference stream
  std::vector<int64_t> other_prompt;  // batch: the longer row; empty: the prompt twice over
  int64_t pad_id = -1;                // batch: padding id; -1: config pad_token_id, else 0
};

struct CheckResult {
  std::string check;                 // "batch" | "kv-cache" | "device"
  std::string reference;             // e.g. "alone, kv cache, cpu"
  std::string candidate;             // e.g. "row 1 of a left-padded batch of 2"
  std::string numerics;
  bool available = true;             // false: the check cannot run in this build (note says why)
  std::string note;
  bool consistent = true;            // identical greedy tokens
  std::optional<int64_t> first_divergence;
  std::vector<int64_t> tokens_reference;
  std::vector<int64_t> tokens_candidate;
  double max_abs_logit_diff = 0;     // over steps with identical context
  int64_t compared_steps = 0;
};

CheckResult CheckBatchInvariance(const ModelSource& source, const std::vector<int64_t>& prompt,
                                 const CheckOptions& options);
CheckResult CheckKvCache(const ModelSource& source, const std::vector<int64_t>& prompt,
                         const CheckOptions& options);
CheckResult CheckDevice(const ModelSource& source, const std::vector<int64_t>& prompt,
                        const CheckOptions& options);

// Greedy decoding of `prompts` as one left-padded batch: row r's next-token logits at each step go
// to (*logits)[r] when given. Every row decodes `steps` tokens (EOS is not special here).
// Returns the tokens per row.
std::vector<std::vector<int64_t>> GreedyBatch(forward::CausalLM& model,
                                              const std::vector<std::vector<int64_t>>& prompts,
                                              int64_t steps, int64_t pad_id,
                                              std::vector<std::vector<at::Tensor>>* logits);

nlohmann::ordered_json CheckToJson(const CheckResult& result);
std::string FormatCheck(const CheckResult& result);

}  // namespace parity::diagnose
