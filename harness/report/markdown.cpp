#include "harness/report/markdown.h"

#include <algorithm>

#include <fmt/format.h>

#include "harness/report/run_view.h"
#include "harness/report/text_util.h"

namespace parity::report {
namespace {

constexpr size_t kContextChars = 80;  // context characters quoted before a divergence

std::string PairTable(const compare::Summary& summary) {
  std::string out =
      "| pair | verdict | runs passing | earliest divergence | rounding / real / other | mean KL "
      "| max KL "
      "| same top-1 |\n|---|---|---|---|---|---|---|---|\n";
  for (const compare::PairSummary& pair : summary.pairs) {
    auto runs = RunsOfPair(summary, pair);
    int passing = 0;
    std::optional<int64_t> earliest;
    for (const compare::Run* run : runs) {
      passing += run->pass ? 1 : 0;
      if (!run->first_divergence) continue;
      earliest = std::min(earliest.value_or(run->first_divergence->step),
                          run->first_divergence->step);
    }
    out += fmt::format("| {} | {} | {}/{} | {} | {} | {} | {} | {} |\n",
                       MarkdownEscape(pair.id), pair.pass ? "PASS" : "**FAIL**", passing,
                       runs.size(), earliest ? std::to_string(*earliest) : "none", KindCounts(runs),
                       FormatNumber(pair.mean_kl), FormatNumber(pair.max_kl),
                       FormatPercent(pair.top1_agreement));
  }
  return out;
}

// Metrics the run could not compute (a top-k trace side), with the reasons.
std::string UnavailableLines(const compare::Run& run) {
  std::string out;
  for (const compare::UnavailableMetric& u : run.unavailable_metrics) {
    out += fmt::format("  unavailable: `{}`: {}\n", u.metric, MarkdownEscape(u.reason));
  }
  return out;
}

std::string RunLineWithoutNotes(const compare::Run& run) {
  std::string out = fmt::format("- `{}` {}: ", run.id, run.pass ? "pass" : "**FAIL**");
  if (!run.first_divergence) {
    out += fmt::format("identical for all {} compared steps; max KL {}, max |Δlogit| {}\n",
                       run.metrics.steps, FormatNumber(run.metrics.max_kl),
                       FormatNumber(run.metrics.max_abs_logit_diff));
    if (run.verdict_kind && *run.verdict_kind != "rounding") {
      out += fmt::format("  verdict: **{}** ({}): {}\n", *run.verdict_kind,
                         run.verdict_evidence.source, MarkdownEscape(run.verdict_evidence.reason));
    }
    return out;
  }
  const compare::FirstDivergence& fd = *run.first_divergence;
  const std::string words = KindWords(fd.kind);
  out += fmt::format(
      "{} at step {}{}: A {} vs B {} (flip gap {}, tolerance {}, margins {} / {}, noise {}); "
      "max KL {}\n",
      fd.kind == "rounding" ? words : "**" + words + "**", fd.step,
      fd.after_newline ? " (after a newline)" : "", MarkdownCode(fd.text_a),
      MarkdownCode(fd.text_b), FormatNumber(fd.flip_gap), FormatNumber(fd.tolerance),
      FormatNumber(fd.margin_a), FormatNumber(fd.margin_b), FormatNumber(fd.noise),
      FormatNumber(run.metrics.max_kl));
  out += fmt::format("  verdict ({}): {}\n", fd.evidence.source, MarkdownEscape(fd.evidence.reason));
  out += "  context: " + MarkdownCode(TailUtf8(fd.context, kContextChars)) + "\n";
  return out;
}

// The range watch of each side, when it ran.
std::string RangeLines(const compare::Run& run) {
  std::string out;
  for (const std::string& line : RangeWatchLines(run)) {
    out += "  range watch: " + MarkdownEscape(line) + "\n";
  }
  return out;
}

std::string RunLine(const compare::Run& run) {
  return RunLineWithoutNotes(run) + RangeLines(run) + UnavailableLines(run);
}

}  // namespace

std::string RenderMarkdown(const compare::RunOutputs& outputs,
                           const std::optional<LocalizeView>& localize,
                           const std::optional<DiagnosisView>& diagnosis) {
  const compare::Summary& summary = outputs.summary;
  const compare::Settings& s = summary.settings;
  std::string out = fmt::format("# Parity: {} \u2014 {}\n\n", MarkdownEscape(summary.case_ref.name),
                                summary.verdict.pass ? "PASS" : "FAIL");
  int runs_passing = 0;
  for (const compare::Run& run : summary.runs) runs_passing += run.pass ? 1 : 0;
  out += fmt::format("{} of {} runs pass. Mode {}, device {}, {} new tokens, seed {}.\n\n",
                     runs_passing, summary.runs.size(), s.mode, MarkdownEscape(s.device),
                     s.max_new_tokens, s.seed);
  out += PairTable(summary) + "\n";

  std::vector<std::string> gates = GatesInWords(summary.thresholds);
  std::string gate_text;
  for (const std::string& gate : gates) gate_text += (gate_text.empty() ? "" : ", ") + gate;
  out += "Gates: " + (gates.empty() ? std::string("none") : MarkdownEscape(gate_text)) +
         " (a pair may override them; report.html lists each run's).\n\n";
  if (!summary.verdict.failures.empty()) {
    out += "## Failed gates\n\n";
    for (const compare::Failure& failure : summary.verdict.failures) {
      out += "- " + MarkdownEscape(failure.message) + "\n";
    }
    out += "\n";
  }
  out += "## Runs\n\n";
  for (const compare::Run& run : summary.runs) out += RunLine(run);
  out += "\n";

  if (localize) {
    out += "## Localization\n\n";
    if (!localize->covers.empty()) {
      out += "Covers " + MarkdownEscape(localize->covers) + " (`parity localize`, run " +
             MarkdownEscape(localize->run_id) + ").\n\n";
    }
    for (const std::string& problem : localize->problems) {
      out += "- note: " + MarkdownEscape(problem) + "\n";
    }
    if (!localize->headline.empty()) out += MarkdownEscape(localize->headline) + "\n\n";
    if (localize->first_departure) {
      out += "First departure: " + MarkdownCode(localize->first_departure->dump()) + "\n";
    }
    out += fmt::format("{} observation points (chart in report.html).\n\n",
                       localize->points.size());
  }
  if (diagnosis) out += DiagnosisMarkdown(*diagnosis);

  out += "## Settings\n\n";
  out += fmt::format("- case: {}{}\n", MarkdownEscape(summary.case_ref.name),
                     summary.case_ref.path ? " (" + MarkdownCode(*summary.case_ref.path) + ")" : "");
  for (const compare::PairSummary& pair : summary.pairs) {
    // numerics already says "(emulated on cpu)" for an emulated side.
    out += fmt::format("- {}: A {}, B {}\n", MarkdownEscape(pair.id),
                       MarkdownEscape(pair.pair.a.numerics), MarkdownEscape(pair.pair.b.numerics));
  }
  for (const auto& [label, model] : summary.models) {
    out += fmt::format("- model {}: {} {}{}\n", MarkdownEscape(label), model.architecture,
                       MarkdownCode(model.path),
                       model.convert_from ? ", converted from " + MarkdownEscape(*model.convert_from)
                                          : "");
  }
  out += fmt::format(
      "- top-k {}, near-tie tolerance {} ULPs, FP64 oracle {}, deterministic algorithms {}, "
      "{} thread{}\n",
      s.top_k, FormatNumber(s.near_tie_ulps), s.oracle ? "on" : "off",
      s.deterministic_algorithms ? "on" : "off", s.num_threads, s.num_threads == 1 ? "" : "s");
  out += fmt::format("- Parity {}, libtorch {}, finished {}, run {}{}\n", summary.parity_version,
                     summary.libtorch_version, summary.created_utc,
                     summary.run_id.empty() ? "?" : summary.run_id,
                     summary.interrupted ? " (INTERRUPTED: only the finished runs are here)" : "");
  return out;
}

}  // namespace parity::report
