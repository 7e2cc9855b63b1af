// The reports in a real browser: headless Chromium (Debian's `chromium` package) loads report.html
// and the trend page from file://, and the test checks the DOM it dumps (scripts ran without an
// error, the embedded JSON parses, every chart SVG is there with its polylines) and that a
// screenshot is produced. Skipped, with the reason, when chromium is not installed.
//
// Set PARITY_SCREENSHOT_DIR to keep the screenshot and the page it shows (CI artefacts).
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <regex>

#include <gtest/gtest.h>

#include "harness/core/atomic_file.h"
#include "harness/report/history.h"
#include "harness/report/report.h"
#include "harness/report/trend.h"
#include "tests/report_fixture.h"
#include "tests/test_util.h"

namespace parity::report {
namespace {

using parity::testing::FixtureOptions;
using parity::testing::MakeRunOutputs;

std::string ChromiumPath() {
  if (const char* env = std::getenv("PARITY_CHROMIUM")) return env;
  for (const char* candidate : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    struct stat info {};
    if (::stat(candidate, &info) == 0) return candidate;
  }
  return "";
}

struct BrowserRun {
  int status = -1;
  std::string dom;      // stdout (--dump-dom)
  std::string log;      // stderr: Chromium's log, console messages included
};

// Runs headless Chromium on `file` with `mode` ("--dump-dom" or "--screenshot=..."), in a fresh
// profile, with everything that could reach the network switched off.
BrowserRun RunChromium(const std::string& file, const std::string& mode) {
  TempDir profile;
  std::string out = profile.path() + "/stdout.txt", err = profile.path() + "/stderr.txt";
  std::string command =
      "timeout 120 '" + ChromiumPath() +
      "' --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
      "--disable-background-networking --disable-component-update --disable-sync "
      "--user-data-dir='" + profile.path() + "/profile' --enable-logging=stderr --v=0 " + mode +
      " 'file://" + file + "' > '" + out + "' 2> '" + err + "'";
  BrowserRun run;
  int status = std::system(command.c_str());
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : 255;
  run.dom = ReadFileText(out);
  run.log = ReadFileText(err);
  return run;
}

// Console messages and uncaught exceptions as Chromium logs them ("INFO:CONSOLE(12)] ...").
std::vector<std::string> ConsoleLines(const std::string& log) {
  std::vector<std::string> lines;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.find(":CONSOLE") != std::string::npos || line.find("Uncaught") != std::string::npos) {
      lines.push_back(line);
    }
  }
  return lines;
}

// The problems a dumped page shows: script errors, console messages, missing ready marker.
std::vector<std::string> PageProblems(const BrowserRun& run) {
  std::vector<std::string> problems;
  if (run.status != 0) problems.push_back("chromium exited with " + std::to_string(run.status));
  std::smatch match;
  if (std::regex_search(run.dom, match, std::regex("data-errors=\"([^\"]*)\""))) {
    problems.push_back("script error: " + match[1].str());
  }
  if (run.dom.find("data-ready=\"1\"") == std::string::npos) {
    problems.push_back("the page's final script did not run (no data-ready)");
  }
  for (const std::string& line : ConsoleLines(run.log)) problems.push_back("console: " + line);
  return problems;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

size_t CountMatches(const std::string& text, const std::regex& pattern) {
  return static_cast<size_t>(
      std::distance(std::sregex_iterator(text.begin(), text.end(), pattern), std::sregex_iterator()));
}

class BrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ChromiumPath().empty()) {
      GTEST_SKIP() << "chromium is not installed (apt-get install chromium; scripts/setup.sh "
                      "installs it): the reports were not checked in a browser";
    }
  }
};

TEST_F(BrowserTest, DetectsAScriptErrorInAPage) {  // the checks below can fail
  TempDir dir;
  std::string page = dir.path() + "/broken.html";
  WriteFileText(page,
                "<!DOCTYPE html><html><head><script>window.addEventListener('error',function(e){"
                "document.documentElement.setAttribute('data-errors',e.message);});</script>"
                "</head><body><script>undefinedFunction();</script></body></html>");
  BrowserRun run = RunChromium(page, "--dump-dom");
  std::vector<std::string> problems = PageProblems(run);
  EXPECT_GE(problems.size(), 2u) << Join(problems);  // the error and the missing ready marker
  EXPECT_NE(Join(problems).find("undefinedFunction"), std::string::npos) << Join(problems);
}

TEST_F(BrowserTest, ReportLoadsWithoutErrorsDrawsChartsAndScreenshots) {
  TempDir dir;
  compare::WriteRunOutputs(dir.path(), MakeRunOutputs(FixtureOptions{}));
  WriteFileText(dir.path() + "/localize.json",
                R"({"points": [{"name": "embed", "layer": null, "sub_block": "embedding",
                    "rel_rms_error": 1e-9, "max_abs_error": 1e-8, "cosine": 1.0},
                   {"name": "layers.0.attention", "layer": 0, "sub_block": "attention",
                    "rel_rms_error": 2e-7, "max_abs_error": 3e-6, "cosine": 0.9999999},
                   {"name": "layers.1.mlp", "layer": 1, "sub_block": "mlp",
                    "rel_rms_error": 4e-3, "max_abs_error": 0.2, "cosine": 0.999}],
                   "first_departure": {"name": "layers.1.mlp", "layer": 1}})");
  ReportPaths paths = WriteReports(dir.path());

  BrowserRun run = RunChromium(paths.html, "--dump-dom");
  EXPECT_TRUE(PageProblems(run).empty()) << Join(PageProblems(run)) << run.log;
  EXPECT_NE(run.dom.find("data-json=\"ok\""), std::string::npos) << "embedded JSON did not parse";
  // 2 pair curves + 3 charts per run (6 runs) + 1 oracle chart per fp32 run (3) + localization.
  EXPECT_NE(run.dom.find("data-charts=\"24\""), std::string::npos);
  EXPECT_EQ(CountMatches(run.dom, std::regex("<svg[^>]*class=\"chart\"")), 24u);
  // Every chart has at least one line with real coordinates.
  std::regex line("<polyline class=\"series\"[^>]*points=\"-?[0-9.]+,-?[0-9.]+( -?[0-9.]+,-?[0-9.]+)+\"");
  EXPECT_GE(CountMatches(run.dom, line), 24u);
  EXPECT_GE(CountMatches(run.dom, std::regex("<line class=\"marker\"")), 1u);
  EXPECT_GE(CountMatches(run.dom, std::regex("<circle class=\"point\"")), 1u);
  // The divergence is highlighted in the parsed DOM (the browser kept our marks).
  EXPECT_GE(CountMatches(run.dom, std::regex("<mark class=\"div\">")), 4u);

  std::string png = dir.path() + "/report.png";
  BrowserRun shot = RunChromium(paths.html, "--screenshot='" + png + "' --window-size=1280,2000");
  ASSERT_TRUE(std::filesystem::exists(png)) << shot.log;
  std::string bytes = ReadFileText(png);
  ASSERT_GT(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  auto be32 = [&](size_t at) {
    return (static_cast<uint32_t>(static_cast<unsigned char>(bytes[at])) << 24) |
           (static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + 1])) << 16) |
           (static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + 2])) << 8) |
           static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + 3]));
  };
  EXPECT_EQ(be32(16), 1280u);  // IHDR width
  EXPECT_EQ(be32(20), 2000u);  // IHDR height
  EXPECT_GT(bytes.size(), 50000u) << "a 1280x2000 page with text and charts compresses to more";

  if (const char* keep = std::getenv("PARITY_SCREENSHOT_DIR")) {
    std::filesystem::create_directories(keep);
    std::filesystem::copy_file(png, std::string(keep) + "/report.png",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(paths.html, std::string(keep) + "/report.html",
                               std::filesystem::copy_options::overwrite_existing);
  }
}

TEST_F(BrowserTest, TrendPageLoadsWithoutErrors) {
  std::vector<HistoryRecord> records;
  for (int day = 1; day <= 4; ++day) {
    FixtureOptions options;
    options.created_utc = "2024-05-0" + std::to_string(day) + "T02:00:00Z";
    options.kl_scale_fp16 = 1e-5 * day;
    for (HistoryRecord& r : RecordsFromSummary(MakeRunOutputs(options).summary, "out/day")) {
      r.drift = day == 4 ? "drift" : "ok";
      if (day == 4) r.moved = {"p99_kl"};
      records.push_back(r);
    }
  }
  TempDir dir;
  std::string page = dir.path() + "/trend.html";
  WriteFileAtomic(page, RenderTrendHtml(records, 0, "store"));
  BrowserRun run = RunChromium(page, "--dump-dom");
  EXPECT_TRUE(PageProblems(run).empty()) << Join(PageProblems(run));
  EXPECT_NE(run.dom.find("data-charts=\"8\""), std::string::npos);  // 2 pairs x 4 charts
}

}  // namespace
}  // namespace parity::report
