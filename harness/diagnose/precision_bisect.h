// Precision bisection: which modules' precision makes a pair split. Given a pair that diverges (one
// model at fp32 vs bf16/fp16, or an original and its conversion at a low precision), find a small
// set of modules whose upgrade to FP32 (on every side that runs them below FP32) removes the
// divergence, or brings the max per-step KL under a threshold, by narrowing, never by trying all
// subsets:
//
//  1. baseline (no upgrade): where the pair splits; nothing to do when it does not;
//  2. every module upgraded (`+fp32:all`): when the split survives that, it is not a precision
//     effect of these modules, and the search stops;
//  3. module kinds (embedding, attn_proj, attn_scores, rotary, norm, mlp, router for MoE, residual,
//     lm_head): halve the set while one half alone suffices; when neither half does, drop kinds one
//     at a time while the rest still suffices;
//  4. layers, for each per-layer kind kept (the others fixed): the largest first layer s such that
//     layers s..L-1 suffice (binary search), then the smallest last layer e such that s..e suffice;
//  5. verification: the answer without each of its kinds, and with each range trimmed by one layer
//     at either end, is run (unless already run), so the answer states exactly what was shown.
//
// "Suffices" = a rerun of the whole lockstep pair (teacher-forced on A, as explain does) shows no
// first divergence within max_new_tokens, and (with max_kl) max per-step KL <= max_kl. Runs are
// memoized by the policies of the two sides. Every claim in the answer names what was run; nothing
// is said about sets that were not tried.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "harness/diagnose/model_source.h"
#include "harness/forward/precision_policy.h"

namespace parity::diagnose {

struct BisectOptions {
  forward::PrecisionPolicy precision_a = forward::Precision::kFP32;
  forward::PrecisionPolicy precision_b = forward::Precision::kBF16;
  forward::Precision upgrade = forward::Precision::kFP32;  // what candidate modules are raised to
  c10::Device device = c10::Device(c10::kCPU);
  int64_t max_new_tokens = 64;
  std::vector<int64_t> eos_ids;
  std::optional<double> max_kl;  // also required: max per-step KL <= max_kl
};

struct BisectRun {
  int64_t index = 0;           // 1-based, in run order
  std::string phase;           // "baseline" | "all" | "kinds" | "layers" | "verify"
  std::string candidate;       // "(none)", "all", "mlp,norm", "mlp[20-23]"
  std::string policy_a, policy_b;  // the sides' policies as run
  std::optional<int64_t> first_divergence;
  double max_kl = 0;
  double mean_kl = 0;
  bool suffices = false;
};

struct BisectResult {
  std::string label_a, label_b;
  std::string precision_a, precision_b;  // the pair's policies as given
  int64_t max_new_tokens = 0;
  std::optional<double> max_kl;
  int64_t layers = 0;
  int64_t module_kinds = 0;     // kinds this model has (router only for MoE)
  int64_t module_instances = 0; // per-layer kinds x layers + global kinds
  std::vector<BisectRun> runs;
  // "no_divergence": the baseline already passes; "not_precision": upgrading everything does not
  // remove the split; "found": `answer` suffices.
  std::string status;
  std::optional<int64_t> baseline_split;  // the baseline's first divergence step
  std::vector<forward::PrecisionOverride> answer;
  std::string answer_text;  // "mlp[5]", "norm,mlp[20-23]"
  std::string sentence;     // the conclusion, with what was shown minimal and what was not
  std::vector<std::string> shown;      // each verified claim, one line
  std::vector<std::string> not_shown;  // what the search did not establish
};

// The search above. A and B are built from their sources at each candidate policy.
BisectResult BisectPrecision(const ModelSource& a, const ModelSource& b,
                             const std::vector<int64_t>& prompt, const BisectOptions& options);

// `policy` with `modules` raised to `upgrade` (overrides appended: they win), e.g.
// bf16 + [mlp[20-23]] -> "bf16+fp32:mlp[20-23]". A side already at or above `upgrade` in every
// module is returned unchanged.
forward::PrecisionPolicy WithUpgrade(const forward::PrecisionPolicy& policy,
                                     const std::vector<forward::PrecisionOverride>& modules,
                                     forward::Precision upgrade);

nlohmann::ordered_json BisectToJson(const BisectResult& result);
// The search as a table (run, phase, candidate set, first split, max KL, result), then the answer.
std::string FormatBisect(const BisectResult& result);

}  // namespace parity::diagnose
