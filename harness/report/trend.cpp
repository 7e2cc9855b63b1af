#include "harness/report/trend.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "harness/report/html.h"
#include "harness/report/html_parts.h"
#include "harness/report/svg_chart.h"
#include "harness/report/text_util.h"

namespace parity::report {
namespace {

constexpr size_t kTableRows = 20;  // latest records listed under each pair's charts

constexpr const char* kStyle = R"css(
body{font:14px/1.45 "DejaVu Sans",system-ui,sans-serif;margin:0;color:#222;background:#f6f6f6}
main{max-width:1260px;margin:0 auto;padding:0 20px 40px}
header{padding:14px 24px;background:#2c3e50;color:#fff}header h1{margin:0;font-size:24px}
h2{margin:26px 0 8px;border-bottom:2px solid #ddd}h3{margin:14px 0 6px}
table{border-collapse:collapse;background:#fff;margin:6px 0}
td,th{border:1px solid #ddd;padding:2px 7px;text-align:left;font-size:13px}th{background:#efefef}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drift td{background:#f9d3cf}tr.fail td{background:#fdebd0}
.charts{display:flex;flex-wrap:wrap;gap:8px}
svg.chart{background:#fff;border:1px solid #e2e2e2;max-width:100%;height:auto}
svg text{font:11px "DejaVu Sans",sans-serif;fill:#333}svg .chart-title{font-weight:600;font-size:12px}
.note{color:#555}
)css";

using Group = std::vector<const HistoryRecord*>;

ChartSeries Series(const std::string& name, const char* color, const Group& group,
                   double (*value)(const HistoryRecord&), bool dashed = false) {
  ChartSeries series{name, color, {}, {}, dashed};
  for (size_t i = 0; i < group.size(); ++i) {
    series.x.push_back(static_cast<double>(i));
    series.y.push_back(value(*group[i]));
  }
  return series;
}

// Circles on the records that drifted (red) or failed their gates (orange), at value(record).
void MarkRecords(const Group& group, double (*value)(const HistoryRecord&), ChartSpec* spec) {
  for (size_t i = 0; i < group.size(); ++i) {
    const HistoryRecord& r = *group[i];
    if (r.drift == "drift") {
      std::string moved;
      for (const std::string& m : r.moved) moved += (moved.empty() ? "" : ", ") + m;
      spec->points.push_back({static_cast<double>(i), value(r),
                              fmt::format("#{} {}: drift ({})", i, r.created_utc, moved)});
    } else if (!r.pass) {
      spec->points.push_back({static_cast<double>(i), value(r),
                              fmt::format("#{} {}: gates failed", i, r.created_utc), "#e67e22"});
    }
  }
}

std::string GroupSection(const std::string& case_name, const std::string& pair, const Group& group) {
  std::string out = fmt::format("<section class=\"trend\" id=\"trend-{}\"><h3>{}</h3>\n",
                                HtmlEscape(AnchorId(case_name + "/" + pair)), HtmlEscape(pair));
  out += fmt::format("<p class=\"note\">{} records, {} to {}. x axis: record number (oldest 0).</p>\n",
                     group.size(), HtmlEscape(group.front()->created_utc),
                     HtmlEscape(group.back()->created_utc));
  out += "<div class=\"charts\">";
  ChartSpec kl;
  kl.title = "KL per record (nats, log scale; red: drift, orange: gates failed)";
  kl.x_label = "record";
  kl.y_label = "KL";
  kl.log_y = true;
  kl.series = {Series("mean KL", "#1f77b4", group, [](const HistoryRecord& r) { return r.mean_kl; }),
               Series("p99 KL (max over prompts)", "#e67e22", group,
                      [](const HistoryRecord& r) { return r.p99_kl; }),
               Series("max KL", "#c0392b", group, [](const HistoryRecord& r) { return r.max_kl; },
                      true)};
  MarkRecords(group, [](const HistoryRecord& r) { return r.max_kl; }, &kl);
  out += RenderLineChart(kl);

  ChartSpec top1;
  top1.title = "Same top-1 rate per record";
  top1.x_label = "record";
  top1.y_label = "fraction";
  top1.y_min = 0;
  top1.y_max = 1.05;
  top1.series = {Series("same top-1", "#1f77b4", group,
                        [](const HistoryRecord& r) { return r.top1_agreement; })};
  MarkRecords(group, [](const HistoryRecord& r) { return r.top1_agreement; }, &top1);
  out += RenderLineChart(top1);

  ChartSpec divergence;
  divergence.title = "Earliest first-divergence step (gap: no prompt diverged)";
  divergence.x_label = "record";
  divergence.y_label = "step";
  divergence.series = {Series("earliest divergence", "#6c3483", group, [](const HistoryRecord& r) {
    return r.earliest_divergence_step ? static_cast<double>(*r.earliest_divergence_step) : NAN;
  })};
  out += RenderLineChart(divergence);

  ChartSpec delta;
  delta.title = "max |\u0394logit| per record (log scale)";
  delta.x_label = "record";
  delta.y_label = "|\u0394logit|";
  delta.log_y = true;
  delta.series = {Series("max |\u0394logit|", "#1f77b4", group,
                         [](const HistoryRecord& r) { return r.max_abs_logit_diff; })};
  out += RenderLineChart(delta);
  out += "</div>\n";

  out += "<table><tr><th>#</th><th>run finished</th><th>source</th><th>gates</th><th>drift</th>"
         "<th>moved</th><th>mean KL</th><th>p99 KL</th><th>max KL</th><th>same top-1</th>"
         "<th>earliest divergence</th><th>diverged (rounding / real)</th><th>versions</th></tr>\n";
  size_t first = group.size() > kTableRows ? group.size() - kTableRows : 0;
  for (size_t i = group.size(); i-- > first;) {
    const HistoryRecord& r = *group[i];
    std::string moved;
    for (const std::string& m : r.moved) moved += (moved.empty() ? "" : ", ") + m;
    out += fmt::format(
        "<tr class=\"{}\"><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
        "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{} ({} / {})</td>"
        "<td>{} / {}</td></tr>\n",
        r.drift == "drift" ? "drift" : (!r.pass ? "fail" : ""), i, HtmlEscape(r.created_utc),
        HtmlEscape(r.source), r.pass ? "pass" : "FAIL", HtmlEscape(r.drift), HtmlEscape(moved),
        FormatNumber(r.mean_kl), FormatNumber(r.p99_kl), FormatNumber(r.max_kl),
        FormatPercent(r.top1_agreement),
        r.earliest_divergence_step ? std::to_string(*r.earliest_divergence_step) : "none",
        r.diverged_runs, r.rounding_runs, r.real_runs, HtmlEscape(r.parity_version),
        HtmlEscape(r.libtorch_version));
  }
  out += "</table>\n</section>\n";
  return out;
}

}  // namespace

std::string RenderTrendHtml(const std::vector<HistoryRecord>& records, int64_t skipped_lines,
                            const std::string& store) {
  // Cases and pairs in order of first appearance; records in file (= time) order.
  std::vector<std::string> cases;
  std::map<std::string, std::vector<std::string>> pairs_of_case;
  std::map<std::pair<std::string, std::string>, Group> groups;
  for (const HistoryRecord& r : records) {
    if (std::find(cases.begin(), cases.end(), r.case_name) == cases.end()) cases.push_back(r.case_name);
    auto& pairs = pairs_of_case[r.case_name];
    if (std::find(pairs.begin(), pairs.end(), r.pair) == pairs.end()) pairs.push_back(r.pair);
    groups[{r.case_name, r.pair}].push_back(&r);
  }

  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                    "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
                    "<title>Parity trend</title>\n";
  out += "<script>window.addEventListener('error',function(e){document.documentElement."
         "setAttribute('data-errors',String(e.message||e));});</script>\n";
  out += fmt::format("<style>{}</style></head><body>\n", kStyle);
  out += fmt::format("<header><h1>Parity trend</h1><p>Store {} \u00b7 {} records \u00b7 {} "
                     "case(s)</p></header><main>\n",
                     HtmlEscape(store), records.size(), cases.size());
  if (skipped_lines > 0) {
    out += fmt::format("<p class=\"note\">{} torn or malformed history line(s) skipped.</p>\n",
                       skipped_lines);
  }
  if (records.empty()) out += "<p>No history yet: run <code>parity drift</code> first.</p>\n";
  for (const std::string& case_name : cases) {
    out += "<section class=\"case\"><h2>" + HtmlEscape(case_name) + "</h2>\n";
    for (const std::string& pair : pairs_of_case[case_name]) {
      out += GroupSection(case_name, pair, groups[{case_name, pair}]);
    }
    out += "</section>\n";
  }
  nlohmann::json data = nlohmann::json::array();
  for (const HistoryRecord& r : records) data.push_back(ToJson(r));
  out += "<script type=\"application/json\" id=\"parity-history\">" + JsonForScript(data) +
         "</script>\n";
  out += "</main><script>(function(){var d=document.documentElement;d.setAttribute('data-charts',"
         "String(document.querySelectorAll('svg.chart').length));d.setAttribute('data-ready','1');"
         "})();</script>\n</body></html>\n";
  return out;
}

}  // namespace parity::report
