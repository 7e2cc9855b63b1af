// The result of a comparison run as it is written to disk: DIR/summary.json (one Summary) and
// DIR/steps.jsonl (one StepRecord per line). reports/SCHEMA.md documents every field; this header is
// the C++ side of that contract, shared by the comparison (writer), the reports and drift gates
// (readers) and the diagnosis. Optional fields are std::optional and are written as JSON null.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace parity::compare {

// Bumped whenever a field changes meaning or is removed (adding a field does not bump it).
// Version 2: first_divergence.kind is one of rounding / real / precision_failure / undetermined with
// its evidence, run metrics aggregate same-context steps only (after_split holds the rest). Readers
// accept version 1 files (kind "near_tie" reads as "rounding").
inline constexpr int kSchemaVersion = 2;

// max(x, y), but NaN when either is NaN: a NaN never vanishes from a maximum (aggregates, gates).
inline double MaxPropagatingNan(double x, double y) {
  if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<double>::quiet_NaN();
  return x < y ? y : x;
}

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
  int64_t nonfinite_a = 0;  // entries of a that are NaN or inf (such a step never agrees)
  int64_t nonfinite_b = 0;
  // Top-k steps (a side is a top-k trace, reports/TRACES.md): the full-vocabulary figures above
  // (max_abs_diff, rms_diff, kl, kl_reverse, js, nmse, cosine) are NaN/null, a rank beyond the K
  // listed ids is -1, and these say what top-k allows:
  std::optional<double> logprob_max_abs_diff;  // max |log p_a - log p_b| over the ids both list
  std::optional<int64_t> shared_ids;           // how many ids both sides list (of min(K_a, K_b))
};

// ---------------------------------------------------------------------------------------------
// summary.json

// One side of a pair.
struct SideSpec {
  std::string model;      // label of an entry in Summary::models
  std::string precision;  // "fp32", "fp16", "bf16", "fp64", or a precision policy in full,
                          // "bf16+fp32:norm,mlp[20-23]" (written with a "policy" object beside it)
  std::string numerics;   // forward::Numerics::Describe(), e.g. "fp16 (emulated on cpu)"
  bool emulated = false;  // FP16 emulated by per-op rounding (libtorch CPU)
};

struct Pair {
  SideSpec a;  // the reference side (the oracle rule measures b against a)
  SideSpec b;
};

// Why a first divergence got its kind (compare/verdict.h gives the rule). Fields that the deciding
// source did not measure are null.
struct VerdictEvidence {
  std::string source;     // what decided: "non_finite" | "oracle" | "observed_noise" | "ulp"
  std::string reason;     // the verdict in words, with the numbers that decided it
  std::string precision;  // the coarser precision of the pair ("bf16")
  int64_t depth = 0;      // decoder layers
  // FP64 oracle at the divergence step, both models on the shared prefix:
  std::optional<double> fp64_rel_diff;          // rel(B64, A64) = rms(B64 - A64) / std(A64)
  std::optional<int64_t> fp64_token_a;          // argmax of A64
  std::optional<int64_t> fp64_token_b;          // argmax of B64
  std::optional<std::string> fp64_agrees_with;  // whose token FP64 picks: "a", "b", "both",
                                                // "neither" (A64's argmax against token_a/b)
  std::optional<double> a_err_vs_fp64;          // rel(a, A64) at the step
  std::optional<double> b_err_vs_fp64;          // rel(b, B64)
  std::optional<double> budget_a;               // RoundingBudget(A's precision, depth)
  std::optional<double> budget_b;
  // Noise observed in this run's same-context steps:
  int64_t noise_steps = 0;                      // same-context steps before the divergence
  std::optional<double> observed_noise;         // max over them of StepRecord::noise
  std::optional<double> rel_diff;               // max over same-context steps up to the
                                                // divergence of sqrt(nmse)
  std::optional<double> rounding_budget;        // RoundingBudget(precision, depth)
  // Non-finite values:
  std::optional<std::string> failing_side;      // "a", "b" or "both" (precision_failure)
  std::optional<std::string> overflow_point;    // first observed point with inf/NaN/|x| > max
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
  double tolerance = 0;     // the ULP rule's tolerance: near_tie_ulps ULPs of the coarser
                            // precision at max(|a[ta]|, |a[tb]|, |b[ta]|, |b[tb]|)
  std::string kind;         // "rounding" | "real" | "precision_failure" | "undetermined"
                            // (compare/verdict.h; schema 1's "near_tie" reads as "rounding")
  bool after_newline = false;  // the token before the divergence (last of context or prompt)
                               // contains '\n'
  VerdictEvidence evidence;    // why `kind`
};

// Statistics over the steps after the split (free mode: the two sides read different texts, so their
// logits answer different questions; reported, never gated).
struct AfterSplitMetrics {
  int64_t steps = 0;            // compared steps with same_context = false
  double mean_kl = 0;
  double max_kl = 0;
  double top1_agreement = 1;
};

// Statistics over the same-context steps of one run (both sides read the same tokens; in
// teacher-forced mode every step). A NaN in any step's figure makes the aggregate NaN (written as
// null), so it never vanishes from a maximum and fails every gate. Percentiles use the nearest-rank
// method.
struct RunMetrics {
  int64_t steps = 0;                // compared steps (lines in steps.jsonl for this run), all
  int64_t same_context_steps = 0;   // steps with same_context = true: the figures below
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
  std::optional<int64_t> first_divergence_step;  // null when the argmaxes never differ (a step
                                                 // with non-finite logits counts as differing)
  int64_t nonfinite_steps = 0;      // steps where a side's logits hold NaN or inf (all steps)
  AfterSplitMetrics after_split;    // the steps after the split
  std::optional<double> max_logprob_diff;  // top-k runs: max over same-context steps of
                                           // StepRecord::logprob_max_abs_diff; null otherwise
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

// Overflow and saturation watch of one side (compare/overflow.h): at every observed point of the
// side's forward pass over the tokens it read (embedding, each layer's residual stream after its
// attention block and after its MLP block, final norm, logits), the largest finite magnitude over
// every position against the largest finite value of the precision that point is held in under
// the side's policy (FP16 65504; BF16 3.39e38; FP32 3.40e38). Written by compare (key
// "range_watch" of a run) and by localize (range_a / range_b).
struct RangePoint {
  std::string name;            // "layer 5 mlp", "embedding", "final_norm", "logits"
  std::string precision;       // the precision its values are held in ("fp16")
  double largest_finite = 0;   // of that precision (torch.finfo(dtype).max)
  double max_abs = 0;          // largest finite |x| over every position
  int64_t non_finite = 0;      // inf and NaN values over every position
  bool saturating = false;     // max_abs >= saturation_fraction x largest_finite (RangeWatch)
  // The first decode step whose forward pass holds an out-of-range value here (the prompt's
  // positions count as step 0); null when it stays in range or the step is not known.
  std::optional<int64_t> first_out_of_range_step;
  bool out_of_range() const { return non_finite > 0 || max_abs > largest_finite; }
  double fraction() const { return largest_finite > 0 ? max_abs / largest_finite : 0.0; }
};

struct RangeWatch {
  std::string policy;                   // the side's precision policy ("fp16", "bf16+fp32:norm")
  double saturation_fraction = 0.5;     // "saturation risk" threshold, a fraction of the range
  std::vector<RangePoint> points;       // forward order
  std::optional<std::string> first_out_of_range;  // first point with inf/NaN or |x| > range
  std::optional<std::string> first_non_finite;    // first point with inf/NaN
  std::optional<std::string> first_saturating;    // first point at >= saturation_fraction
  std::optional<std::string> largest_fraction_point;  // where max_abs / largest_finite peaks
  double largest_fraction = 0;                    // that ratio
};

// Gates. A gate that is null is not checked.
struct Thresholds {
  std::optional<double> max_kl;                      // metrics.max_kl <= this
  std::optional<double> mean_kl;                     // metrics.mean_kl <= this
  std::optional<double> p99_kl;                      // metrics.p99_kl <= this
  std::optional<double> max_abs_logit_diff;          // metrics.max_abs_logit_diff <= this
  std::optional<double> min_top1_agreement;          // metrics.top1_agreement >= this
  std::optional<int64_t> min_first_divergence_step;  // no divergence, or at a step >= this
  bool fail_on_real_divergence = false;              // a first divergence of kind "real" or
                                                     // "precision_failure" fails
  bool require_oracle_acceptable = false;            // oracle.acceptable == false fails
};

// A metric a run could not compute, and why (e.g. KL with a top-k trace side). Its fields in
// metrics/steps hold null, never a made-up zero; a gate on it fails with the reason.
struct UnavailableMetric {
  std::string metric;  // "kl", "max_abs_logit_diff", ... (StepRecord / RunMetrics field names)
  std::string reason;
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
  // The pair's verdict on this prompt: the first divergence's kind and evidence when there is one;
  // without a flip, whether the two sides' logits differ by more than rounding explains (kind
  // "real": a different function that has not flipped a token yet), or not ("rounding"). Null in
  // schema-1 files.
  std::optional<std::string> verdict_kind;
  VerdictEvidence verdict_evidence;
  RunMetrics metrics;
  std::optional<OracleResult> oracle;
  Thresholds thresholds;              // gates applied to this run (case thresholds, overridden by
                                      // the pair's own)
  double elapsed_s = 0;               // wall time of the run (oracle included)
  bool pass = true;                   // no gate failed for this run
  // Metrics this run could not compute (a top-k trace side), each with its reason; empty for two
  // models or full-logit traces. Key "unavailable_metrics".
  std::vector<UnavailableMetric> unavailable_metrics;
  // How each side ran (keys "engine" {"a", "b"} and "attention" {"a", "b"}; null when unknown, e.g.
  // sides decoded alone or files written before): the decode engine's status
  // (decode::PiecewiseStep::Status: "cuda graphs: on (...)", "eager: cpu (synchronous loop)", ...)
  // and forward::DescribeAttention (implementation, SDPA kernel, score scaling).
  std::string engine_a, engine_b;
  nlohmann::json attention_a, attention_b;
  // The overflow and saturation watch of each side (RangeWatch); null when it did not run (off, or
  // a recorded side, which has no activations). Key "range_watch": {"a": ..., "b": ...} or null.
  std::optional<RangeWatch> range_a, range_b;
};

// A trace (reports/TRACES.md) or llama.cpp KL-divergence base file this run wrote (--save-traces,
// --save-kld-base), one per side of a pair.
struct SavedTrace {
  std::string path;    // relative to the output directory, e.g. "traces/original@fp32"
  std::string format;  // "parity-trace" or "llama.cpp-kld-base"
  std::string side;    // "a" or "b"
  std::string pair;    // PairSummary::id
  std::string model;   // the side's label and precision, "original@fp32"
  std::vector<std::string> runs;  // Run ids whose streams it holds
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
  bool gated = true;  // at least one gate was on for some run; false: nothing was checked, and the
                      // outputs say "no gate" instead of PASS
};

// True when `thresholds` turns at least one gate on.
bool AnyGate(const Thresholds& thresholds);

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
  std::string oracle_device;    // where the FP64 runs ran ("cpu", "cuda:0"); empty: no oracle
  std::string range_watch = "auto";  // the case's range watch: "on", "off", or "auto" (on for
                                     // pairs with an fp16 module, and for all with the oracle)
  double saturation_fraction = 0.5;  // RangeWatch::saturation_fraction
  std::string cuda_graphs = "auto";  // the case's cuda_graphs: "auto" (CUDA graphs where the
                                     // pipelined loop can record) or "off"; runs[].engine says how
                                     // each side ran
  bool deterministic_algorithms = true;  // at::globalContext().setDeterministicAlgorithms
  int64_t num_threads = 0;      // at::get_num_threads() during the run
  // forward::DescribeAttentionSettings(): cuDNN version (null without), TF32 for cuBLAS / cuDNN;
  // key "attention_backend", null in files written before it existed.
  nlohmann::json attention_backend;
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
  std::vector<SavedTrace> traces;  // written by --save-traces / --save-kld-base; key "traces"
  // Where each pair's models ran: one object per side and oracle model (compare/pair_placement.h
  // PairPlacementJson: pair, side, model, lockstep, plan, reason, stages); key "placements",
  // absent in summaries written before it existed.
  nlohmann::json placements = nlohmann::json::array();
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
nlohmann::json ToJson(const VerdictEvidence& evidence);
nlohmann::json ToJson(const FirstDivergence& divergence);
nlohmann::json ToJson(const RunMetrics& metrics);
nlohmann::json ToJson(const OracleResult& oracle);
nlohmann::json ToJson(const RangeWatch& watch);
RangeWatch RangeWatchFromJson(const nlohmann::json& json, const std::string& source);
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
