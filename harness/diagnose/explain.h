// Which implementation choice causes a divergence: rerun the pair flipping one forward::Variants
// switch at a time on one side and report how the first divergence and the per-step KL move. The
// row "all_variants" sets the flipped side's whole implementation to the other side's at once
// (B's switches := A's), which answers whether implementation choices explain the split at all:
// if the divergence survives it, the two models compute different functions (see localize).
//
// Every run is teacher-forced on A's greedy stream (decode::RunLockstep, teacher A), so per-step KL
// always compares the two models on identical contexts, and the first step where the argmaxes differ
// is the free run's first divergence (before it, free and teacher-forced runs read the same tokens).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "harness/diagnose/model_source.h"
#include "harness/forward/causal_lm.h"
#include "harness/forward/numerics.h"

namespace parity::diagnose {

// The switches explain flips, in table order.
const std::vector<std::string>& VariantNames();  // fused_qkv, sdpa_attention, ...
// The pseudo-variant that copies every switch from the other side.
inline constexpr const char* kAllVariants = "all_variants";
// `variants` with the named switch negated; throws InputError for an unknown name.
forward::Variants FlipVariant(const forward::Variants& variants, const std::string& name);
bool VariantValue(const forward::Variants& variants, const std::string& name);

struct ExplainOptions {
  std::vector<forward::PrecisionPolicy> precisions = {forward::Precision::kFP32};
  // B's precision for each entry of `precisions` (a case pair such as original@fp32 vs
  // original@bf16); empty: B runs at A's precision.
  std::vector<forward::PrecisionPolicy> precisions_b;
  c10::Device device = c10::Device(c10::kCPU);
  int64_t max_new_tokens = 32;
  std::vector<int64_t> eos_ids;
  std::vector<std::string> sides = {"b"};  // "a" and/or "b": whose switches are flipped
  std::vector<std::string> variants;       // empty: VariantNames() then kAllVariants
};

struct PairStats {
  std::optional<int64_t> first_divergence;  // first step whose argmaxes differ; null: none
  int64_t steps = 0;                        // compared steps
  double mean_kl = 0;                       // over the compared steps, KL(p_a || p_b), nats
  double max_kl = 0;
};

struct VariantRow {
  std::string precision;   // "fp16", or "fp32/bf16" when A and B run at different precisions
  std::string variant;     // a VariantNames() entry, or kAllVariants
  std::string side;        // "a" | "b"
  bool from = false;       // the switch's value in the baseline (single switches)
  std::string from_variants, to_variants;  // kAllVariants: DescribeVariants before and after
  bool available = true;   // false when this build cannot run the flipped setting (e.g. sdpa)
  std::string note;        // why unavailable
  PairStats flipped;
  // "removed" (baseline diverged, flipped does not), "introduced", "moved later", "moved earlier",
  // "unchanged", or "unavailable".
  std::string effect;
};

struct ExplainPrecision {
  std::string precision;
  std::string numerics;    // Numerics::Describe()
  PairStats baseline;
};

struct ExplainResult {
  std::string label_a, label_b;
  std::string variants_a, variants_b;  // baseline switches, DescribeVariants
  int64_t max_new_tokens = 0;
  std::vector<ExplainPrecision> baselines;
  std::vector<VariantRow> rows;
};

// Teacher-forced lockstep run of two built models (teacher A): first divergence and KL stats.
PairStats RunPairStats(forward::CausalLM& a, forward::CausalLM& b,
                       const std::vector<int64_t>& prompt, int64_t max_new_tokens,
                       const std::vector<int64_t>& eos_ids);

// How the first divergence moved from `baseline` to `flipped`.
std::string DivergenceEffect(const PairStats& baseline, const PairStats& flipped);

ExplainResult Explain(const ModelSource& a, const ModelSource& b,
                      const std::vector<int64_t>& prompt, const ExplainOptions& options);

nlohmann::ordered_json ExplainToJson(const ExplainResult& result);
// A plain terminal table, or (markdown = true) a GitHub markdown table for a bug report.
std::string FormatExplain(const ExplainResult& result, bool markdown);

// One explain run of a case: a pair and a prompt.
struct ExplainRun {
  std::string pair;         // "original@bf16 vs converted@bf16"
  int64_t prompt_index = 0;
  std::string prompt;       // the prompt text, or its ids
  ExplainResult result;
};
// {"command": "explain", "runs": [{"pair", "prompt_index", "prompt", ...ExplainToJson}, ...],
//  "summary": [one sentence per run]}
nlohmann::ordered_json ExplainRunsToJson(const std::vector<ExplainRun>& runs);
std::string FormatExplainRuns(const std::vector<ExplainRun>& runs, bool markdown);
// "original@bf16 vs converted@bf16, prompt 2: baseline diverges at step 5; all_variants removes it;
// fused_qkv moves it later" (one line per precision of the run).
std::string ExplainSummary(const ExplainRun& run);

}  // namespace parity::diagnose
