// The lockstep greedy driver and RunPair on scripted models: free-running vs teacher-forced semantics,
// EOS handling, argmax ties, first-divergence detection and classification, the FP64 oracle wiring.
#include "harness/decode/greedy.h"

#include <functional>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "harness/compare/metrics.h"
#include "harness/compare/suite.h"
#include "harness/core/error.h"

namespace parity {
namespace {

constexpr int64_t kVocab = 8;
constexpr int64_t kEos = 7;

// A causal LM whose next-token logits are a scripted function of the whole context (prompt and
// every token fed so far). It records what it read, so tests can check who read which stream.
class ScriptedLM : public forward::CausalLM {
 public:
  using Script = std::function<std::vector<double>(const std::vector<int64_t>& context)>;
  explicit ScriptedLM(Script script, bool all_positions = true)
      : script_(std::move(script)) {
    config_.vocab_size = kVocab;
    variants_.lm_head_all_positions = all_positions;
  }
  const model::ModelConfig& config() const override { return config_; }
  const forward::Numerics& numerics() const override { return numerics_; }
  const forward::Variants& variants() const override { return variants_; }

  at::Tensor Forward(const at::Tensor& tokens, forward::KVCache& cache, const at::Tensor&,
                     const forward::Observer*) override {
    if (cache.length == 0) context_.clear();
    ++forward_calls;
    std::vector<at::Tensor> rows;
    for (int64_t i = 0; i < tokens.size(1); ++i) {
      int64_t token = tokens[0][i].item<int64_t>();
      context_.push_back(token);
      read.push_back(token);
      std::vector<double> logits = script_(context_);
      rows.push_back(at::tensor(at::ArrayRef<double>(logits), at::kDouble).to(at::kFloat));
    }
    cache.length += tokens.size(1);
    at::Tensor out = at::stack(rows).unsqueeze(0);  // [1, T, V]
    return variants_.lm_head_all_positions ? out : out.slice(1, -1);
  }

  std::vector<int64_t> read;  // every token fed, in order (prompt included)
  int64_t forward_calls = 0;

 private:
  Script script_;
  model::ModelConfig config_;
  forward::Numerics numerics_;
  forward::Variants variants_;
  std::vector<int64_t> context_;
};

// One-hot-ish logits: `token` gets `high`, everything else 0.
std::vector<double> Prefer(int64_t token, double high = 10.0) {
  std::vector<double> logits(kVocab, 0.0);
  logits[token] = high;
  return logits;
}

// A: next = (last + 1) % 5.
std::vector<double> Counter(const std::vector<int64_t>& context) {
  return Prefer((context.back() + 1) % 5);
}

// B: the counter, except that after reading `at_length` tokens it says 5 (a different token).
ScriptedLM::Script CounterWithDetour(size_t at_length) {
  return [at_length](const std::vector<int64_t>& context) {
    return context.size() == at_length ? Prefer(5) : Counter(context);
  };
}

const std::vector<int64_t> kPrompt = {0, 1};

TEST(GreedyTest, FreeRunningEachModelContinuesItsOwnText) {
  ScriptedLM a(Counter), b(CounterWithDetour(kPrompt.size() + 3));  // B detours at step 3
  decode::GreedyOptions options;
  options.max_new_tokens = 6;
  std::vector<bool> same_context;
  std::vector<int64_t> positions;
  decode::GreedyResult r = decode::RunLockstep(a, b, kPrompt, options, [&](const decode::GreedyStep& s) {
    same_context.push_back(s.same_context);
    positions.push_back(s.position);
  });
  EXPECT_EQ(r.tokens_a, (std::vector<int64_t>{2, 3, 4, 0, 1, 2}));
  // B says 5 at step 3, then continues from its own 5: (5 + 1) % 5 = 1, 2, ...
  EXPECT_EQ(r.tokens_b, (std::vector<int64_t>{2, 3, 4, 5, 1, 2}));
  EXPECT_EQ(r.compared_steps, 6);
  // Identical contexts up to and including the divergence step, different after it.
  EXPECT_EQ(same_context, (std::vector<bool>{true, true, true, true, false, false}));
  EXPECT_EQ(r.same_context, same_context);
  EXPECT_EQ(positions, (std::vector<int64_t>{2, 3, 4, 5, 6, 7}));
  // Each read its own tokens; nothing is fed after the last step.
  EXPECT_EQ(b.read, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 1}));
  EXPECT_EQ(r.input_b, (std::vector<int64_t>{2, 3, 4, 5, 1}));
  EXPECT_EQ(a.forward_calls, 6);  // prompt + 5 single tokens
}

// CUDA graphs are the default wherever the pipelined CUDA loop runs (bitwise Forward's logits,
// `parity bench --check`); on the CPU nothing records: the synchronous loop, "eager: cpu".
TEST(GreedyTest, DefaultsAskForGraphsAndTheCpuStaysEager) {
  const decode::GreedyOptions defaults;
  EXPECT_EQ(defaults.graphs, decode::GraphMode::kAuto);
  EXPECT_TRUE(defaults.pipelined);
  decode::PlanInput cpu_step;  // a one-token step of a side on the CPU, asked as runs ask
  cpu_step.mode = defaults.graphs;
  cpu_step.cuda = false;
  cpu_step.one_token_steps = 3;
  EXPECT_EQ(decode::PlanStep(cpu_step).path, decode::StepPath::kForward);
  EXPECT_EQ(decode::PlanStep(cpu_step).why, "eager: cpu");
  ScriptedLM a(Counter), b(Counter);
  decode::GreedyOptions options;
  options.max_new_tokens = 3;
  const decode::GreedyResult r = decode::RunLockstep(a, b, kPrompt, options);
  EXPECT_EQ(r.tokens_a, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(r.engine_a, "eager: cpu (synchronous loop)");
  EXPECT_EQ(r.engine_b, "eager: cpu (synchronous loop)");
}

TEST(GreedyTest, TeacherForcedBothReadTheTeachersStream) {
  ScriptedLM a(Counter), b(CounterWithDetour(kPrompt.size() + 3));
  decode::GreedyOptions options;
  options.mode = decode::GreedyMode::kTeacherForced;
  options.max_new_tokens = 6;
  std::vector<int64_t> disagreements;
  decode::GreedyResult r = decode::RunLockstep(a, b, kPrompt, options, [&](const decode::GreedyStep& s) {
    EXPECT_TRUE(s.same_context);
    if (s.token_a != s.token_b) disagreements.push_back(s.step);
  });
  EXPECT_EQ(r.tokens_a, (std::vector<int64_t>{2, 3, 4, 0, 1, 2}));
  // B's prediction differs at step 3 only: at step 4 it reads A's 0, not its own 5.
  EXPECT_EQ(r.tokens_b, (std::vector<int64_t>{2, 3, 4, 5, 1, 2}));
  EXPECT_EQ(disagreements, (std::vector<int64_t>{3}));
  EXPECT_EQ(b.read, a.read);
  EXPECT_EQ(r.input_a, r.input_b);
  EXPECT_EQ(r.input_b, (std::vector<int64_t>{2, 3, 4, 0, 1}));

  // With B as teacher, both read B's stream (5 at step 3, then 1).
  ScriptedLM a2(Counter), b2(CounterWithDetour(kPrompt.size() + 3));
  options.teacher_is_a = false;
  decode::GreedyResult r2 = decode::RunLockstep(a2, b2, kPrompt, options);
  EXPECT_EQ(r2.input_a, (std::vector<int64_t>{2, 3, 4, 5, 1}));
  EXPECT_EQ(r2.tokens_a, (std::vector<int64_t>{2, 3, 4, 0, 1, 2}));
}

TEST(GreedyTest, FreeRunningAfterOneSideEmitsEos) {
  // A emits EOS at step 2; B continues alone to max_new_tokens, uncompared.
  auto eos_after_two = [](const std::vector<int64_t>& context) {
    return context.size() == 4 ? Prefer(kEos) : Counter(context);
  };
  ScriptedLM a(eos_after_two), b(Counter);
  decode::GreedyOptions options;
  options.max_new_tokens = 5;
  options.eos_ids = {kEos};
  int64_t callbacks = 0;
  decode::GreedyResult r =
      decode::RunLockstep(a, b, kPrompt, options, [&](const decode::GreedyStep&) { ++callbacks; });
  EXPECT_EQ(r.tokens_a, (std::vector<int64_t>{2, 3, kEos}));
  EXPECT_EQ(r.tokens_b, (std::vector<int64_t>{2, 3, 4, 0, 1}));
  EXPECT_EQ(r.compared_steps, 3);  // steps 0, 1 and 2 (the EOS flip); 3 and 4 are B alone
  EXPECT_EQ(callbacks, 3);
  EXPECT_EQ(a.read, (std::vector<int64_t>{0, 1, 2, 3}));  // EOS is never fed back

  // Both emit EOS at the same step: decoding stops there.
  ScriptedLM c(eos_after_two), d(eos_after_two);
  decode::GreedyResult both = decode::RunLockstep(c, d, kPrompt, options);
  EXPECT_EQ(both.compared_steps, 3);
  EXPECT_EQ(both.tokens_b, (std::vector<int64_t>{2, 3, kEos}));
}

TEST(GreedyTest, TeacherForcedStopsAtTheTeachersEos) {
  auto eos_after_two = [](const std::vector<int64_t>& context) {
    return context.size() == 4 ? Prefer(kEos) : Counter(context);
  };
  ScriptedLM a(eos_after_two), b(Counter);
  decode::GreedyOptions options;
  options.mode = decode::GreedyMode::kTeacherForced;
  options.max_new_tokens = 5;
  options.eos_ids = {kEos};
  decode::GreedyResult r = decode::RunLockstep(a, b, kPrompt, options);
  EXPECT_EQ(r.tokens_a, (std::vector<int64_t>{2, 3, kEos}));
  EXPECT_EQ(r.tokens_b, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(r.compared_steps, 3);
}

TEST(GreedyTest, ArgmaxTiesGoToTheLowestIndex) {
  // All-equal logits: torch.argmax returns the first maximum, 0; so does the driver.
  ScriptedLM flat([](const std::vector<int64_t>&) { return std::vector<double>(kVocab, 1.5); });
  ScriptedLM two_way([](const std::vector<int64_t>&) {
    std::vector<double> logits(kVocab, 0.0);
    logits[3] = logits[6] = 2.0;
    return logits;
  });
  decode::GreedyOptions options;
  options.max_new_tokens = 2;
  decode::GreedyResult r = decode::RunLockstep(flat, two_way, kPrompt, options);
  EXPECT_EQ(r.tokens_a, (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(r.tokens_b, (std::vector<int64_t>{3, 3}));
  at::Tensor t = at::zeros({kVocab});
  t[3] = 2.0;
  t[6] = 2.0;
  EXPECT_EQ(decode::GreedyArgmax(t), 3);
  EXPECT_EQ(at::argmax(t).item<int64_t>(), 3);
}

TEST(GreedyTest, RejectsBadInputs) {
  ScriptedLM a(Counter), b(Counter);
  decode::GreedyOptions options;
  EXPECT_THROW(decode::RunLockstep(a, b, {}, options), InputError);
  options.max_new_tokens = 0;
  EXPECT_EQ(decode::RunLockstep(a, b, kPrompt, options).compared_steps, 0);
  EXPECT_THROW(decode::ParseGreedyMode("beam"), InputError);
}

TEST(GreedyTest, TeacherForcedLogitsMatchTheLockstepLogits) {
  // Logits that depend on the whole context, so that a misaligned step would show.
  auto script = [](const std::vector<int64_t>& context) {
    std::vector<double> logits(kVocab);
    for (int64_t i = 0; i < kVocab; ++i) logits[i] = 0.1 * i * static_cast<double>(context.size()) +
                                                    (i == (context.back() + 3) % kVocab ? 5 : 0);
    return logits;
  };
  for (bool all_positions : {true, false}) {
    ScriptedLM a(script, all_positions), b(script, all_positions), oracle(script, all_positions);
    decode::GreedyOptions options;
    options.max_new_tokens = 5;
    std::vector<at::Tensor> seen;
    decode::GreedyResult r = decode::RunLockstep(a, b, kPrompt, options, [&](const decode::GreedyStep& s) {
      seen.push_back(s.logits_a.clone());
    });
    at::Tensor forced = decode::TeacherForcedLogits(oracle, kPrompt, r.input_a, r.compared_steps);
    ASSERT_EQ(forced.size(0), 5);
    for (int64_t i = 0; i < 5; ++i) EXPECT_TRUE(at::equal(forced[i], seen[i])) << i;
  }
}

// RunPair: metrics, the first divergence and its classification from scripted logits.
compare::RunRequest MakeRequest(forward::Precision precision) {
  compare::RunRequest request;
  request.id = "p0/a/b";
  request.prompt_tokens = {0, 1};
  request.pair.a = {"a", forward::PrecisionName(precision), "", false};
  request.pair.b = {"b", forward::PrecisionName(precision), "", false};
  request.precision_a = request.precision_b = precision;
  request.greedy.max_new_tokens = 6;
  request.top_k = 2;
  return request;
}

compare::TextDecoder LetterDecoder() {
  // Token 4 is a newline; others are letters.
  compare::TextDecoder text;
  text.token_text = [](int64_t id) { return id == 4 ? std::string("\n") : std::string(1, 'a' + id); };
  text.decode = [text](const std::vector<int64_t>& ids) {
    std::string out;
    for (int64_t id : ids) out += text.token_text(id);
    return out;
  };
  return text;
}

TEST(RunPairTest, FindsAndClassifiesTheFirstDivergence) {
  // Both count; at step 3 (after the newline token 4 at step 2) A prefers 0 over 5 by 0.001 and B
  // prefers 5 over 0 by 0.001: a flip of 0.002 at magnitude 10.
  auto near_tie = [](bool is_b) {
    return [is_b](const std::vector<int64_t>& context) {
      if (context.size() == 5) {
        std::vector<double> logits(kVocab, 0.0);
        logits[0] = is_b ? 9.999 : 10.0;
        logits[5] = is_b ? 10.0 : 9.999;
        return logits;
      }
      return Counter(context);
    };
  };
  // The verdict (compare/verdict.h) from the run's own evidence: the three earlier steps are
  // identical (observed noise 0), so a flip of 0.002 is not explained by noise seen so far; the
  // sides' relative difference at the step (1.2e-4 of the logits' spread) is within FP16's rounding
  // budget (undetermined: the oracle would decide) but far beyond FP32's (real).
  for (auto [precision, kind] : {std::pair{forward::Precision::kFP16, "undetermined"},
                                 std::pair{forward::Precision::kFP32, "real"}}) {
    ScriptedLM a(near_tie(false)), b(near_tie(true));
    compare::RunOutcome out = compare::RunPair(a, b, MakeRequest(precision), LetterDecoder());
    const compare::Run& run = out.run;
    ASSERT_TRUE(run.first_divergence.has_value());
    const compare::FirstDivergence& d = *run.first_divergence;
    EXPECT_EQ(d.step, 3);
    EXPECT_EQ(d.position, 5);
    EXPECT_EQ(d.token_a, 0);
    EXPECT_EQ(d.token_b, 5);
    EXPECT_EQ(d.text_a, "a");
    EXPECT_EQ(d.text_b, "f");
    EXPECT_EQ(d.context, "cd\n");  // tokens 2, 3, 4 generated before the divergence
    EXPECT_TRUE(d.after_newline);
    EXPECT_EQ(d.kind, kind);
    // Logits pass through FP32 (the models' output type): 9.999f and 10.0f.
    EXPECT_NEAR(d.flip_gap, 2 * (10.0 - 9.999), 1e-5);
    EXPECT_NEAR(d.margin_a, 0.001, 1e-5);
    EXPECT_EQ(run.metrics.first_divergence_step, 3);
    EXPECT_EQ(run.metrics.steps, 6);
    EXPECT_EQ(run.metrics.same_context_steps, 4);
    EXPECT_EQ(out.steps.size(), 6u);
    EXPECT_EQ(out.steps[3].run, "p0/a/b");
    EXPECT_FALSE(out.steps[3].top1_agree);
    EXPECT_FALSE(out.steps[4].same_context);
    EXPECT_EQ(run.text_a, "cd\nabc");
    EXPECT_EQ(run.text_b, "cd\nfbc");  // B continues from its own 5: (5 + 1) % 5 = 1 -> "b"
    EXPECT_FALSE(run.oracle.has_value());
  }
}

TEST(RunPairTest, IdenticalModelsNeverDiverge) {
  ScriptedLM a(Counter), b(Counter);
  compare::RunOutcome out =
      compare::RunPair(a, b, MakeRequest(forward::Precision::kFP32), LetterDecoder());
  EXPECT_FALSE(out.run.first_divergence.has_value());
  EXPECT_EQ(out.run.metrics.max_kl, 0.0);
  EXPECT_EQ(out.run.metrics.top1_agreement, 1.0);
  EXPECT_EQ(out.run.tokens_a, out.run.tokens_b);
  EXPECT_TRUE(out.run.pass);
}

TEST(RunPairTest, OracleMeasuresEachSideAgainstFp64) {
  // A and B add different offsets to token 1's logit; the "FP64" models are the exact script.
  auto exact = [](const std::vector<int64_t>& context) { return Counter(context); };
  auto offset = [](double delta) {
    return [delta](const std::vector<int64_t>& context) {
      std::vector<double> logits = Counter(context);
      logits[6] += delta;
      return logits;
    };
  };
  ScriptedLM a(offset(0.5)), b(offset(2.0)), a64(exact), b64(exact);
  compare::RunRequest request = MakeRequest(forward::Precision::kFP32);
  compare::OracleModels oracle{&a64, &b64};
  compare::RunOutcome out = compare::RunPair(a, b, request, LetterDecoder(), &oracle);
  ASSERT_TRUE(out.run.oracle.has_value());
  const compare::OracleResult& o = *out.run.oracle;
  // One logit of V = 8 off by delta at every step: RMS = delta / sqrt(8).
  EXPECT_NEAR(o.a_rms_error_vs_fp64, 0.5 / std::sqrt(8.0), 1e-12);
  EXPECT_NEAR(o.b_rms_error_vs_fp64, 2.0 / std::sqrt(8.0), 1e-12);
  EXPECT_NEAR(o.b_rms_error_vs_reference, 2.0 / std::sqrt(8.0), 1e-12);
  EXPECT_EQ(o.fp64_models_rms_diff, 0.0);
  EXPECT_EQ(o.comparable_steps, 6);
  EXPECT_EQ(o.multiplier, 2.0);
  ASSERT_TRUE(o.acceptable.has_value());
  EXPECT_FALSE(*o.acceptable);  // 2.0 > 2 * 0.5
  ASSERT_TRUE(out.steps[0].err_a_fp64.has_value());
  EXPECT_NEAR(*out.steps[0].err_b_fp64, 2.0 / std::sqrt(8.0), 1e-12);

  request.thresholds.require_oracle_acceptable = true;
  std::vector<compare::Failure> failures = compare::CheckGates(out.run, request.thresholds);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].gate, "require_oracle_acceptable");

  // B within 2x of A: acceptable.
  ScriptedLM b_close(offset(0.9));
  compare::RunOutcome close = compare::RunPair(a, b_close, request, LetterDecoder(), &oracle);
  EXPECT_TRUE(*close.run.oracle->acceptable);
  EXPECT_TRUE(close.run.pass);
}

TEST(RunPairTest, GatesNameTheRunAndTheMetric) {
  compare::Run run;
  run.id = "p1/x@fp16/y@fp16";
  run.metrics.max_kl = 0.5;
  run.metrics.mean_kl = 0.01;
  run.metrics.top1_agreement = 0.9;
  compare::FirstDivergence d;
  d.step = 4;
  d.kind = "real";
  run.first_divergence = d;
  compare::Thresholds t;
  t.max_kl = 0.1;
  t.mean_kl = 0.1;  // passes
  t.min_top1_agreement = 0.95;
  t.min_first_divergence_step = 10;
  t.fail_on_real_divergence = true;
  std::vector<compare::Failure> failures = compare::CheckGates(run, t);
  ASSERT_EQ(failures.size(), 4u);
  EXPECT_EQ(failures[0].gate, "max_kl");
  EXPECT_EQ(failures[0].message, "p1/x@fp16/y@fp16: max_kl 0.5 > 0.1");
  EXPECT_EQ(failures[1].gate, "min_top1_agreement");
  EXPECT_EQ(failures[2].gate, "min_first_divergence_step");
  EXPECT_EQ(failures[3].gate, "fail_on_real_divergence");
  // A NaN measurement fails a gate instead of passing it.
  run.metrics.max_kl = std::nan("");
  compare::Thresholds only_max_kl;
  only_max_kl.max_kl = 1.0;
  EXPECT_EQ(compare::CheckGates(run, only_max_kl).size(), 1u);
}

TEST(RunPairTest, PairSummaryCountsIdenticalRunsPerStep) {
  std::vector<compare::Run> runs(2);
  for (int i = 0; i < 2; ++i) {
    runs[i].id = "p" + std::to_string(i) + "/a@fp32/b@fp32";
    runs[i].pair.a = {"a", "fp32", "", false};
    runs[i].pair.b = {"b", "fp32", "", false};
  }
  compare::FirstDivergence d;
  d.step = 1;
  runs[1].first_divergence = d;
  std::vector<compare::StepRecord> steps(2);
  steps[0].run = runs[0].id;
  steps[0].kl = 0.2;
  steps[1].run = runs[1].id;
  steps[1].kl = 0.4;
  steps[1].top1_agree = false;
  std::vector<compare::PairSummary> pairs = compare::SummarizePairs(runs, steps, 3);
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].id, "a@fp32/b@fp32");
  EXPECT_EQ(pairs[0].identical_fraction, (std::vector<double>{1.0, 0.5, 0.5}));
  EXPECT_DOUBLE_EQ(pairs[0].mean_kl, 0.3);
  EXPECT_EQ(pairs[0].max_kl, 0.4);
  EXPECT_EQ(pairs[0].top1_agreement, 0.5);
}

}  // namespace
}  // namespace parity
