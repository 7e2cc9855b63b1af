#include "harness/report/html_parts.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "harness/report/report_charts.h"
#include "harness/report/run_view.h"
#include "harness/report/text_util.h"

namespace parity::report {
namespace {

constexpr size_t kContextChars = 160;  // characters of context shown before the divergence
constexpr int64_t kIdWindow = 6;       // token ids shown on each side of the divergence

std::string Row(const std::string& key, const std::string& value_html) {
  return "<tr><th>" + HtmlEscape(key) + "</th><td>" + value_html + "</td></tr>\n";
}

std::string KindBadge(const compare::Run& run) {
  if (!run.first_divergence) return "<span class=\"badge same\">identical</span>";
  const std::string& kind = run.first_divergence->kind;
  return fmt::format("<span class=\"badge {}\">{} at step {}</span>", HtmlEscape(kind),
                     KindWords(kind), run.first_divergence->step);
}

std::string StreamHtml(const StreamSplit& split) {
  std::string out = "<span class=\"prefix\">" + VisibleHtml(split.prefix) + "</span>";
  if (!split.diverged) return out;
  if (split.located) {
    out += "<mark class=\"div\">" + VisibleHtml(split.token) + "</mark>";
  } else {
    out += "<mark class=\"div missing\" title=\"the diverging token's text could not be located "
           "in the decoded stream\">\u25B8</mark>";
  }
  out += "<span class=\"rest\">" + VisibleHtml(split.rest) + "</span>";
  return out;
}

std::string DivergenceBlock(const compare::Run& run) {
  if (!run.first_divergence) {
    return fmt::format(
        "<p>No divergence: both models chose the same token at all {} compared steps.</p>\n",
        run.metrics.steps);
  }
  const compare::FirstDivergence& fd = *run.first_divergence;
  std::string out = fmt::format(
      "<h4>First divergence at step {} (sequence position {}){}</h4>\n", fd.step, fd.position,
      fd.after_newline ? ", right after a newline" : "");
  out += "<pre class=\"stream ctx\"><span class=\"prefix\">" +
         VisibleHtml(TailUtf8(fd.context, kContextChars)) + "</span><span class=\"fork\">[A: " +
         "<mark class=\"div\">" + VisibleHtml(fd.text_a) + "</mark> | B: <mark class=\"div\">" +
         VisibleHtml(fd.text_b) + "</mark>]</span></pre>\n";
  out += fmt::format(
      "<table><tr><th></th><th>token</th><th>id</th><th>top-1 margin</th></tr>\n"
      "<tr><th>A chose</th><td><code class=\"tok\">{}</code></td><td class=\"num\">{}</td>"
      "<td class=\"num\">{}</td></tr>\n<tr><th>B chose</th><td><code class=\"tok\">{}</code></td>"
      "<td class=\"num\">{}</td><td class=\"num\">{}</td></tr></table>\n",
      VisibleHtml(fd.text_a), fd.token_a, FormatNumber(fd.margin_a), VisibleHtml(fd.text_b),
      fd.token_b, FormatNumber(fd.margin_b));
  std::string words = KindWords(fd.kind);
  words[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(words[0])));
  out += fmt::format(
      "<p><b>{}</b> (evidence: {}): {}. The preference between the two tokens moved by {} (flip "
      "gap; ULP-rule tolerance {}); noise at these tokens {}.</p>\n",
      words, HtmlEscape(fd.evidence.source), HtmlEscape(fd.evidence.reason),
      FormatNumber(fd.flip_gap), FormatNumber(fd.tolerance),
      FormatNumber(fd.noise));
  return out;
}

std::string TokenIdWindow(const compare::Run& run) {
  if (!run.first_divergence) return "";
  int64_t center = run.first_divergence->step;
  int64_t length = static_cast<int64_t>(std::max(run.tokens_a.size(), run.tokens_b.size()));
  int64_t begin = std::max<int64_t>(0, center - kIdWindow);
  int64_t end = std::min<int64_t>(length, center + kIdWindow + 1);
  if (begin >= end) return "";
  auto id_at = [](const std::vector<int64_t>& ids, int64_t i) {
    return i < static_cast<int64_t>(ids.size()) ? std::to_string(ids[i]) : std::string("");
  };
  std::string steps = "<tr><th>step</th>", a = "<tr><th>A id</th>", b = "<tr><th>B id</th>";
  for (int64_t i = begin; i < end; ++i) {
    std::string ia = id_at(run.tokens_a, i), ib = id_at(run.tokens_b, i);
    std::string cls = ia != ib ? "num diff" : "num";
    steps += fmt::format("<th>{}{}</th>", i, i == center ? " \u25BC" : "");
    a += fmt::format("<td class=\"{}\">{}</td>", cls, ia);
    b += fmt::format("<td class=\"{}\">{}</td>", cls, ib);
  }
  return "<table class=\"ids\">" + steps + "</tr>\n" + a + "</tr>\n" + b + "</tr></table>\n";
}

std::string MetricsTable(const compare::RunMetrics& m) {
  std::string out = "<table class=\"metrics\">\n";
  out += Row("compared steps", fmt::format("{} ({} with the same context)", m.steps,
                                           m.same_context_steps));
  out += Row("KL max / mean", FormatNumber(m.max_kl) + " / " + FormatNumber(m.mean_kl));
  out += Row("KL p50 / p90 / p99", FormatNumber(m.p50_kl) + " / " + FormatNumber(m.p90_kl) +
                                       " / " + FormatNumber(m.p99_kl));
  out += Row("mean JS", FormatNumber(m.mean_js));
  out += Row("max |\u0394logit|", FormatNumber(m.max_abs_logit_diff));
  out += Row("mean RMS \u0394logit", FormatNumber(m.rms_logit_diff_mean));
  out += Row("max NMSE", FormatNumber(m.max_nmse));
  out += Row("min cosine", m.min_cosine ? fmt::format("{:.9f}", *m.min_cosine) : "\u2014");
  out += Row("same top-1", FormatPercent(m.top1_agreement));
  out += Row("top-k overlap (mean)", FormatPercent(m.topk_overlap_mean));
  out += Row("first divergence step",
             m.first_divergence_step ? std::to_string(*m.first_divergence_step) : "none");
  out += "</table>\n";
  return out;
}

std::string OracleTable(const compare::OracleResult& o) {
  std::string out = "<h4>FP64 oracle</h4><table>\n";
  out += Row("reference model", HtmlEscape(o.reference_model));
  out += Row("A error vs its FP64 run", FormatNumber(o.a_rms_error_vs_fp64));
  out += Row("B error vs its FP64 run", FormatNumber(o.b_rms_error_vs_fp64));
  out += Row("A error vs reference (comparable steps)", FormatNumber(o.a_rms_error_vs_reference));
  out += Row("B error vs reference (comparable steps)", FormatNumber(o.b_rms_error_vs_reference));
  out += Row("FP64 models RMS difference", FormatNumber(o.fp64_models_rms_diff));
  out += Row("comparable steps", std::to_string(o.comparable_steps));
  out += Row("acceptable", o.acceptable ? (*o.acceptable ? "yes" : "<b>no</b>") : "not applicable");
  out += Row("rule", HtmlEscape(o.rule));
  out += "</table>\n";
  return out;
}

// The range watch: each side in words, then every observed point's largest |x| as a fraction of
// its precision's largest finite value (collapsed).
std::string RangeWatchBlock(const compare::Run& run) {
  if (!run.range_a && !run.range_b) return "";
  std::string out = "<h4>Range watch (overflow and saturation)</h4><ul>";
  for (const std::string& line : RangeWatchLines(run)) out += "<li>" + HtmlEscape(line) + "</li>";
  out += "</ul>\n<details><summary>Largest |x| per observed point</summary><table><tr>"
         "<th>point</th><th>A precision</th><th>A max |x|</th><th>A of range</th>"
         "<th>B precision</th><th>B max |x|</th><th>B of range</th></tr>\n";
  const compare::RangeWatch empty;
  const compare::RangeWatch& a = run.range_a ? *run.range_a : empty;
  const compare::RangeWatch& b = run.range_b ? *run.range_b : empty;
  auto cells = [](const compare::RangeWatch& w, size_t i) -> std::string {
    if (i >= w.points.size()) return "<td></td><td></td><td></td>";
    const compare::RangePoint& p = w.points[i];
    const std::string flag = p.out_of_range() ? " <b>out of range</b>"
                                              : (p.saturating ? " <b>saturation risk</b>" : "");
    return fmt::format("<td>{}</td><td class=\"num\">{}{}</td><td class=\"num\">{}</td>",
                       HtmlEscape(p.precision), FormatNumber(p.max_abs),
                       p.non_finite > 0 ? fmt::format(" ({} inf/NaN)", p.non_finite) : "",
                       FormatNumber(p.fraction()) + flag);
  };
  for (size_t i = 0; i < std::max(a.points.size(), b.points.size()); ++i) {
    const std::string& name = i < a.points.size() ? a.points[i].name : b.points[i].name;
    out += "<tr><td>" + HtmlEscape(name) + "</td>" + cells(a, i) + cells(b, i) + "</tr>\n";
  }
  out += "</table></details>\n";
  return out;
}

}  // namespace

std::string AnchorId(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format(".{:02x}", c);
    }
  }
  return out;
}

std::string PassBadge(bool pass) {
  return pass ? "<span class=\"badge pass\">PASS</span>" : "<span class=\"badge fail\">FAIL</span>";
}

std::string RunSection(const compare::RunOutputs& outputs, const compare::Run& run) {
  RunSteps steps = StepsOfRun(outputs.steps, run.id);
  bool open = !run.pass || run.first_divergence.has_value();
  std::string out = fmt::format(
      "<details class=\"run\" id=\"run-{}\"{}><summary>{}{}{}</summary>\n",
      HtmlEscape(AnchorId(run.id)), open ? " open" : "", HtmlEscape(run.id), PassBadge(run.pass),
      KindBadge(run));
  std::string prompt = run.prompt ? "<code>" + VisibleHtml(*run.prompt) + "</code>"
                                  : "<span class=\"note\">given as token ids</span>";
  out += fmt::format("<p>Prompt {}: {}{} \u00b7 {} prompt tokens \u00b7 {:.2f} s</p>\n",
                     run.prompt_index, prompt, run.chat ? " (ChatML template)" : "",
                     run.prompt_tokens.size(), run.elapsed_s);
  out += DivergenceBlock(run);
  out += fmt::format(
      "<div class=\"sbs\"><div><h4>A: {}</h4><pre class=\"stream\">{}</pre></div>"
      "<div><h4>B: {}</h4><pre class=\"stream\">{}</pre></div></div>\n",
      HtmlEscape(DescribeSide(run.pair.a)), StreamHtml(SplitAtDivergence(run, true)),
      HtmlEscape(DescribeSide(run.pair.b)), StreamHtml(SplitAtDivergence(run, false)));
  out += TokenIdWindow(run);
  if (!steps.empty()) {
    out += "<div class=\"charts\">" + RenderLineChart(KlChart(run, steps)) +
           RenderLineChart(LogitDiffChart(run, steps)) + RenderLineChart(MarginChart(run, steps));
    if (HasOracleSteps(steps)) out += RenderLineChart(OracleChart(run, steps));
    out += "</div>\n";
  } else {
    out += "<p class=\"note\">No compared steps in steps.jsonl for this run.</p>\n";
  }
  out += MetricsTable(run.metrics);
  if (!run.unavailable_metrics.empty()) {  // a top-k trace side: what could not be computed, why
    out += "<p class=\"note\">Unavailable metrics (\u2014 above):</p><ul>";
    for (const compare::UnavailableMetric& u : run.unavailable_metrics) {
      out += "<li><code>" + HtmlEscape(u.metric) + "</code>: " + HtmlEscape(u.reason) + "</li>";
    }
    out += "</ul>\n";
  }
  if (run.oracle) out += OracleTable(*run.oracle);
  out += RangeWatchBlock(run);
  std::vector<std::string> gates = GatesInWords(run.thresholds);
  std::string gate_text;
  for (const std::string& gate : gates) gate_text += (gate_text.empty() ? "" : "; ") + gate;
  out += "<p>Gates: " + (gates.empty() ? std::string("none") : HtmlEscape(gate_text)) + "</p>\n";
  auto failures = FailuresOfRun(outputs.summary, run.id);
  if (!failures.empty()) {
    out += "<ul class=\"failures\">";
    for (const compare::Failure* failure : failures) {
      out += "<li>" + HtmlEscape(failure->message) + "</li>";
    }
    out += "</ul>\n";
  }
  out += "</details>\n";
  return out;
}

std::string SettingsSection(const compare::Summary& summary) {
  const compare::Settings& s = summary.settings;
  std::string out = "<section id=\"settings\"><h2>Settings</h2>\n<table>\n";
  out += Row("case", HtmlEscape(summary.case_ref.name) +
                         (summary.case_ref.path ? " (" + HtmlEscape(*summary.case_ref.path) + ")"
                                                : ""));
  out += Row("mode", HtmlEscape(s.mode) +
                         (s.mode == "teacher_forced" ? " (teacher: " + HtmlEscape(s.teacher) + ")"
                                                     : ""));
  out += Row("device", HtmlEscape(s.device));
  out += Row("max new tokens", std::to_string(s.max_new_tokens));
  out += Row("seed", std::to_string(s.seed));
  out += Row("chat template by default", s.chat ? "yes" : "no");
  out += Row("top-k of overlap", std::to_string(s.top_k));
  out += Row("near-tie tolerance", FormatNumber(s.near_tie_ulps) + " ULPs");
  out += Row("FP64 oracle", s.oracle ? "yes" : "no");
  out += Row("deterministic algorithms", s.deterministic_algorithms ? "on" : "off");
  out += Row("threads", std::to_string(s.num_threads));
  out += Row("Parity version", HtmlEscape(summary.parity_version));
  out += Row("libtorch version", HtmlEscape(summary.libtorch_version));
  out += Row("finished (UTC)", HtmlEscape(summary.created_utc));
  out += Row("run", HtmlEscape(summary.run_id.empty() ? "?" : summary.run_id) +
                        (summary.interrupted ? " (INTERRUPTED: only the finished runs are here)" : ""));
  out += "</table>\n<h3>Precisions and emulation</h3><table><tr><th>pair</th><th>A</th><th>B</th>"
         "</tr>\n";
  for (const compare::PairSummary& pair : summary.pairs) {
    // numerics already says "(emulated on cpu)" for an emulated side.
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n", HtmlEscape(pair.id),
                       HtmlEscape(pair.pair.a.numerics), HtmlEscape(pair.pair.b.numerics));
  }
  out += "</table>\n<h3>Models</h3><table><tr><th>label</th><th>path</th><th>architecture</th>"
         "<th>converted from</th><th>forward variants</th><th>config</th></tr>\n";
  for (const auto& [label, model] : summary.models) {
    out += fmt::format(
        "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td>"
        "<td><code>{}</code></td></tr>\n",
        HtmlEscape(label), HtmlEscape(model.path), HtmlEscape(model.architecture),
        HtmlEscape(model.convert_from.value_or("")), HtmlEscape(model.variants),
        HtmlEscape(model.config.dump()));
  }
  out += "</table>\n</section>\n";
  return out;
}

}  // namespace parity::report
