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

// The first divergence at `record` (its tokens, texts, margins, noise) after the tokens `context`
// that both sides read after `prompt` (non-empty), and whether the token before it holds a newline.
FirstDivergence MakeFirstDivergence(const StepRecord& record, const std::vector<int64_t>& prompt,
                                    const std::vector<int64_t>& context, const TextDecoder& text);

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
  bool keep_logits = false;  // keep every step's logits in the outcome, for ApplyOracle
  // Words for each side's rounding budget in the verdicts (BudgetName: "tf32 (fp16-sized
  // budget)"); empty: the budget precision's name.
  std::string budget_name_a, budget_name_b;
  // The overflow and saturation watch (compare/overflow.h): after decoding, each model side is run
  // once more over the tokens it read, observed; the watches go into run.range_a / range_b and
  // into the verdict.
  bool range_watch = false;
  double saturation_fraction = 0.5;  // RangeWatch::saturation_fraction
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
  // What the verdict and the oracle need after decoding:
  std::vector<int64_t> input_a, input_b;  // tokens each side read after the prompt
  at::Tensor logits_a, logits_b;          // [steps, V] CPU, every step (RunRequest::keep_logits)
  std::vector<double> divergence_a, divergence_b;  // logits at the first divergence ([V]; empty
                                                   // when none)
  int64_t depth = 0;                      // decoder layers (the larger model's)
  std::optional<std::string> overflow_point_a, overflow_point_b;  // compare/overflow.h
};

// An outcome whose run carries the request's identity (id, prompt, pair, thresholds) and `depth`,
// before any step is measured.
RunOutcome StartOutcome(const RunRequest& request, int64_t depth);

// Decodes the pair in lockstep, measures it and classifies its first divergence (compare/verdict.h)
// from the evidence of the run itself. With `oracle` (both FP64 models already loaded), also runs
// the FP64 oracle right away (ApplyOracle). Gates are applied (run.pass) but failures are returned
// by CheckGates, not here.
RunOutcome RunPair(forward::CausalLM& model_a, forward::CausalLM& model_b, const RunRequest& request,
                   const TextDecoder& text, const OracleModels* oracle = nullptr);

// The same measurement from two sides decoded one after the other (decode::DecodeAlone /
// FollowAlone), for pairs whose models do not fit in memory together. `depth` = decoder layers.
// `range_a` / `range_b`: each side's range watch, taken while its model was loaded
// (WatchSideRange on the side's stream; null when request.range_watch is off).
RunOutcome RunDecodedPair(const decode::SideRun& a, const decode::SideRun& b, int64_t depth,
                          const RunRequest& request, const TextDecoder& text,
                          const std::optional<RangeWatch>& range_a = std::nullopt,
                          const std::optional<RangeWatch>& range_b = std::nullopt);

// The FP64 oracle on a decoded run: `a64` = A's FP64 model teacher-forced on A's stream, `b64` = B's
// on B's stream ([steps, V] each, any float dtype; the same-context steps share their prefix).
// Fills the per-step errors and run.oracle, reclassifies the first divergence with the FP64
// evidence, and reapplies the gates (run.pass). Needs outcome.logits_a/b (keep_logits).
void ApplyOracle(RunOutcome& outcome, const at::Tensor& a64, const at::Tensor& b64,
                 const RunRequest& request);

// One teacher-forced FP64 forward of `model` per stream: the logits of every step of each run whose
// side `a_side` (true: A's stream) is given. Returns [steps, V] per run, FP64 on the CPU.
at::Tensor OracleLogits(forward::CausalLM& model64, const RunOutcome& outcome,
                        const RunRequest& request, bool a_side);

// The gates `thresholds` fails for `run`, each with a message naming the run.
std::vector<Failure> CheckGates(const Run& run, const Thresholds& thresholds);

// Per-pair aggregates over `runs` (in order of first appearance of each pair id), over the
// same-context steps (like with like).
std::vector<PairSummary> SummarizePairs(const std::vector<Run>& runs,
                                        const std::vector<StepRecord>& steps,
                                        int64_t max_new_tokens);

// "p0/original@fp16/converted@fp16" and "original@fp16/converted@fp16".
std::string RunId(int64_t prompt_index, const Pair& pair);
std::string PairId(const Pair& pair);

struct SuiteOptions {
  // Where converted models are cached (--cache-dir; empty: session::ResolveCacheDir's defaults).
  std::string cache_dir;
  // The run's output directory, where --save-traces / --save-kld-base (or the case's save_traces /
  // save_kld_base) write each model side (compare/save_traces.h); empty: nothing is saved.
  std::string out_dir;
  bool save_traces = false;
  bool save_kld_base = false;
  // Called once the device, the models and the prompts have been checked, before anything is
  // converted or decoded; returns the run id recorded in Summary::run_id. The command line claims
  // its output directory here, so that bad input never costs the previous run its files.
  std::function<std::string()> claim_output;
  // Which prompts to run (by index into the case's prompts); null runs all. Sharding
  // (`parity run --shard i/N`) passes index % N == i.
  std::function<bool(int64_t prompt_index)> include_prompt;
  // Caps the memory the planner counts as available (bytes; --memory-limit). Null: what the device
  // reports.
  std::optional<int64_t> memory_limit_bytes;
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
