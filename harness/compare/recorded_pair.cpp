#include "harness/compare/recorded_pair.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <set>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "harness/compare/metrics.h"
#include "harness/compare/verdict.h"
#include "harness/core/error.h"

namespace parity::compare {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string Num(double value) { return fmt::format("{:.3g}", value); }

// One side at one step: every id's log-prob (full) or the K listed ones (top-k).
struct StepView {
  bool full = true;
  std::vector<double> logits;    // full: raw logits [V]
  std::vector<double> logprobs;  // full: [V]; top-k: [K], listed order
  std::vector<int64_t> ids;      // top-k: [K]
  int64_t choice = 0;

  int64_t count() const { return full ? static_cast<int64_t>(logprobs.size()) : static_cast<int64_t>(ids.size()); }
  int64_t IdAt(int64_t i) const { return full ? i : ids[i]; }
  // Index into logprobs of `id`; -1 when not listed.
  int64_t IndexOf(int64_t id) const {
    if (full) return id >= 0 && id < count() ? id : -1;
    auto it = std::find(ids.begin(), ids.end(), id);
    return it == ids.end() ? -1 : static_cast<int64_t>(it - ids.begin());
  }
  std::optional<double> LogProb(int64_t id) const {
    int64_t i = IndexOf(id);
    return i < 0 ? std::nullopt : std::optional<double>(logprobs[i]);
  }
  // Rank of `id` (0 = most likely; ties by lower id for full logits, listed order for top-k); -1
  // when beyond the listed ids.
  int64_t Rank(int64_t id) const {
    if (!full) return IndexOf(id);
    const double v = logprobs[id];
    int64_t rank = 0;
    for (int64_t j = 0; j < count(); ++j) {
      if (logprobs[j] > v || (logprobs[j] == v && j < id)) ++rank;
    }
    return rank;
  }
  // The k most likely ids, most likely first.
  std::vector<int64_t> Top(int64_t k) const {
    if (!full) return std::vector<int64_t>(ids.begin(), ids.begin() + std::min<int64_t>(k, count()));
    std::vector<int64_t> order(logprobs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    k = std::min<int64_t>(k, count());
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t x, int64_t y) {
      return logprobs[x] > logprobs[y] || (logprobs[x] == logprobs[y] && x < y);
    });
    order.resize(k);
    return order;
  }
  // Top-1 minus top-2 (logits for full; log-probs differ from logits by a constant, so the same).
  double Margin() const {
    std::vector<int64_t> top = Top(2);
    if (top.size() < 2) return kNaN;
    const std::vector<double>& v = full ? logits : logprobs;
    return full ? v[top[0]] - v[top[1]] : logprobs[0] - logprobs[1];
  }
  // Upper bound on the log-prob of an id not listed (top-k: the last listed value).
  double Floor() const { return full || logprobs.empty() ? kNaN : logprobs.back(); }
  int64_t NonFinite() const {
    int64_t n = 0;
    for (double x : full ? logits : logprobs) n += std::isfinite(x) ? 0 : 1;
    return n;
  }
};

StepView View(const SideSteps& side, size_t step) {
  StepView v;
  v.full = !side.topk();
  if (v.full) {
    v.logits = ToDoubleVector(side.logits[step]);
    at::Tensor lp = at::log_softmax(side.logits[step].to(at::kDouble).view({-1}), 0).contiguous();
    v.logprobs.assign(lp.data_ptr<double>(), lp.data_ptr<double>() + lp.numel());
  } else {
    at::Tensor ids = side.topk_ids[static_cast<int64_t>(step)].contiguous();
    at::Tensor lps = side.topk_logprobs[static_cast<int64_t>(step)].to(at::kDouble).contiguous();
    v.ids.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
    v.logprobs.assign(lps.data_ptr<double>(), lps.data_ptr<double>() + lps.numel());
  }
  v.choice = side.tokens[step];
  return v;
}

StepRecord CompareTopkStep(const StepView& a, const StepView& b, int64_t top_k) {
  StepRecord r;
  r.max_abs_diff = r.rms_diff = r.kl = r.kl_reverse = r.js = kNaN;
  r.token_a = a.choice;
  r.token_b = b.choice;
  r.nonfinite_a = a.NonFinite();
  r.nonfinite_b = b.NonFinite();
  r.top1_agree = r.token_a == r.token_b && r.nonfinite_a == 0 && r.nonfinite_b == 0;
  const int64_t k = std::max<int64_t>(1, std::min({top_k, a.count(), b.count()}));
  std::vector<int64_t> top_a = a.Top(k), top_b = b.Top(k);
  int64_t common = 0;
  for (int64_t id : top_a) common += std::count(top_b.begin(), top_b.end(), id) > 0 ? 1 : 0;
  r.topk_overlap = static_cast<double>(common) / static_cast<double>(k);
  r.rank_b_in_a = a.Rank(r.token_b);
  r.rank_a_in_b = b.Rank(r.token_a);
  r.margin_a = a.Margin();
  r.margin_b = b.Margin();
  auto diff_at = [&](int64_t id) -> std::optional<double> {
    auto x = a.LogProb(id), y = b.LogProb(id);
    if (!x || !y) return std::nullopt;
    return std::abs(*x - *y);
  };
  auto da = diff_at(r.token_a), db = diff_at(r.token_b);
  r.noise = da && db ? std::max(*da, *db) : kNaN;
  const StepView& listed = a.full ? b : a;  // the side whose ids bound the shared set
  const StepView& other = a.full ? a : b;
  int64_t shared = 0;
  double max_diff = 0;
  for (int64_t i = 0; i < listed.count(); ++i) {
    auto y = other.LogProb(listed.IdAt(i));
    if (!y) continue;
    ++shared;
    max_diff = MaxPropagatingNan(max_diff, std::abs(listed.logprobs[i] - *y));
  }
  r.shared_ids = shared;
  r.logprob_max_abs_diff = shared > 0 ? max_diff : kNaN;
  return r;
}

// The metrics a top-k run leaves out, with the reason.
std::vector<UnavailableMetric> TopkUnavailable(const SideSteps& a, const SideSteps& b,
                                               int64_t top_k) {
  const int64_t k = std::min(a.topk() ? a.topk_ids.size(1) : INT64_MAX,
                             b.topk() ? b.topk_ids.size(1) : INT64_MAX);
  const std::string who = a.topk() && b.topk() ? "both sides list" : (a.topk() ? "side A lists" : "side B lists");
  const std::string why = fmt::format("{} only the top-{} log-probs of each step", who, k);
  std::vector<UnavailableMetric> out;
  for (const char* metric : {"kl", "kl_reverse", "js", "max_abs_diff", "rms_diff", "nmse", "cosine"}) {
    out.push_back({metric, why + ": a full-vocabulary metric cannot be computed from them (and is not "
                                 "estimated)"});
  }
  out.push_back({"rank", "a rank beyond the listed ids is unknown and written as -1"});
  out.push_back({"noise", "measured in log-probs at the competing tokens (normalizers included), "
                          "null when a token is beyond the listed ids"});
  if (k < top_k) {
    out.push_back({"topk_overlap", fmt::format("over the first {} ids (the trace lists {} < top_k {})",
                                               k, k, top_k)});
  }
  out.push_back({"verdict", "top-k only: the relative full-vocabulary difference that shows a "
                            "different function, the FP64 oracle and a second precision are "
                            "unavailable, so a flip is at best rounding (by the noise or ULP rule) "
                            "and otherwise undetermined, never proven real"});
  return out;
}

// The verdict of a top-k run (see recorded_pair.h and TopkUnavailable's "verdict").
void ClassifyTopk(RunOutcome& outcome, const StepView* div_a, const StepView* div_b,
                  const RunRequest& request) {
  Run& run = outcome.run;
  const forward::Precision coarser = CoarserPrecision(request.precision_a, request.precision_b);
  VerdictEvidence e;
  e.precision = forward::PrecisionName(coarser);
  e.depth = outcome.depth;
  const int64_t end = run.first_divergence ? run.first_divergence->step : static_cast<int64_t>(outcome.steps.size());
  double noise = 0;
  int64_t measured = 0;
  bool bad_a = false, bad_b = false;
  for (int64_t i = 0; i < static_cast<int64_t>(outcome.steps.size()); ++i) {
    const StepRecord& s = outcome.steps[i];
    if (i <= end) {
      bad_a = bad_a || s.nonfinite_a > 0;
      bad_b = bad_b || s.nonfinite_b > 0;
    }
    if (i < end && s.same_context && std::isfinite(s.noise)) {
      noise = std::max(noise, s.noise);
      ++measured;
    }
  }
  e.noise_steps = measured;
  if (measured > 0) e.observed_noise = noise;
  std::string kind;
  if (bad_a || bad_b) {
    kind = "precision_failure";
    e.source = "non_finite";
    e.failing_side = bad_a && bad_b ? "both" : (bad_a ? "a" : "b");
    e.reason = fmt::format("{} values contain inf or NaN", bad_a && bad_b ? "both sides'" : (bad_a ? "A's" : "B's"));
  } else if (!run.first_divergence) {
    kind = "undetermined";
    e.source = "observed_noise";
    e.reason = fmt::format(
        "no token flipped in {} same-context step(s), log-probs of the shared ids differ by {} at "
        "most; top-k only: whether that is rounding or a small real difference needs the full "
        "logits (relative difference over the vocabulary) or the FP64 oracle",
        run.metrics.same_context_steps,
        run.metrics.max_logprob_diff ? Num(*run.metrics.max_logprob_diff) : std::string("n/a"));
  } else {
    FirstDivergence& d = *run.first_divergence;
    const int64_t ta = d.token_a, tb = d.token_b;
    // Each side's preference for its own token over the other's; beyond the listed ids a bound.
    bool exact = true;
    auto preference = [&](const StepView& v, int64_t own, int64_t other) {
      auto lo = v.LogProb(own), lt = v.LogProb(other);
      if (lt) return *lo - *lt;
      exact = false;
      return *lo - v.Floor();  // the other's log-prob is at most the last listed one
    };
    d.flip_gap = preference(*div_a, ta, tb) + preference(*div_b, tb, ta);
    double magnitude = 0;
    bool have_logits = false;
    for (const StepView* v : {div_a, div_b}) {
      if (!v->full) continue;
      have_logits = true;
      magnitude = std::max({magnitude, std::abs(v->logits[ta]), std::abs(v->logits[tb])});
    }
    d.tolerance = have_logits ? request.near_tie_ulps * UlpAt(magnitude, coarser) : kNaN;
    const std::string gap = fmt::format("flip gap {}{}", exact ? "" : ">= ", Num(d.flip_gap));
    if (exact && measured > 0 && d.flip_gap <= 2 * noise) {
      kind = "rounding";
      e.source = "observed_noise";
      e.reason = fmt::format(
          "{} is within twice the log-prob noise seen at the competing tokens over {} earlier "
          "same-context step(s) ({}); weaker than with full logits: the full-vocabulary difference "
          "is unavailable (top-k)", gap, measured, Num(noise));
    } else if (measured > 0) {
      kind = "undetermined";
      e.source = "observed_noise";
      e.reason = fmt::format(
          "{} exceeds twice the log-prob noise seen over {} earlier same-context step(s) ({}); "
          "top-k only: a real difference cannot be shown without full logits or the FP64 oracle",
          gap, measured, Num(noise));
    } else if (exact && have_logits && d.flip_gap <= d.tolerance) {
      kind = "rounding";
      e.source = "ulp";
      e.reason = fmt::format("no earlier step to measure noise on; {} is within {} ULPs of {} ({}) "
                             "(weak evidence, top-k only)",
                             gap, request.near_tie_ulps, e.precision, Num(d.tolerance));
    } else {
      kind = "undetermined";
      e.source = "ulp";
      e.reason = fmt::format(
          "no earlier step to measure noise on; {} {}; top-k only: undecidable here", gap,
          have_logits ? fmt::format("exceeds {} ULPs of {} ({})", request.near_tie_ulps,
                                    e.precision, Num(d.tolerance))
                      : std::string("(no side has logits, so no ULP tolerance)"));
    }
    d.kind = kind;
    d.evidence = e;
  }
  run.verdict_kind = kind;
  run.verdict_evidence = e;
}

// Appends what a recorded side means for the evidence to both verdict reasons.
void NoteRecordedEvidence(Run& run, const std::string& note) {
  if (run.verdict_kind) run.verdict_evidence.reason += " [" + note + "]";
  if (run.first_divergence) run.first_divergence->evidence.reason += " [" + note + "]";
}

decode::SideRun AsSideRun(const SideSteps& s) { return {s.tokens, s.logits}; }

// A KLD-base side holds quantized log-probs floored 16 nats below the maximum, not logits: KL, JS,
// top-1, ranks, overlap and margins mean what they say (softmax of log-probs is the distribution),
// but logit differences (offset by each step's normalizer, and the floor in the tail) do not, nor
// the verdict rules built on them. Those figures become null and are named, the verdict undetermined.
void MarkLogProbSide(RunOutcome& outcome, const std::string& side) {
  Run& run = outcome.run;
  for (StepRecord& s : outcome.steps) {
    s.max_abs_diff = s.rms_diff = s.noise = kNaN;
    s.nmse.reset();
    s.cosine.reset();
  }
  run.metrics.max_abs_logit_diff = run.metrics.rms_logit_diff_mean = kNaN;
  run.metrics.max_nmse.reset();
  run.metrics.min_cosine.reset();
  const std::string why = fmt::format(
      "side {} is a llama.cpp KLD-base file: log-probs (offset from logits by each step's "
      "normalizer), uint16-quantized and floored 16 nats below the maximum", side);
  for (const char* metric : {"max_abs_diff", "rms_diff", "nmse", "cosine", "noise"}) {
    run.unavailable_metrics.push_back({metric, why + ": logit differences are not defined"});
  }
  run.unavailable_metrics.push_back(
      {"verdict", why + ": the noise and relative-difference rules need logits, so the verdict is "
                        "undetermined unless a side is non-finite; KL, JS and top-1 are reported"});
  const bool failed = run.verdict_kind && *run.verdict_kind == "precision_failure";
  if (!failed) {
    VerdictEvidence& e = run.verdict_evidence;
    e.source = "unavailable";
    e.rel_diff.reset();
    e.observed_noise.reset();
    e.reason = run.first_divergence
                   ? fmt::format("first divergence at step {} (flip gap {} in log-probs); {}: "
                                 "rounding or real cannot be told from it",
                                 run.first_divergence->step, Num(run.first_divergence->flip_gap), why)
                   : fmt::format("no token flipped in {} same-context step(s), max KL {}; {}: "
                                 "rounding or real cannot be told from it",
                                 run.metrics.same_context_steps, Num(run.metrics.max_kl), why);
    run.verdict_kind = "undetermined";
    if (run.first_divergence) {
      run.first_divergence->kind = "undetermined";
      run.first_divergence->noise = kNaN;
      run.first_divergence->evidence = e;
    }
  }
  run.pass = CheckGates(run, run.thresholds).empty();
}

}  // namespace

SideSteps ReplaySide(const io::Trace& trace, const io::TracePrompt& prompt, int64_t max_steps) {
  SideSteps s;
  const int64_t steps = std::min<int64_t>(max_steps, static_cast<int64_t>(prompt.tokens.size()));
  const bool forced = trace.mode == "teacher_forced";
  if (trace.full_logits) {
    for (int64_t t = 0; t < steps; ++t) {
      s.logits.push_back(prompt.logits[t].contiguous());
      s.tokens.push_back(forced ? decode::GreedyArgmax(s.logits.back()) : prompt.tokens[t]);
    }
  } else {
    s.topk_ids = prompt.topk_ids.slice(0, 0, steps).contiguous();
    s.topk_logprobs = prompt.topk_logprobs.slice(0, 0, steps).contiguous();
    for (int64_t t = 0; t < steps; ++t) {
      s.tokens.push_back(forced ? s.topk_ids[t][0].item<int64_t>() : prompt.tokens[t]);
    }
  }
  return s;
}

RunOutcome MeasureTopkPair(const SideSteps& a, const SideSteps& b, int64_t depth,
                           const RunRequest& request, const TextDecoder& text) {
  auto start = std::chrono::steady_clock::now();
  RunOutcome outcome = StartOutcome(request, depth);
  Run& run = outcome.run;
  run.tokens_a = a.tokens;
  run.tokens_b = b.tokens;
  const bool forced = request.greedy.mode == decode::GreedyMode::kTeacherForced;
  const size_t compared = std::min(a.tokens.size(), b.tokens.size());
  std::vector<int64_t> context;
  std::optional<StepView> div_a, div_b;
  bool same = true;
  for (size_t step = 0; step < compared; ++step) {
    StepView va = View(a, step), vb = View(b, step);
    StepRecord r = CompareTopkStep(va, vb, request.top_k);
    r.run = request.id;
    r.step = static_cast<int64_t>(step);
    r.position = static_cast<int64_t>(request.prompt_tokens.size() + step);
    r.same_context = forced || same;
    if (!r.top1_agree && !run.first_divergence) {
      run.first_divergence = MakeFirstDivergence(r, request.prompt_tokens, context, text);
      div_a = std::move(va);
      div_b = std::move(vb);
    }
    if (r.token_a != r.token_b) same = false;
    context.push_back(forced && !request.greedy.teacher_is_a ? r.token_b : r.token_a);
    outcome.steps.push_back(std::move(r));
  }
  // Aggregates: SummarizeSteps over copies whose unavailable figures are zero, then null them.
  std::vector<StepRecord> zeroed = outcome.steps;
  for (StepRecord& s : zeroed) s.max_abs_diff = s.rms_diff = s.kl = s.kl_reverse = s.js = 0;
  RunMetrics& m = run.metrics = SummarizeSteps(zeroed);
  m.max_abs_logit_diff = m.rms_logit_diff_mean = m.max_kl = m.mean_kl = m.p50_kl = m.p90_kl =
      m.p99_kl = m.mean_js = kNaN;
  m.max_nmse.reset();
  m.min_cosine.reset();
  if (m.after_split.steps > 0) m.after_split.mean_kl = m.after_split.max_kl = kNaN;
  for (const StepRecord& s : outcome.steps) {
    if (s.same_context && s.logprob_max_abs_diff) {
      m.max_logprob_diff = MaxPropagatingNan(m.max_logprob_diff.value_or(0), *s.logprob_max_abs_diff);
    }
  }
  auto strip_eos = [&](std::vector<int64_t> ids) {
    const auto& eos = request.greedy.eos_ids;
    ids.erase(std::remove_if(ids.begin(), ids.end(), [&](int64_t id) {
                return std::find(eos.begin(), eos.end(), id) != eos.end();
              }), ids.end());
    return ids;
  };
  run.text_a = text.decode(strip_eos(a.tokens));
  run.text_b = text.decode(strip_eos(b.tokens));
  ClassifyTopk(outcome, div_a ? &*div_a : nullptr, div_b ? &*div_b : nullptr, request);
  run.unavailable_metrics = TopkUnavailable(a, b, request.top_k);
  run.pass = CheckGates(run, request.thresholds).empty();
  run.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return outcome;
}

void CheckRecordedPair(const RecordedPairInputs& in, const std::vector<RunRequest>& requests) {
  if (requests.empty()) return;
  const decode::GreedyOptions& greedy = requests.front().greedy;
  const bool forced = greedy.mode == decode::GreedyMode::kTeacherForced;
  for (const bool a_side : {true, false}) {
    const RecordedSide* side = a_side ? in.a : in.b;
    if (!side) continue;
    const char* name = a_side ? "a" : "b";
    if (forced && greedy.teacher_is_a != a_side && !(in.a && in.b)) {
      throw InputError(fmt::format(
          "{} (side {}) is recorded: in teacher-forced mode it must be the teacher (its stream is "
          "fixed; the model reads it); set teacher to \"{}\"", side->path(), name, name));
    }
    if (!forced && side->teacher_forced()) {
      throw InputError(fmt::format(
          "{} (side {}) is a teacher-forced recording (its tokens were given to it, not chosen): "
          "compare it in teacher_forced mode (--mode teacher_forced)", side->path(), name));
    }
    for (const RunRequest& r : requests) {
      if (side->Find(r.prompt_tokens)) continue;
      std::string ids;
      for (int64_t id : r.prompt_tokens) ids += (ids.empty() ? "" : ",") + std::to_string(id);
      throw InputError(fmt::format(
          "{} (side {}) holds no prompt with the token ids of prompt {} ({}); a recorded side "
          "replays only the prompts it recorded (give them as --prompt-tokens, or omit the prompts "
          "to use the recording's)", side->path(), name, r.prompt_index, ids));
    }
  }
  if (forced && in.a && in.b) {
    const RecordedSide& follower = greedy.teacher_is_a ? *in.b : *in.a;
    if (!follower.teacher_forced()) {
      throw InputError(fmt::format("{}: both sides are recorded and teacher-forced mode needs the "
                                   "follower to be a teacher-forced recording", follower.path()));
    }
  }
}

std::vector<RunOutcome> RunRecordedPair(const RecordedPairInputs& in,
                                        const std::vector<RunRequest>& requests_in,
                                        const TextDecoder& text) {
  CheckRecordedPair(in, requests_in);
  std::vector<RunOutcome> outcomes;
  if (requests_in.empty()) return outcomes;
  // Precisions: a recorded side's from its trace, else the other side's (said in the evidence).
  std::vector<RunRequest> requests = requests_in;
  std::string precision_note;
  for (RunRequest& r : requests) {
    for (const bool a_side : {true, false}) {
      const RecordedSide* side = a_side ? in.a : in.b;
      if (!side) continue;
      forward::Precision& precision = a_side ? r.precision_a : r.precision_b;
      const forward::Precision other = a_side ? r.precision_b : r.precision_a;
      if (auto p = side->precision()) {
        precision = *p;
      } else {
        precision = other;
        precision_note = fmt::format("; side {}'s precision is not recorded ('{}'), taken as {}",
                                     a_side ? "A" : "B", side->trace().producer.dtype,
                                     forward::PrecisionName(other));
      }
    }
  }
  const decode::GreedyOptions& greedy = requests.front().greedy;
  const bool forced = greedy.mode == decode::GreedyMode::kTeacherForced;
  const RecordedSide* teacher = forced ? (greedy.teacher_is_a ? in.a : in.b) : nullptr;

  // Every side of every prompt: recorded ones replayed, the model side decoded alone.
  std::vector<SideSteps> sides_a(requests.size()), sides_b(requests.size());
  for (const bool a_side : {true, false}) {
    const RecordedSide* side = a_side ? in.a : in.b;
    std::vector<SideSteps>& out = a_side ? sides_a : sides_b;
    if (side) {
      for (size_t r = 0; r < requests.size(); ++r) {
        out[r] = ReplaySide(side->trace(), *side->Find(requests[r].prompt_tokens),
                            requests[r].greedy.max_new_tokens);
      }
      continue;
    }
    forward::CausalLM& model = in.model(a_side);
    const RecordedSide* other = a_side ? in.b : in.a;
    for (size_t r = 0; r < requests.size(); ++r) {
      at::manual_seed(in.seed);
      const io::TracePrompt& recorded = *other->Find(requests[r].prompt_tokens);
      decode::SideRun run;
      if (forced) {
        // The model reads the teacher's recorded stream (as many steps as compared).
        decode::SideRun stream;
        const int64_t steps = std::min<int64_t>(requests[r].greedy.max_new_tokens,
                                                static_cast<int64_t>(recorded.tokens.size()));
        stream.tokens.assign(recorded.tokens.begin(), recorded.tokens.begin() + steps);
        run = decode::FollowAlone(model, requests[r].prompt_tokens, stream);
      } else {
        decode::GreedyOptions options = requests[r].greedy;
        options.max_new_tokens = std::min<int64_t>(options.max_new_tokens,
                                                   static_cast<int64_t>(recorded.tokens.size()));
        run = decode::DecodeAlone(model, requests[r].prompt_tokens, options);
      }
      out[r].tokens = std::move(run.tokens);
      out[r].logits = std::move(run.logits);
    }
  }
  (void)teacher;

  for (size_t r = 0; r < requests.size(); ++r) {
    const SideSteps& a = sides_a[r];
    const SideSteps& b = sides_b[r];
    RunOutcome outcome = a.topk() || b.topk()
                             ? MeasureTopkPair(a, b, in.depth, requests[r], text)
                             : RunDecodedPair(AsSideRun(a), AsSideRun(b), in.depth, requests[r], text);
    for (const bool a_side : {true, false}) {
      const RecordedSide* side = a_side ? in.a : in.b;
      if (side && side->format() == "llama.cpp-kld-base" && !(a.topk() || b.topk())) {
        MarkLogProbSide(outcome, a_side ? "A" : "B");
      }
    }
    std::string recorded;
    for (const bool a_side : {true, false}) {
      const RecordedSide* side = a_side ? in.a : in.b;
      if (side) recorded += fmt::format("{}side {} is a recording ({})", recorded.empty() ? "" : "; ",
                                        a_side ? "A" : "B", side->Describe());
    }
    NoteRecordedEvidence(
        outcome.run,
        fmt::format("{}: no FP64 oracle and no second precision for it; the evidence is this run's "
                    "own noise and the precisions' rounding budgets{}{}",
                    recorded, precision_note,
                    in.depth == 0 ? "; depth unknown (both sides recorded), taken as 1" : ""));
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

}  // namespace parity::compare
