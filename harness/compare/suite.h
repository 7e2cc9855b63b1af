// Running a comparison: one pair of models on one prompt (RunPair: lockstep greedy decoding, per-step
// metrics, first divergence, FP64 oracle, gates), and a whole case (RunCase: converts models the case
// asks for, loads checkpoints and tokenizer, runs every pair on every prompt, aggregates).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "harness/compare/case.h"
#include "harness/compare/run_result.h"
#include "harness/decode/greedy.h"
#include "harness/forward/causal_lm.h"

namespace parity::compare {

// Token ids to text. A tokenizer supplies both in a real run; tests pass lambdas.
struct TextDecoder {
  std::function<std::string(int64_t)> token_text;                 // one token as it appears in a stream
  std::function<std::string(const std::vector<int64_t>&)> decode;  // a stream (EOS omitted)
};
// "<17>" for a token, ids joined for a stream: used when no tokenizer.model exists.
TextDecoder IdTextDecoder();

// Everything RunPair needs besides the models.
struct RunRequest {
  std::string id;
  int64_t prompt_index = 0;
  std::optional<std::string> prompt_text;
  bool chat = false;
  std::vector<int64_t> prompt_tokens;
  Pair pair;                            // labels and numerics descriptions for the output
  forward::Precision precision_a = forward::Precision::kFP32;
  forward::Precision precision_b = forward::Precision::kFP32;
  decode::GreedyOptions greedy;
  int64_t top_k = 5;
  double near_tie_ulps = 4;
  Thresholds thresholds;
};

// FP64 copies of both sides' models for the oracle (may be the same object when a and b are the
// same model).
struct OracleModels {
  forward::CausalLM* a64 = nullptr;
  forward::CausalLM* b64 = nullptr;
};

struct RunOutcome {
  Run run;
  std::vector<StepRecord> steps;
};

// Decodes the pair in lockstep and measures it. With `oracle`, also runs the FP64 oracle. Gates are
// applied (run.pass) but failures are returned by CheckGates, not here.
RunOutcome RunPair(forward::CausalLM& model_a, forward::CausalLM& model_b, const RunRequest& request,
                   const TextDecoder& text, const OracleModels* oracle = nullptr);

// The gates `thresholds` fails for `run`, each with a message naming the run.
std::vector<Failure> CheckGates(const Run& run, const Thresholds& thresholds);

// Per-pair aggregates over `runs` (in order of first appearance of each pair id).
std::vector<PairSummary> SummarizePairs(const std::vector<Run>& runs,
                                        const std::vector<StepRecord>& steps,
                                        int64_t max_new_tokens);

// "p0/original@fp16/converted@fp16" and "original@fp16/converted@fp16".
std::string RunId(int64_t prompt_index, const Pair& pair);
std::string PairId(const Pair& pair);

struct SuiteOptions {
  // Where converted models are cached (--cache-dir; empty: session::ResolveCacheDir's defaults).
  std::string cache_dir;
  // Called once the device, the models and the prompts have been checked, before anything is
  // converted or decoded; returns the run id recorded in Summary::run_id. The command line claims
  // its output directory here, so that bad input never costs the previous run its files.
  std::function<std::string()> claim_output;
  // Which prompts to run (by index into the case's prompts); null runs all. Sharding
  // (`parity run --shard i/N`) passes index % N == i.
  std::function<bool(int64_t prompt_index)> include_prompt;
};

// Runs every pair of `c` on every prompt, pair by pair (each pair's models are loaded once and
// released before the next pair), logging progress per run. Models come from the session store
// (session/model_store.h); converted ones from its conversion cache. Checks the device, the models'
// tensors and the prompts' token ids before converting or decoding anything. On SIGINT
// (core/interrupt.h) stops at the next step boundary and returns the finished runs with
// summary.interrupted set. Writes nothing but cached conversions; the caller writes the outputs.
RunOutputs RunCase(const Case& c, const SuiteOptions& options);

// Writes DIR/steps.jsonl and DIR/summary.json, prints the table to stdout (unless `print_table` is
// false), and returns the exit code: kExitOk when every gate passed, kExitDifferent when one failed,
// kExitInterrupted (130) when the run was interrupted.
int FinishRun(const std::string& out_dir, const RunOutputs& outputs, bool print_table = true);

}  // namespace parity::compare
