// Run outputs (summary.json + steps.jsonl content) built in memory for the report, drift, store and
// merge tests, through run_result.h's structs, so a schema change breaks these tests at compile time
// or in the round trip through the serializers. Metrics and pair aggregates are computed here with
// plain loops from the synthetic steps (independently of the report layer's own SummarizePair).
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "harness/compare/run_result.h"

namespace parity::testing {

// Token texts of the synthetic vocabulary: ordinary words, markup that must be escaped, newlines,
// quotes, non-ASCII.
inline const std::vector<std::string>& FixtureVocab() {
  static const std::vector<std::string> vocab = {
      " the", " model", " is", "<b>", " &", " \"quoted\"", "'s", "\n", " caf\u00e9", " \u2192",
      " ok", ".", " <script>alert(1)</script>", "\t", " end", " x"};
  return vocab;
}

struct FixtureOptions {
  std::string case_name = "tiny";
  int64_t num_prompts = 3;
  int64_t steps = 12;
  // Divergence per (prompt, pair index): step and kind; pair 0 is fp32 (never diverges by
  // default), pair 1 fp16.
  std::map<std::pair<int64_t, int>, std::pair<int64_t, std::string>> divergences = {
      {{1, 1}, {5, "rounding"}}, {{2, 1}, {8, "real"}}};
  double kl_scale_fp32 = 1e-12;
  double kl_scale_fp16 = 1e-5;
  double kl_after_divergence = 1e-2;  // free mode: contexts differ after the divergence
  std::optional<double> max_kl_gate = 1e-3;  // thresholds.max_kl; nullopt: no gate
  std::string created_utc = "2024-05-01T12:00:00Z";
};

inline double NearestRank(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  if (values.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100 * static_cast<double>(values.size())));
  return values[rank == 0 ? 0 : rank - 1];
}

inline compare::RunMetrics FixtureMetrics(const std::vector<compare::StepRecord>& steps) {
  compare::RunMetrics m;
  m.steps = static_cast<int64_t>(steps.size());
  std::vector<double> kls;
  double rms_sum = 0, js_sum = 0, topk_sum = 0;
  int64_t agree = 0;
  for (const compare::StepRecord& s : steps) {
    m.same_context_steps += s.same_context ? 1 : 0;
    m.max_abs_logit_diff = std::max(m.max_abs_logit_diff, s.max_abs_diff);
    rms_sum += s.rms_diff;
    js_sum += s.js;
    topk_sum += s.topk_overlap;
    kls.push_back(s.kl);
    agree += s.top1_agree ? 1 : 0;
    if (!s.top1_agree && !m.first_divergence_step) m.first_divergence_step = s.step;
    if (s.nmse) m.max_nmse = std::max(m.max_nmse.value_or(0), *s.nmse);
    if (s.cosine) m.min_cosine = std::min(m.min_cosine.value_or(1), *s.cosine);
  }
  if (steps.empty()) return m;
  double n = static_cast<double>(steps.size());
  m.rms_logit_diff_mean = rms_sum / n;
  m.mean_js = js_sum / n;
  m.topk_overlap_mean = topk_sum / n;
  m.top1_agreement = static_cast<double>(agree) / n;
  double kl_sum = 0;
  for (double kl : kls) {
    kl_sum += kl;
    m.max_kl = std::max(m.max_kl, kl);
  }
  m.mean_kl = kl_sum / n;
  m.p50_kl = NearestRank(kls, 50);
  m.p90_kl = NearestRank(kls, 90);
  m.p99_kl = NearestRank(kls, 99);
  return m;
}

// A pair's aggregate as reports/SCHEMA.md defines it.
inline void FixturePairAggregate(compare::PairSummary* pair,
                                 const std::vector<const compare::Run*>& runs,
                                 const std::vector<compare::StepRecord>& steps,
                                 int64_t max_new_tokens) {
  double sum = 0;
  int64_t count = 0, agree = 0;
  pair->max_kl = 0;
  for (const compare::Run* run : runs) {
    double run_sum = 0;  // per run first, then over runs (the summation order of the schema's writer)
    for (const compare::StepRecord& s : steps) {
      if (s.run != run->id || !s.same_context) continue;  // like the comparison: same context
      run_sum += s.kl;
      pair->max_kl = std::max(pair->max_kl, s.kl);
      agree += s.top1_agree ? 1 : 0;
      ++count;
    }
    sum += run_sum;
  }
  pair->mean_kl = count ? sum / static_cast<double>(count) : 0;
  pair->top1_agreement = count ? static_cast<double>(agree) / static_cast<double>(count) : 1;
  pair->identical_fraction.clear();
  for (int64_t t = 0; t < max_new_tokens; ++t) {
    double identical = 0;
    for (const compare::Run* run : runs) {
      if (!run->first_divergence || run->first_divergence->step > t) identical += 1;
    }
    pair->identical_fraction.push_back(runs.empty() ? 1.0 : identical / runs.size());
  }
  pair->pass = true;
  for (const compare::Run* run : runs) pair->pass = pair->pass && run->pass;
}

inline std::string Decode(const std::vector<int64_t>& ids) {
  std::string text;
  for (int64_t id : ids) text += FixtureVocab()[static_cast<size_t>(id)];
  return text;
}

// The run of the given prompts (a shard's slice). Runs are ordered by pair, then prompt.
inline compare::RunOutputs MakeRunOutputsForPrompts(const FixtureOptions& o,
                                                    const std::vector<int64_t>& prompts) {
  compare::RunOutputs out;
  compare::Summary& s = out.summary;
  s.parity_version = "0.1.0";
  s.libtorch_version = "1.13.1";
  s.created_utc = o.created_utc;
  s.case_ref = {o.case_name, "cases/" + o.case_name + ".json"};
  s.settings.max_new_tokens = o.steps;
  s.settings.num_threads = 2;
  s.models["original"] = {"fixtures/internlm2-tiny", "internlm2", std::nullopt,
                          "fused_qkv, eager", {{"vocab_size", 16}, {"num_layers", 2}}};
  s.models["converted"] = {"out/models/converted", "llama", std::string("original"),
                           "split_qkv, eager", {{"vocab_size", 16}, {"num_layers", 2}}};
  s.thresholds.max_kl = o.max_kl_gate;
  const int64_t vocab = static_cast<int64_t>(FixtureVocab().size());

  std::vector<std::pair<std::string, std::string>> precisions = {{"fp32", "fp32"},
                                                                 {"fp16", "fp16 (emulated on cpu)"}};
  for (int pair_index = 0; pair_index < 2; ++pair_index) {
    const auto& [precision, numerics] = precisions[static_cast<size_t>(pair_index)];
    compare::Pair pair{{"original", precision, numerics, pair_index == 1},
                       {"converted", precision, numerics, pair_index == 1}};
    compare::PairSummary summary_pair;
    summary_pair.id = "original@" + precision + "/converted@" + precision;
    summary_pair.pair = pair;
    double kl_scale = pair_index == 0 ? o.kl_scale_fp32 : o.kl_scale_fp16;
    for (int64_t p : prompts) {
      compare::Run run;
      run.id = fmt::format("p{}/{}", p, summary_pair.id);
      run.prompt_index = p;
      run.prompt = p == 0 ? std::optional<std::string>("who are you <&>?") : std::nullopt;
      run.prompt_tokens = {1, 2 + p, 3};
      run.pair = pair;
      run.thresholds = s.thresholds;
      auto divergence = o.divergences.find({p, pair_index});
      for (int64_t t = 0; t < o.steps; ++t) {
        int64_t id = (p * 5 + t * 3) % vocab;
        if (divergence != o.divergences.end() && t == divergence->second.first - 1) id = 7;  // "\n"
        run.tokens_a.push_back(id);
        bool after = divergence != o.divergences.end() && t >= divergence->second.first;
        run.tokens_b.push_back(after ? (id + 1 + t) % vocab : id);
        if (after && run.tokens_b.back() == id) run.tokens_b.back() = (id + 2) % vocab;
      }
      run.text_a = Decode(run.tokens_a);
      run.text_b = Decode(run.tokens_b);
      std::vector<compare::StepRecord> steps;
      for (int64_t t = 0; t < o.steps; ++t) {
        compare::StepRecord r;
        r.run = run.id;
        r.step = t;
        r.position = 3 + t;
        r.token_a = run.tokens_a[static_cast<size_t>(t)];
        r.token_b = run.tokens_b[static_cast<size_t>(t)];
        r.top1_agree = r.token_a == r.token_b;
        bool diverged_before = divergence != o.divergences.end() && t > divergence->second.first;
        r.same_context = !diverged_before;
        r.kl = diverged_before ? o.kl_after_divergence : kl_scale * (1 + static_cast<double>(t % 4));
        r.kl_reverse = r.kl * 1.1;
        r.js = r.kl / 4;
        r.max_abs_diff = std::sqrt(r.kl) * 3;
        r.rms_diff = std::sqrt(r.kl);
        r.nmse = r.kl / 10;
        r.cosine = 1 - r.kl;
        r.topk_overlap = r.top1_agree ? 1.0 : 0.8;
        r.rank_b_in_a = r.top1_agree ? 0 : 1;
        r.rank_a_in_b = r.rank_b_in_a;
        r.margin_a = 0.5 + 0.1 * static_cast<double>(t);
        r.margin_b = r.margin_a * 0.98;
        r.noise = 1e-3;
        if (!r.top1_agree && !diverged_before) {
          bool near = divergence->second.second == "rounding";
          r.margin_a = near ? 4e-4 : 0.3;
          r.margin_b = near ? 3e-4 : 0.25;
        }
        if (pair_index == 0) {
          r.err_a_fp64 = 1e-6 * (1 + static_cast<double>(t));
          r.err_b_fp64 = 1.2e-6 * (1 + static_cast<double>(t));
        }
        steps.push_back(r);
      }
      if (divergence != o.divergences.end()) {
        int64_t step = divergence->second.first;
        compare::FirstDivergence fd;
        fd.step = step;
        fd.position = 3 + step;
        fd.token_a = run.tokens_a[static_cast<size_t>(step)];
        fd.token_b = run.tokens_b[static_cast<size_t>(step)];
        fd.text_a = FixtureVocab()[static_cast<size_t>(fd.token_a)];
        fd.text_b = FixtureVocab()[static_cast<size_t>(fd.token_b)];
        fd.context = Decode({run.tokens_a.begin(), run.tokens_a.begin() + step});
        fd.margin_a = steps[static_cast<size_t>(step)].margin_a;
        fd.margin_b = steps[static_cast<size_t>(step)].margin_b;
        fd.noise = 1e-3;
        fd.kind = divergence->second.second;
        fd.flip_gap = fd.kind == "rounding" ? 7e-4 : 0.55;
        fd.evidence.source = "observed_noise";
        fd.evidence.reason = fd.kind == "rounding" ? "within the observed noise" : "beyond rounding";
        fd.tolerance = 3.9e-3;
        fd.after_newline = true;
        run.first_divergence = fd;
      }
      run.metrics = FixtureMetrics(steps);
      if (pair_index == 0) {
        run.oracle = compare::OracleResult{"original", 1e-6, 1.2e-6, o.steps, 1e-6, 1.3e-6, 0,
                                           2, true, "b within 2x of a"};
      }
      run.elapsed_s = 0.25;
      if (s.thresholds.max_kl && run.metrics.max_kl > *s.thresholds.max_kl) {
        run.pass = false;
        s.verdict.failures.push_back(
            {run.id, "max_kl", run.metrics.max_kl, *s.thresholds.max_kl,
             fmt::format("{}: max_kl {} > {}", run.id, run.metrics.max_kl, *s.thresholds.max_kl)});
      }
      summary_pair.runs.push_back(run.id);
      s.runs.push_back(std::move(run));
      out.steps.insert(out.steps.end(), steps.begin(), steps.end());
    }
    s.pairs.push_back(summary_pair);
  }
  for (compare::PairSummary& pair : s.pairs) {
    std::vector<const compare::Run*> runs;
    for (const compare::Run& run : s.runs) {
      if (std::find(pair.runs.begin(), pair.runs.end(), run.id) != pair.runs.end()) {
        runs.push_back(&run);
      }
    }
    FixturePairAggregate(&pair, runs, out.steps, o.steps);
  }
  s.verdict.pass = s.verdict.failures.empty();
  return out;
}

// The whole run: every prompt of the options.
inline compare::RunOutputs MakeRunOutputs(const FixtureOptions& o) {
  std::vector<int64_t> prompts;
  for (int64_t p = 0; p < o.num_prompts; ++p) prompts.push_back(p);
  return MakeRunOutputsForPrompts(o, prompts);
}

// A run's summary as JSON without what differs between two runs of the same work: the creation
// time, the run id, the wall times and the placement plans (each shard plans for the memory free
// then and its own prompts' length).
inline nlohmann::json WithoutWallTimes(compare::Summary summary) {
  for (compare::Run& run : summary.runs) run.elapsed_s = 0;
  nlohmann::json json = compare::ToJson(summary);
  json.erase("created_utc");
  json.erase("run_id");
  json.erase("placements");
  return json;
}

}  // namespace parity::testing
