// The result of a comparison run as it is written to disk: DIR/summary.json (one Summary) and
// DIR/steps.jsonl (one StepRecord per line). reports/SCHEMA.md documents every field; this header is
// the C++ side of that contract, shared by the comparison (writer), the reports and drift gates
// (readers) and the diagnosis. Optional fields are std::optional and are written as JSON null.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace parity::compare {

// Bumped whenever a field changes meaning or is removed (adding a field does not bump it).
inline constexpr int kSchemaVersion = 1;

// ---------------------------------------------------------------------------------------------
// steps.jsonl: one line per compared step per run.

struct StepRecord {
  std::string run;          // Run::id this step belongs to
  int64_t step = 0;         // 0-based decode step (step 0 predicts the first new token)
  int64_t position = 0;     // 0-based sequence index the predicted token will occupy
                            // (= prompt length + step)
  bool same_context = true; // both models read identical tokens before this step (always true when
                            // teacher-forced; in free mode true up to and including the first
                            // divergence)
  int64_t token_a = 0;      // argmax of A's logits at this step (lowest index on ties)
  int64_t token_b = 0;      // argmax of B's logits
  double max_abs_diff = 0;  // max_i |a_i - b_i|
  double rms_diff = 0;      // sqrt(mean_i (a_i - b_i)^2)
  double kl = 0;            // KL(p||q), p = softmax(a), q = softmax(b), FP64, nats
  double kl_reverse = 0;    // KL(q||p)
  double js = 0;            // Jensen-Shannon divergence, nats (<= ln 2)
  std::optional<double> nmse;    // mean((b - a)^2) / var(a) (population variance); null when
                                 // var(a) = 0
  std::optional<double> cosine;  // cos(a, b); null when a or b is the zero vector
  bool top1_agree = true;   // token_a == token_b
  double topk_overlap = 1;  // |topk(a) ∩ topk(b)| / k, k = settings.top_k
  int64_t rank_b_in_a = 0;  // rank of token_b in a (0 = A's top-1; ties ranked by lower index)
  int64_t rank_a_in_b = 0;  // rank of token_a in b
  double margin_a = 0;      // a's top-1 minus top-2 logit (>= 0)
  double margin_b = 0;      // b's top-1 minus top-2 logit
  double noise = 0;         // max(|a[token_a] - b[token_a]|, |a[token_b] - b[token_b]|)
  std::optional<double> err_a_fp64;  // RMS(a - fp64 logits of A's model on A's stream); oracle only
  std::optional<double> err_b_fp64;  // RMS(b - fp64 logits of B's model on B's stream); oracle only
};

// ---------------------------------------------------------------------------------------------
// summary.json

// One side of a pair.
struct SideSpec {
  std::string model;      // label of an entry in Summary::models
  std::string precision;  // "fp32", "fp16", "bf16", "fp64"
  std::string numerics;   // forward::Numerics::Describe(), e.g. "fp16 (emulated on cpu)"
  bool emulated = false;  // FP16 emulated by per-op rounding (libtorch CPU)
};

struct Pair {
  SideSpec a;  // the reference side (the oracle rule measures b against a)
  SideSpec b;
};

// Where the two greedy outputs first part.
struct FirstDivergence {
  int64_t step = 0;         // decode step (as StepRecord::step)
  int64_t position = 0;     // sequence index (as StepRecord::position)
  int64_t token_a = 0;      // A's choice
  int64_t token_b = 0;      // B's choice
  std::string text_a;       // token texts as they appear in the decoded stream (e.g. "\n", " the")
  std::string text_b;
  std::string context;      // decoded generated text before the divergence (prompt excluded)
  double margin_a = 0;      // A's top-1 minus top-2 logit at that step
  double margin_b = 0;
  double noise = 0;         // max(|a[ta] - b[ta]|, |a[tb] - b[tb]|)
  double flip_gap = 0;      // (a[ta] - a[tb]) + (b[tb] - b[ta]) >= 0: how far the preference
                            // between the two tokens moved from A to B
  double tolerance = 0;     // rounding tolerance: near_tie_ulps ULPs of the coarser precision at
                            // max(|a[ta]|, |a[tb]|, |b[ta]|, |b[tb]|)
  std::string kind;         // "near_tie" (flip_gap <= tolerance) or "real"
  bool after_newline = false;  // the token before the divergence (last of context or prompt)
                               // contains '\n'
};

// Statistics over the compared steps of one run. Percentiles use the nearest-rank method.
struct RunMetrics {
  int64_t steps = 0;                // compared steps (lines in steps.jsonl for this run)
  int64_t same_context_steps = 0;   // steps with same_context = true
  double max_abs_logit_diff = 0;    // max over steps of max_abs_diff
  double rms_logit_diff_mean = 0;   // mean over steps of rms_diff
  double max_kl = 0;                // over steps of StepRecord::kl
  double mean_kl = 0;
  double p50_kl = 0;
  double p90_kl = 0;
  double p99_kl = 0;
  double mean_js = 0;
  std::optional<double> max_nmse;    // over steps where nmse is defined; null when none
  std::optional<double> min_cosine;  // over steps where cosine is defined; null when none
  double top1_agreement = 1;        // fraction of steps with top1_agree
  double topk_overlap_mean = 1;
  std::optional<int64_t> first_divergence_step;  // null when the argmaxes never differ
};

// FP64 oracle for one run: each model run again in FP64, teacher-forced on the tokens its side read.
struct OracleResult {
  std::string reference_model;        // pair.a.model: its FP64 run is the reference
  double a_rms_error_vs_fp64 = 0;     // RMS(a - A64) over all steps, A64 on A's stream
  double b_rms_error_vs_fp64 = 0;     // RMS(b - B64) over all steps, B64 on B's stream
  int64_t comparable_steps = 0;       // steps with same_context (all, when teacher-forced)
  double a_rms_error_vs_reference = 0;  // RMS(a - A64) over the comparable steps
  double b_rms_error_vs_reference = 0;  // RMS(b - A64) over the comparable steps
  double fp64_models_rms_diff = 0;    // RMS(A64 - B64) over the comparable steps (0: same model)
  double multiplier = 0;              // 2 for fp32, 3 for fp16/bf16 (precision of b)
  std::optional<bool> acceptable;     // b_rms_error_vs_reference <= multiplier *
                                      // a_rms_error_vs_reference; null when a and b differ in
                                      // precision (the rule compares like with like)
  std::string rule;                   // the rule in words
};

// Gates. A gate that is null is not checked.
struct Thresholds {
  std::optional<double> max_kl;                      // metrics.max_kl <= this
  std::optional<double> mean_kl;                     // metrics.mean_kl <= this
  std::optional<double> p99_kl;                      // metrics.p99_kl <= this
  std::optional<double> max_abs_logit_diff;          // metrics.max_abs_logit_diff <= this
  std::optional<double> min_top1_agreement;          // metrics.top1_agreement >= this
  std::optional<int64_t> min_first_divergence_step;  // no divergence, or at a step >= this
  bool fail_on_real_divergence = false;              // a first divergence of kind "real" fails
  bool require_oracle_acceptable = false;            // oracle.acceptable == false fails
};

struct Run {
  std::string id;                     // "p{prompt_index}/{a.model}@{a.precision}/{b.model}@{b.precision}"
  int64_t prompt_index = 0;           // index into the case's prompts
  std::optional<std::string> prompt;  // prompt text; null when given as token ids
  bool chat = false;                  // ChatML template applied
  std::vector<int64_t> prompt_tokens; // ids fed to both models (BOS and template included)
  Pair pair;
  std::vector<int64_t> tokens_a;      // A's generated ids (teacher-forced: the shared stream)
  std::vector<int64_t> tokens_b;      // B's generated ids (teacher-forced: B's argmax per step)
  std::string text_a;                 // decoded tokens_a (EOS omitted)
  std::string text_b;
  std::optional<FirstDivergence> first_divergence;
  RunMetrics metrics;
  std::optional<OracleResult> oracle;
  Thresholds thresholds;              // gates applied to this run (case thresholds, overridden by
                                      // the pair's own)
  double elapsed_s = 0;               // wall time of the run (oracle included)
  bool pass = true;                   // no gate failed for this run
};

struct Failure {
  std::string run;      // Run::id
  std::string gate;     // field name in Thresholds, e.g. "max_kl"
  std::optional<double> value;      // the measured value (null for boolean gates)
  std::optional<double> threshold;
  std::string message;  // e.g. "p0/original@fp16/converted@fp16: max_kl 0.31 > 0.1"
};

struct Verdict {
  bool pass = true;
  std::vector<Failure> failures;
};

struct Settings {
  std::string device = "cpu";   // "cpu" or "cuda[:i]"
  std::string mode = "free";    // "free" or "teacher_forced"
  std::string teacher = "a";    // teacher_forced: whose greedy stream both read ("a" or "b")
  int64_t max_new_tokens = 0;
  uint64_t seed = 0;            // passed to at::manual_seed before every run
  bool chat = false;            // default for prompts given as text
  int64_t top_k = 5;            // k of StepRecord::topk_overlap
  double near_tie_ulps = 4;     // FirstDivergence::tolerance in ULPs of the run precision
  bool oracle = false;          // FP64 oracle requested
  bool deterministic_algorithms = true;  // at::globalContext().setDeterministicAlgorithms
  int64_t num_threads = 0;      // at::get_num_threads() during the run
};

struct ModelInfo {
  std::string path;                        // checkpoint directory as given (or as produced)
  std::string architecture;                // "internlm2" or "llama"
  std::optional<std::string> convert_from; // label of the model this one was converted from
  std::string variants;                    // forward::DescribeVariants of its reference stack
  nlohmann::json config;  // {vocab_size, hidden_size, num_layers, num_heads, num_kv_heads,
                          //  head_dim, intermediate_size, torch_dtype, rope_theta}
};

// Across the prompts of one pair: the same pair run on every prompt.
struct PairSummary {
  std::string id;                  // "{a.model}@{a.precision}/{b.model}@{b.precision}"
  Pair pair;
  std::vector<std::string> runs;   // Run ids, in prompt order
  double mean_kl = 0;              // mean over all compared steps of all its runs
  double max_kl = 0;
  double top1_agreement = 1;       // over all compared steps
  // identical_fraction[t]: fraction of its runs whose outputs are still identical after step t
  // (no divergence at a step <= t), t = 0 .. max_new_tokens - 1.
  std::vector<double> identical_fraction;
  bool pass = true;                // all its runs pass
};

struct CaseRef {
  std::string name;
  std::optional<std::string> path;  // the case file; null for `parity compare`
};

struct Summary {
  int schema_version = kSchemaVersion;
  std::string parity_version;
  std::string libtorch_version;
  std::string created_utc;  // ISO 8601, e.g. "2024-05-01T12:00:00Z"
  std::string run_id;       // identifies the run that wrote this directory (OUT/run.json has it
                            // too); "" in summaries written before it existed
  bool interrupted = false; // the run was stopped (SIGINT) before every run finished: `runs` holds
                            // the finished ones only
  CaseRef case_ref;         // JSON key "case"
  Settings settings;
  std::map<std::string, ModelInfo> models;  // by label
  Thresholds thresholds;
  Verdict verdict;
  std::vector<Run> runs;
  std::vector<PairSummary> pairs;
};

// Both files of one output directory.
struct RunOutputs {
  Summary summary;
  std::vector<StepRecord> steps;  // every run's steps, runs in summary order, steps in order
};

// ---------------------------------------------------------------------------------------------
// JSON. The FromJson functions throw InputError naming `source` and the field, e.g.
// "out/summary.json: runs[2].metrics.max_kl: expected a number, got \"x\"". Non-finite doubles are
// written as null and read back as NaN.

nlohmann::json ToJson(const StepRecord& step);
nlohmann::json ToJson(const SideSpec& side);
nlohmann::json ToJson(const Pair& pair);
nlohmann::json ToJson(const FirstDivergence& divergence);
nlohmann::json ToJson(const RunMetrics& metrics);
nlohmann::json ToJson(const OracleResult& oracle);
nlohmann::json ToJson(const Run& run);
nlohmann::json ToJson(const Failure& failure);
nlohmann::json ToJson(const Settings& settings);
nlohmann::json ToJson(const ModelInfo& model);
nlohmann::json ToJson(const PairSummary& pair);
StepRecord StepRecordFromJson(const nlohmann::json& json, const std::string& source);
nlohmann::json ToJson(const Summary& summary);
Summary SummaryFromJson(const nlohmann::json& json, const std::string& source);
nlohmann::json ToJson(const Thresholds& thresholds);
Thresholds ThresholdsFromJson(const nlohmann::json& json, const std::string& source);

// One compact JSON object per line, each line ending in '\n'.
std::string StepsToJsonl(const std::vector<StepRecord>& steps);
// Parses steps.jsonl text; errors name `source` and the 1-based line.
std::vector<StepRecord> StepsFromJsonl(const std::string& text, const std::string& source);

// Writes DIR/summary.json (pretty, 2 spaces) and DIR/steps.jsonl, each atomically (steps first, so a
// summary never refers to steps that are not there).
void WriteRunOutputs(const std::string& dir, const RunOutputs& outputs);
// Reads both files back; throws InputError naming the file.
RunOutputs ReadRunOutputs(const std::string& dir);

// Current time as ISO 8601 UTC ("2024-05-01T12:00:00Z").
std::string NowUtc();

}  // namespace parity::compare
