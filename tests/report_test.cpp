// Report layer: text escaping, SVG charts, the charts built from a run, the Markdown and HTML
// reports written by WriteReports (content, escaping, embedded data, offline-only), localize.json.
#include <filesystem>
#include <regex>
#include <set>

#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "harness/report/html.h"
#include "harness/report/localize_view.h"
#include "harness/report/markdown.h"
#include "harness/report/report.h"
#include "harness/report/report_charts.h"
#include "harness/report/run_view.h"
#include "harness/report/svg_chart.h"
#include "harness/report/text_util.h"
#include "tests/report_fixture.h"
#include "tests/test_util.h"

namespace parity::report {
namespace {

using parity::testing::FixtureOptions;
using parity::testing::MakeRunOutputs;

size_t Count(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

const compare::Run& RunById(const compare::Summary& summary, const std::string& id) {
  for (const compare::Run& run : summary.runs) {
    if (run.id == id) return run;
  }
  throw std::runtime_error("no run " + id);
}

TEST(ReportTextTest, HtmlEscapeCoversMarkupAndQuotes) {
  EXPECT_EQ(HtmlEscape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(HtmlEscape("plain caf\u00e9"), "plain caf\u00e9");
}

TEST(ReportTextTest, NewlinesAndTabsAreVisible) {
  EXPECT_EQ(VisibleHtml("a\nb"), "a<span class=\"ws\">\u23CE</span>\nb");
  EXPECT_EQ(VisibleHtml("<\t>"), "&lt;<span class=\"ws\">\u2192</span>\t&gt;");
  EXPECT_EQ(VisiblePlain("x\r\n\x01"), "x\u240D\u23CE\u2401");
}

TEST(ReportTextTest, MarkdownCodeFencesAroundBackticks) {
  EXPECT_EQ(MarkdownCode("a`b"), "``a`b``");
  EXPECT_EQ(MarkdownCode("`x"), "`` `x ``");
  EXPECT_EQ(MarkdownCode("\n"), "`\u23CE`");
  EXPECT_EQ(MarkdownCode(""), "`\u2205`");
  EXPECT_EQ(MarkdownCode(" the"), "` the`");     // one-sided space survives as it is
  EXPECT_EQ(MarkdownCode(" x "), "`  x  `");     // CommonMark strips one space per side
  EXPECT_EQ(MarkdownEscape("<script>|x"), "\\<script\\>\\|x");
}

TEST(ReportTextTest, Utf8PrefixesNeverSplitACharacter) {
  // "é" is C3 A9 and "è" is C3 A8: they share a first byte, which must not count.
  EXPECT_EQ(CommonPrefixUtf8("caf\u00e9", "caf\u00e8"), 3u);
  EXPECT_EQ(CommonPrefixUtf8("same", "same"), 4u);
  EXPECT_EQ(TailUtf8("\u00e9\u00e9\u00e9abc", 4), "\u2026\u00e9abc");
  EXPECT_EQ(TailUtf8("abc", 4), "abc");
}

TEST(ReportTextTest, NumbersHaveThreeSignificantDigits) {
  EXPECT_EQ(FormatNumber(0.000123456), "1.23e-04");
  EXPECT_EQ(FormatNumber(12.3456), "12.3");
  EXPECT_EQ(FormatNumber(0.0), "0");
  EXPECT_EQ(FormatNumber(12345.0), "12345");
  EXPECT_EQ(FormatNumber(std::nan("")), "\u2014");
  EXPECT_EQ(FormatPercent(0.99739), "99.7%");
}

TEST(SvgChartTest, MapsDataOntoThePlotArea) {
  ChartSpec spec;  // 600 x 240: plot x 64..584, y 30..182
  spec.x_min = 0;
  spec.x_max = 10;
  spec.y_min = 0;
  spec.y_max = 1;
  spec.series.push_back({"s", "#000", {0, 5, 10}, {0, 0.5, 1}});
  std::string svg = RenderLineChart(spec);
  EXPECT_NE(svg.find("points=\"64.0,182.0 324.0,106.0 584.0,30.0\""), std::string::npos) << svg;
  EXPECT_EQ(Count(svg, "<polyline class=\"series\""), 1u);
  EXPECT_EQ(Count(svg, "<circle class=\"dot\""), 3u);
}

TEST(SvgChartTest, NonFiniteValuesBreakTheLine) {
  ChartSpec spec;
  spec.series.push_back({"s", "#000", {0, 1, 2, 3, 4}, {1, 2, NAN, 3, 4}});
  EXPECT_EQ(Count(RenderLineChart(spec), "<polyline class=\"series\""), 2u);
}

TEST(SvgChartTest, LogAxisHasDecadeTicksAndPutsZeroOnTheBottom) {
  ChartSpec spec;
  spec.log_y = true;
  spec.series.push_back({"kl", "#000", {0, 1, 2}, {1e-12, 0, 1e-9}});
  ChartGeometry g = ComputeGeometry(spec);
  EXPECT_DOUBLE_EQ(g.y_lo, -12);
  EXPECT_DOUBLE_EQ(g.y_hi, -9);
  EXPECT_DOUBLE_EQ(g.MapY(0), g.bottom);
  EXPECT_DOUBLE_EQ(g.MapY(1e-9), g.top);
  std::string svg = RenderLineChart(spec);
  for (const char* tick : {">1e-12<", ">1e-11<", ">1e-10<", ">1e-9<"}) {
    EXPECT_NE(svg.find(tick), std::string::npos) << tick;
  }
}

TEST(SvgChartTest, EscapesTextsAndSaysNoData) {
  ChartSpec spec;
  spec.title = "<b>title</b>";
  spec.series.push_back({"a&b", "#000", {}, {}});
  std::string svg = RenderLineChart(spec);
  EXPECT_EQ(svg.find("<b>"), std::string::npos);
  EXPECT_NE(svg.find("&lt;b&gt;title&lt;/b&gt;"), std::string::npos);
  EXPECT_NE(svg.find("a&amp;b"), std::string::npos);
  EXPECT_NE(svg.find(">no data<"), std::string::npos);
}

TEST(ReportChartsTest, MarginChartCirclesOnlyStepsWithinTheNoise) {
  compare::RunOutputs outputs = MakeRunOutputs(FixtureOptions{});
  const compare::Run& run = RunById(outputs.summary, "p1/original@fp16/converted@fp16");
  ChartSpec spec = MarginChart(run, StepsOfRun(outputs.steps, run.id));
  ASSERT_EQ(spec.points.size(), 1u);  // the near-tie flip at step 5; margins elsewhere >= 0.5
  EXPECT_EQ(spec.points[0].x, 5);
  EXPECT_DOUBLE_EQ(spec.points[0].y, 3e-4);
  ASSERT_EQ(spec.markers.size(), 1u);
  EXPECT_EQ(spec.markers[0].x, 5);
}

TEST(ReportChartsTest, KlChartShadesTheStepsWhoseContextsDiffer) {
  compare::RunOutputs outputs = MakeRunOutputs(FixtureOptions{});
  const compare::Run& run = RunById(outputs.summary, "p2/original@fp16/converted@fp16");
  ChartSpec spec = KlChart(run, StepsOfRun(outputs.steps, run.id));
  ASSERT_EQ(spec.bands.size(), 1u);
  EXPECT_DOUBLE_EQ(spec.bands[0].x_begin, 8.5);   // steps 9..11 read different contexts
  EXPECT_DOUBLE_EQ(spec.bands[0].x_end, 11.5);
  ASSERT_EQ(spec.series.size(), 2u);
  EXPECT_EQ(spec.series[0].y.size(), 12u);
  EXPECT_DOUBLE_EQ(spec.series[0].y[11], 1e-2);
}

TEST(RunViewTest, SplitsBothStreamsAtTheDivergence) {
  compare::RunOutputs outputs = MakeRunOutputs(FixtureOptions{});
  const compare::Run& run = RunById(outputs.summary, "p1/original@fp16/converted@fp16");
  StreamSplit a = SplitAtDivergence(run, true);
  StreamSplit b = SplitAtDivergence(run, false);
  EXPECT_TRUE(a.diverged && a.located && b.located);
  EXPECT_EQ(a.prefix, run.first_divergence->context);
  EXPECT_EQ(a.prefix.back(), '\n');  // the fixture diverges right after a newline
  EXPECT_EQ(a.token, run.first_divergence->text_a);
  EXPECT_EQ(b.token, run.first_divergence->text_b);
  EXPECT_EQ(a.prefix + a.token + a.rest, run.text_a);
  EXPECT_EQ(b.prefix + b.token + b.rest, run.text_b);
}

TEST(RunViewTest, FallsBackToTheCommonPrefixWhenTheContextDoesNotMatch) {
  compare::RunOutputs outputs = MakeRunOutputs(FixtureOptions{});
  compare::Run run = RunById(outputs.summary, "p1/original@fp16/converted@fp16");
  std::string original_context = run.first_divergence->context;
  run.first_divergence->context = "something else";
  StreamSplit a = SplitAtDivergence(run, true);
  EXPECT_EQ(a.prefix.size(), CommonPrefixUtf8(run.text_a, run.text_b));
  EXPECT_EQ(a.prefix + a.token + a.rest, run.text_a);
}

TEST(RunViewTest, GatesInWords) {
  compare::Thresholds t;
  EXPECT_TRUE(GatesInWords(t).empty());
  t.max_kl = 1e-3;
  t.min_top1_agreement = 0.99;
  t.fail_on_real_divergence = true;
  std::vector<std::string> words = GatesInWords(t);
  ASSERT_EQ(words.size(), 3u);
  EXPECT_EQ(words[0], "max_kl \u2264 0.001");
  EXPECT_EQ(words[1], "top1_agreement \u2265 0.99");
}

class WrittenReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    outputs_ = MakeRunOutputs(FixtureOptions{});
    compare::WriteRunOutputs(dir_.path(), outputs_);
  }
  std::string Html() {
    WriteReports(dir_.path());
    return ReadFileText(dir_.path() + "/report.html");
  }
  TempDir dir_;
  compare::RunOutputs outputs_;
};

TEST_F(WrittenReportTest, WritesBothFilesAndNothingElse) {
  ReportPaths paths = WriteReports(dir_.path());
  EXPECT_EQ(paths.markdown, dir_.path() + "/report.md");
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    names.insert(entry.path().filename().string());
  }
  EXPECT_EQ(names, (std::set<std::string>{"report.html", "report.md", "steps.jsonl",
                                          "summary.json"}));
}

TEST_F(WrittenReportTest, HtmlShowsVerdictGatesAndEveryRun) {
  std::string html = Html();
  EXPECT_NE(html.find("<header class=\"verdict fail\"><h1>FAIL"), std::string::npos);
  EXPECT_NE(html.find("max_kl \u2264 0.001"), std::string::npos);  // the gate used
  for (const compare::Run& run : outputs_.summary.runs) {
    EXPECT_NE(html.find(">" + run.id), std::string::npos) << run.id;
  }
  for (const compare::Failure& failure : outputs_.summary.verdict.failures) {
    EXPECT_NE(html.find(HtmlEscape(failure.message)), std::string::npos);
  }
  // 2 pair curves, 3 charts per run, 1 oracle chart per fp32 run.
  EXPECT_EQ(Count(html, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\""),
            2u + 6u * 3u + 3u);
  EXPECT_NE(html.find("rounding flip at step 5"), std::string::npos);
  EXPECT_NE(html.find("real divergence at step 8"), std::string::npos);
}

TEST_F(WrittenReportTest, HtmlHighlightsTheDivergenceWithVisibleNewlines) {
  std::string html = Html();
  const compare::Run& run = RunById(outputs_.summary, "p1/original@fp16/converted@fp16");
  // The shared prefix ends in a newline, drawn as ⏎ plus a real line break, then the highlighted
  // token of each side.
  std::string a = "<span class=\"ws\">\u23CE</span>\n</span><mark class=\"div\">" +
                  VisibleHtml(run.first_divergence->text_a) + "</mark>";
  std::string b = "<span class=\"ws\">\u23CE</span>\n</span><mark class=\"div\">" +
                  VisibleHtml(run.first_divergence->text_b) + "</mark>";
  EXPECT_NE(html.find(a), std::string::npos) << a;
  EXPECT_NE(html.find(b), std::string::npos) << b;
}

TEST_F(WrittenReportTest, HtmlEscapesEveryTextFromTheData) {
  std::string html = Html();
  EXPECT_EQ(html.find("<script>alert(1)"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("who are you &lt;&amp;&gt;?"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;"), std::string::npos);  // the "<b>" token, as text
  // Markup in token texts never opens an element: every "<b" is our own badge/bold markup.
  std::regex stray_tag("<b>[^<]*</b>");
  for (std::sregex_iterator it(html.begin(), html.end(), stray_tag), end; it != end; ++it) {
    EXPECT_EQ(it->str().find("<b>"), 0u);
    EXPECT_TRUE(it->str() == "<b>Rounding flip</b>" || it->str() == "<b>Real divergence</b>" ||
                it->str() == "<b>Precision failure</b>" ||
                it->str() == "<b>Undetermined divergence</b>" || it->str() == "<b>no</b>")
        << it->str();
  }
}

TEST_F(WrittenReportTest, HtmlLoadsNothingFromTheNetwork) {
  std::string html = Html();
  EXPECT_NE(html.find("Content-Security-Policy\" content=\"default-src 'none'"),
            std::string::npos);
  std::regex url("(https?:)?//[a-zA-Z]");
  for (std::sregex_iterator it(html.begin(), html.end(), url), end; it != end; ++it) {
    EXPECT_EQ(html.compare(static_cast<size_t>(it->position()), 26,
                           "http://www.w3.org/2000/svg"),
              0)
        << "reference at " << it->position() << ": " << html.substr(it->position(), 60);
  }
  EXPECT_EQ(html.find(" src="), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
}

TEST_F(WrittenReportTest, HtmlEmbedsTheDataAsJson) {
  std::string html = Html();
  auto embedded = [&](const std::string& id) {
    std::string open = "<script type=\"application/json\" id=\"" + id + "\">";
    size_t begin = html.find(open);
    EXPECT_NE(begin, std::string::npos);
    begin += open.size();
    return nlohmann::json::parse(html.substr(begin, html.find("</script>", begin) - begin));
  };
  EXPECT_EQ(embedded("parity-summary"), compare::ToJson(outputs_.summary));
  nlohmann::json steps = embedded("parity-steps");
  ASSERT_EQ(steps.size(), outputs_.steps.size());
  EXPECT_EQ(steps[0], compare::ToJson(outputs_.steps[0]));
}

TEST_F(WrittenReportTest, HtmlShowsSettingsAndVersions) {
  std::string html = Html();
  for (const char* needle : {"<th>libtorch version</th><td>1.13.1</td>",
                             "<th>Parity version</th><td>0.1.0</td>", "fp16 (emulated on cpu)",
                             "<th>seed</th><td>0</td>", "<th>device</th><td>cpu</td>",
                             "fixtures/internlm2-tiny", "split_qkv, eager"}) {
    EXPECT_NE(html.find(needle), std::string::npos) << needle;
  }
  EXPECT_EQ(html.find("id=\"localize\""), std::string::npos);  // no localize.json: no section
}

TEST_F(WrittenReportTest, MarkdownIsShortAndPasteable) {
  WriteReports(dir_.path());
  std::string md = ReadFileText(dir_.path() + "/report.md");
  EXPECT_EQ(md.rfind("# Parity: tiny \u2014 FAIL\n", 0), 0u);
  EXPECT_NE(md.find("| original@fp16/converted@fp16 | **FAIL** | 1/3 | 5 | 1 / 1 / 0 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("rounding flip at step 5 (after a newline)"), std::string::npos);
  EXPECT_NE(md.find("Gates: max\\_kl \u2264 0.001"), std::string::npos);
  EXPECT_NE(md.find("\u23CE`"), std::string::npos);  // context ends in a visible newline
  EXPECT_NE(md.find("libtorch 1.13.1"), std::string::npos);
  EXPECT_LT(md.size(), 8000u);
}

TEST_F(WrittenReportTest, LocalizationSectionWhenTheFileExists) {
  nlohmann::json localize = {
      {"points",
       {{{"name", "embed"}, {"layer", nullptr}, {"sub_block", "embedding"},
         {"rel_rms_error", 0.0}, {"max_abs_error", 0.0}, {"cosine", 1.0}},
        {{"name", "layers.0.attention"}, {"layer", 0}, {"sub_block", "attention"},
         {"rel_rms_error", 1e-7}, {"max_abs_error", 2e-6}, {"cosine", 0.99999}},
        {{"name", "layers.1.mlp"}, {"layer", 1}, {"sub_block", "mlp"},
         {"rel_rms_error", 3e-3}, {"max_abs_error", 0.2}, {"cosine", 0.99}}}},
      {"first_departure", {{"name", "layers.1.mlp"}, {"layer", 1}, {"why", "<grew 10x>"}}}};
  WriteFileText(dir_.path() + "/localize.json", localize.dump());
  std::string html = Html();
  EXPECT_NE(html.find("id=\"localize\""), std::string::npos);
  EXPECT_NE(html.find("first departure: layers.1.mlp"), std::string::npos);  // chart marker
  EXPECT_NE(html.find("&lt;grew 10x&gt;"), std::string::npos);
  EXPECT_EQ(Count(html, "class=\"chart\""), 2u + 6u * 3u + 3u + 1u);
  EXPECT_NE(ReadFileText(dir_.path() + "/report.md").find("## Localization"), std::string::npos);
}

TEST_F(WrittenReportTest, MalformedLocalizationGivesANoteNotAFailure) {
  WriteFileText(dir_.path() + "/localize.json", "{\"points\": 3");
  std::string html = Html();
  EXPECT_NE(html.find("id=\"localize\""), std::string::npos);
  EXPECT_NE(html.find("not valid JSON"), std::string::npos);
}

TEST(LocalizeViewTest, ReadsKnownFieldsAndReportsWrongTypes) {
  LocalizeView view = ParseLocalize(
      {{"points", {{{"layer", 2}, {"sub_block", "mlp"}, {"rel_rms_error", "x"}, {"extra", 1}}}}},
      "l.json");
  ASSERT_EQ(view.points.size(), 1u);
  EXPECT_EQ(view.points[0].name, "layer 2 mlp");
  EXPECT_TRUE(std::isnan(view.points[0].rel_rms_error));
  ASSERT_EQ(view.problems.size(), 1u);
  EXPECT_NE(view.problems[0].find("points[0].rel_rms_error"), std::string::npos);
  EXPECT_FALSE(view.first_departure.has_value());
}

TEST(WriteReportsTest, MissingRunOutputsNameTheFile) {
  TempDir dir;
  try {
    WriteReports(dir.path());
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("summary.json"), std::string::npos) << e.what();
  }
}

TEST(ReportCliTest, WritesTheReports) {
  TempDir dir;
  compare::WriteRunOutputs(dir.path(), MakeRunOutputs(FixtureOptions{}));
  std::string output;
  EXPECT_EQ(RunCommand(ParityCli() + " report '" + dir.path() + "'", &output), 0) << output;
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/report.html"));
  EXPECT_NE(output.find("report.md"), std::string::npos);
  EXPECT_EQ(RunCommand(ParityCli() + " report '" + dir.path() + "/missing'", &output), 2);
}

}  // namespace
}  // namespace parity::report
