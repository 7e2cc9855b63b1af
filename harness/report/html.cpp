#include "harness/report/html.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "harness/report/html_parts.h"
#include "harness/report/report_charts.h"
#include "harness/report/run_view.h"
#include "harness/report/text_util.h"

namespace parity::report {
namespace {

constexpr const char* kStyle = R"css(
body{font:14px/1.45 "DejaVu Sans",system-ui,sans-serif;margin:0;color:#222;background:#f6f6f6}
main{max-width:1260px;margin:0 auto;padding:0 20px 40px}
header.verdict{padding:14px 24px;color:#fff}
header.pass{background:#1e8449}header.fail{background:#b03a2e}
header h1{margin:0;font-size:26px}header p{margin:4px 0 0}
h2{margin:26px 0 8px;border-bottom:2px solid #ddd;padding-bottom:3px}
h3{margin:16px 0 6px}h4{margin:4px 0}
table{border-collapse:collapse;margin:6px 0;background:#fff}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
table{max-width:100%}td code{overflow-wrap:anywhere}
code.tok{background:#fbeed5;white-space:pre;padding:0 2px}
th{background:#efefef;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;white-space:nowrap;padding:0 8px;border-radius:9px;font-weight:600;font-size:12px;color:#fff;
margin-left:6px;vertical-align:middle}
.badge.pass{background:#1e8449}.badge.fail{background:#b03a2e}.badge.rounding{background:#b9770e}.badge.real,.badge.precision_failure{background:#b03a2e}.badge.undetermined{background:#6c3483}
.badge.real{background:#6c3483}.badge.same{background:#7f8c8d}
.sbs{display:grid;grid-template-columns:1fr 1fr;gap:12px;margin:8px 0}
pre.stream{white-space:pre-wrap;word-break:break-word;background:#fff;border:1px solid #ccc;
padding:8px;margin:0;font:13px/1.45 "DejaVu Sans Mono",monospace}
.prefix{color:#444}.rest{background:#fdf2e0}
mark.div{background:#f5b041;color:#000;outline:2px solid #b9770e;padding:0 1px}
mark.div.missing{background:#f1948a}
.ws{color:#9a9a9a}
.fork{white-space:nowrap}
.charts{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.pair-head{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
svg.chart{background:#fff;border:1px solid #e2e2e2;max-width:100%;height:auto}
svg text{font:11px "DejaVu Sans",sans-serif;fill:#333}
svg .chart-title{font-weight:600;font-size:12px}
details.run{border:1px solid #d5d5d5;background:#fff;margin:10px 0;padding:6px 14px}
details.run>summary{cursor:pointer;font-weight:600;font-size:15px}
.note{color:#555;font-size:13px}
ul.failures li{color:#922b21}
td.diff{background:#f9d3cf;font-weight:600}
)css";

constexpr const char* kHeadScript =
    "window.addEventListener('error',function(e){var d=document.documentElement;"
    "if(!d.hasAttribute('data-errors'))d.setAttribute('data-errors',String(e.message||e));});"
    "document.addEventListener('securitypolicyviolation',function(e){"
    "document.documentElement.setAttribute('data-errors','blocked load: '+e.blockedURI);});";

constexpr const char* kTailScript =
    "(function(){var d=document.documentElement;"
    "d.setAttribute('data-charts',String(document.querySelectorAll('svg.chart').length));"
    "var ok='ok';['parity-summary','parity-steps'].forEach(function(id){"
    "try{JSON.parse(document.getElementById(id).textContent);}catch(e){ok='bad '+id;}});"
    "d.setAttribute('data-json',ok);d.setAttribute('data-ready','1');})();";

std::string VerdictSection(const compare::Summary& summary) {
  std::string out = "<section id=\"verdict\"><h2>Verdict</h2>\n<table><tr><th>pair</th>"
                    "<th>verdict</th><th>runs passing</th><th>earliest divergence</th>"
                    "<th>divergences (rounding / real / other)</th><th>mean KL</th><th>max KL</th>"
                    "<th>same top-1</th><th>gates</th></tr>\n";
  for (const compare::PairSummary& pair : summary.pairs) {
    auto runs = RunsOfPair(summary, pair);
    int passing = 0;
    std::optional<int64_t> earliest;
    std::vector<std::string> gates;
    for (const compare::Run* run : runs) {
      passing += run->pass ? 1 : 0;
      if (run->first_divergence) {
        earliest = std::min(earliest.value_or(run->first_divergence->step),
                            run->first_divergence->step);
      }
      for (const std::string& gate : GatesInWords(run->thresholds)) {
        if (std::find(gates.begin(), gates.end(), gate) == gates.end()) gates.push_back(gate);
      }
    }
    std::string gate_text;
    for (const std::string& gate : gates) gate_text += HtmlEscape(gate) + "<br>";
    if (gates.empty()) gate_text = "<span class=\"note\">none</span>";
    out += fmt::format(
        "<tr><td><a href=\"#pair-{}\">{}</a></td><td>{}</td><td class=\"num\">{} / {}</td>"
        "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
        "<td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>\n",
        HtmlEscape(AnchorId(pair.id)), HtmlEscape(pair.id), PassBadge(pair.pass), passing,
        runs.size(), earliest ? std::to_string(*earliest) : "none", KindCounts(runs),
        FormatNumber(pair.mean_kl), FormatNumber(pair.max_kl),
        FormatPercent(pair.top1_agreement), gate_text);
  }
  out += "</table>\n";
  if (!summary.verdict.failures.empty()) {
    out += "<h3>Failed gates</h3><ul class=\"failures\">\n";
    for (const compare::Failure& failure : summary.verdict.failures) {
      // The message names the run already ("p0/a@fp16/b@fp16: max_kl 0.31 > 0.1").
      out += fmt::format("<li><a href=\"#run-{}\">{}</a></li>\n", HtmlEscape(AnchorId(failure.run)),
                         HtmlEscape(failure.message));
    }
    out += "</ul>\n";
  }
  out += "</section>\n";
  return out;
}

std::string PairSection(const compare::RunOutputs& outputs, const compare::PairSummary& pair) {
  const compare::Summary& summary = outputs.summary;
  std::string out = fmt::format("<section class=\"pair\" id=\"pair-{}\"><h2>{}{}</h2>\n",
                                HtmlEscape(AnchorId(pair.id)), HtmlEscape(pair.id),
                                PassBadge(pair.pass));
  out += fmt::format(
      "<div class=\"pair-head\"><table><tr><th>side</th><th>model</th><th>precision</th><th>numerics</th>"
      "<th>emulated</th></tr>\n<tr><td>A (reference)</td><td>{}</td><td>{}</td><td>{}</td>"
      "<td>{}</td></tr>\n<tr><td>B (candidate)</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
      "</tr></table>\n",
      HtmlEscape(pair.pair.a.model), HtmlEscape(pair.pair.a.precision),
      HtmlEscape(pair.pair.a.numerics), pair.pair.a.emulated ? "yes" : "no",
      HtmlEscape(pair.pair.b.model), HtmlEscape(pair.pair.b.precision),
      HtmlEscape(pair.pair.b.numerics), pair.pair.b.emulated ? "yes" : "no");
  if (!pair.identical_fraction.empty()) out += RenderLineChart(IdenticalFractionChart(pair));
  out += "</div>\n";
  for (const compare::Run* run : RunsOfPair(summary, pair)) out += RunSection(outputs, *run);
  out += "</section>\n";
  return out;
}

std::string LocalizeSection(const LocalizeView& view) {
  std::string out = "<section id=\"localize\"><h2>Where the error starts: per-layer localization"
                    "</h2>\n";
  if (!view.covers.empty()) {
    out += "<p>Covers " + HtmlEscape(view.covers) + " (<code>parity localize</code>, run " +
           HtmlEscape(view.run_id) + ").</p>\n";
  }
  for (const std::string& problem : view.problems) {
    out += "<p class=\"note\">localize.json: " + HtmlEscape(problem) + "</p>\n";
  }
  if (!view.headline.empty()) out += "<p><b>" + HtmlEscape(view.headline) + "</b></p>\n";
  if (view.first_departure) {
    out += "<h3>First departure</h3>\n<table>";
    if (view.first_departure->is_object()) {
      for (const auto& item : view.first_departure->items()) {
        std::string value = item.value().is_string() ? item.value().get<std::string>()
                                                     : item.value().dump();
        out += fmt::format("<tr><th>{}</th><td>{}</td></tr>", HtmlEscape(item.key()),
                           HtmlEscape(value));
      }
    } else {
      out += "<tr><td>" + HtmlEscape(view.first_departure->dump()) + "</td></tr>";
    }
    out += "</table>\n";
  }
  if (!view.points.empty()) {
    out += "<div class=\"charts\">" + RenderLineChart(LocalizeChart(view)) + "</div>\n";
    out += "<details><summary>Observation points</summary><table><tr><th>#</th><th>name</th>"
           "<th>layer</th><th>sub-block</th><th>relative RMS error</th><th>max |error|</th>"
           "<th>cosine</th></tr>\n";
    for (size_t i = 0; i < view.points.size(); ++i) {
      const LocalizePoint& p = view.points[i];
      out += fmt::format(
          "<tr><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td>"
          "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
          i, HtmlEscape(p.name), p.layer ? std::to_string(*p.layer) : "", HtmlEscape(p.sub_block),
          FormatNumber(p.rel_rms_error), FormatNumber(p.max_abs_error),
          p.cosine ? fmt::format("{:.9f}", *p.cosine) : "\u2014");
    }
    out += "</table></details>\n";
  }
  out += "</section>\n";
  return out;
}

}  // namespace

std::string JsonForScript(const nlohmann::json& json) {
  std::string text = json.dump();
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '<') {
      out += "\\u003c";
    } else if (text.compare(i, 3, "\u2028") == 0) {
      out += "\\u2028";
      i += 2;
    } else if (text.compare(i, 3, "\u2029") == 0) {
      out += "\\u2029";
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string RenderHtml(const compare::RunOutputs& outputs,
                       const std::optional<LocalizeView>& localize,
                       const std::optional<DiagnosisView>& diagnosis) {
  const compare::Summary& summary = outputs.summary;
  bool pass = summary.verdict.pass;
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  // Nothing may be loaded from anywhere: the page is complete as it is.
  out += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
         "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n";
  out += fmt::format("<title>Parity {}: {}</title>\n", pass ? "PASS" : "FAIL",
                     HtmlEscape(summary.case_ref.name));
  out += fmt::format("<script>{}</script>\n<style>{}</style>\n</head>\n<body>\n", kHeadScript,
                     kStyle);
  int runs_passing = 0;
  for (const compare::Run& run : summary.runs) runs_passing += run.pass ? 1 : 0;
  out += fmt::format(
      "<header class=\"verdict {}\"><h1>{} \u2014 {}</h1><p>{} of {} runs pass, {} pair(s), "
      "{} gate failure(s). Finished {} \u00b7 Parity {} \u00b7 libtorch {}</p></header>\n<main>\n",
      pass ? "pass" : "fail", pass ? "PASS" : "FAIL", HtmlEscape(summary.case_ref.name),
      runs_passing, summary.runs.size(), summary.pairs.size(), summary.verdict.failures.size(),
      HtmlEscape(summary.created_utc), HtmlEscape(summary.parity_version),
      HtmlEscape(summary.libtorch_version));
  out += VerdictSection(summary);
  // Failing pairs first, then pairs with a divergence: what needs reading is at the top.
  std::vector<const compare::PairSummary*> pairs;
  for (const compare::PairSummary& pair : summary.pairs) pairs.push_back(&pair);
  auto diverged = [&](const compare::PairSummary* pair) {
    for (const compare::Run* run : RunsOfPair(summary, *pair)) {
      if (run->first_divergence) return true;
    }
    return false;
  };
  std::stable_partition(pairs.begin(), pairs.end(), diverged);
  std::stable_partition(pairs.begin(), pairs.end(),
                        [](const compare::PairSummary* pair) { return !pair->pass; });
  std::vector<std::string> shown;
  for (const compare::PairSummary* pair : pairs) {
    out += PairSection(outputs, *pair);
    shown.insert(shown.end(), pair->runs.begin(), pair->runs.end());
  }
  std::string orphans;
  for (const compare::Run& run : summary.runs) {
    if (std::find(shown.begin(), shown.end(), run.id) == shown.end()) {
      orphans += RunSection(outputs, run);
    }
  }
  if (!orphans.empty()) out += "<section><h2>Other runs</h2>\n" + orphans + "</section>\n";
  if (localize) out += LocalizeSection(*localize);
  if (diagnosis) out += DiagnosisHtml(*diagnosis);
  out += SettingsSection(summary);

  nlohmann::json steps = nlohmann::json::array();
  for (const compare::StepRecord& step : outputs.steps) steps.push_back(compare::ToJson(step));
  out += "<script type=\"application/json\" id=\"parity-summary\">" +
         JsonForScript(compare::ToJson(summary)) + "</script>\n";
  out += "<script type=\"application/json\" id=\"parity-steps\">" + JsonForScript(steps) +
         "</script>\n";
  out += fmt::format("</main>\n<script>{}</script>\n</body></html>\n", kTailScript);
  return out;
}

}  // namespace parity::report
