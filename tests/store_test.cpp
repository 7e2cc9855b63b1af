// Baseline store and history: case keys, save/load, history append and read, concurrent appends
// from several processes, a torn last line, and SIGKILL/SIGINT in the middle of writing summaries,
// reports, baselines and history: afterwards every file under its final name is a complete old or
// new version.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "harness/report/baseline_store.h"
#include "harness/report/history.h"
#include "harness/report/report.h"
#include "tests/report_fixture.h"
#include "tests/test_util.h"

namespace parity::report {
namespace {

using parity::testing::FixtureOptions;
using parity::testing::MakeRunOutputs;

TEST(BaselineStoreTest, CaseKeysArePlainDistinctFileNames) {
  EXPECT_EQ(CaseKey("internlm2-tiny_v1.2"), "internlm2-tiny_v1.2");
  EXPECT_EQ(CaseKey("a/b c"), "a%2Fb%20c");
  EXPECT_EQ(CaseKey(".hidden"), "%2Ehidden");
  EXPECT_EQ(CaseKey(".."), "%2E.");
  EXPECT_NE(CaseKey("a/b"), CaseKey("a%2Fb"));  // '%' itself is encoded
  EXPECT_THROW(CaseKey(""), InputError);
}

TEST(BaselineStoreTest, SaveAndLoadRoundTrip) {
  TempDir dir;
  BaselineStore store(dir.path() + "/store");
  compare::Summary summary = MakeRunOutputs(FixtureOptions{}).summary;
  EXPECT_FALSE(store.Has("tiny"));
  EXPECT_FALSE(store.Load("tiny").has_value());
  std::string path = store.Save(summary, "out/run1");
  EXPECT_EQ(path, dir.path() + "/store/baselines/tiny.json");
  std::optional<Baseline> loaded = store.Load("tiny");
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->source, "out/run1");
  EXPECT_EQ(loaded->saved_utc.size(), 20u);  // 2024-05-01T12:00:00Z
  EXPECT_EQ(compare::ToJson(loaded->summary), compare::ToJson(summary));
}

TEST(BaselineStoreTest, ABrokenBaselineNamesItsFile) {
  TempDir dir;
  BaselineStore store(dir.path());
  WriteFileText(store.BaselinePath("tiny"), "{\"summary\": {\"schema_version\": 1}}");
  try {
    store.Load("tiny");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("baselines/tiny.json"), std::string::npos) << e.what();
  }
}

TEST(HistoryTest, RecordsSummarizeEachPair) {
  compare::Summary summary = MakeRunOutputs(FixtureOptions{}).summary;
  std::vector<HistoryRecord> records = RecordsFromSummary(summary, "out/x");
  ASSERT_EQ(records.size(), 2u);
  const HistoryRecord& fp16 = records[1];
  EXPECT_EQ(fp16.pair, "original@fp16/converted@fp16");
  EXPECT_EQ(fp16.case_name, "tiny");
  EXPECT_FALSE(fp16.pass);
  EXPECT_EQ(fp16.runs, 3);
  EXPECT_EQ(fp16.diverged_runs, 2);
  EXPECT_EQ(fp16.rounding_runs, 1);
  EXPECT_EQ(fp16.real_runs, 1);
  EXPECT_EQ(fp16.earliest_divergence_step, 5);
  EXPECT_DOUBLE_EQ(fp16.p99_kl, 1e-2);
  EXPECT_DOUBLE_EQ(fp16.mean_kl, summary.pairs[1].mean_kl);
  EXPECT_FALSE(records[0].earliest_divergence_step.has_value());
  EXPECT_EQ(ToJson(HistoryRecordFromJson(ToJson(fp16), "x")), ToJson(fp16));
}

TEST(HistoryTest, AppendsAndReadsBack) {
  TempDir dir;
  BaselineStore store(dir.path() + "/new-store");  // created by the first append
  auto records = RecordsFromSummary(MakeRunOutputs(FixtureOptions{}).summary, "out/x");
  AppendHistory(store.HistoryPath(), store.LockPath(), records);
  AppendHistory(store.HistoryPath(), store.LockPath(), records);
  HistoryRead read = ReadHistory(store.HistoryPath());
  ASSERT_EQ(read.records.size(), 4u);
  EXPECT_EQ(read.skipped_lines, 0);
  EXPECT_EQ(ToJson(read.records[3]), ToJson(records[1]));
  EXPECT_TRUE(ReadHistory(dir.path() + "/nothing.jsonl").records.empty());
}

TEST(HistoryTest, ATornLastLineIsSkippedAndCutBeforeTheNextAppend) {
  TempDir dir;
  BaselineStore store(dir.path());
  auto records = RecordsFromSummary(MakeRunOutputs(FixtureOptions{}).summary, "out/x");
  AppendHistory(store.HistoryPath(), store.LockPath(), {records[0]});
  std::string torn = ToJson(records[1]).dump().substr(0, 50);  // a write cut short by SIGKILL
  {
    std::ofstream out(store.HistoryPath(), std::ios::app | std::ios::binary);
    out << torn;
  }
  HistoryRead read = ReadHistory(store.HistoryPath());
  EXPECT_EQ(read.records.size(), 1u);
  EXPECT_EQ(read.skipped_lines, 1);
  AppendHistory(store.HistoryPath(), store.LockPath(), {records[1]});
  read = ReadHistory(store.HistoryPath());
  EXPECT_EQ(read.records.size(), 2u);
  EXPECT_EQ(read.skipped_lines, 0);
  EXPECT_EQ(ReadFileText(store.HistoryPath()).find(torn + "{"), std::string::npos);
}

// Several processes append at once, each record a line far longer than PIPE_BUF (4096 bytes).
TEST(HistoryTest, ConcurrentAppendsFromProcessesGiveWholeLines) {
  TempDir dir;
  BaselineStore store(dir.path());
  constexpr int kProcesses = 4, kAppends = 25;
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int status = 0;
      try {
        auto records = RecordsFromSummary(MakeRunOutputs(FixtureOptions{}).summary,
                                          std::string(6000, static_cast<char>('a' + p)));
        for (int i = 0; i < kAppends; ++i) {
          AppendHistory(store.HistoryPath(), store.LockPath(), records);
        }
      } catch (...) {
        status = 1;
      }
      ::_exit(status);
    }
    children.push_back(pid);
  }
  // Threads of this process append at the same time (flock excludes them too: each append opens
  // its own descriptor of the lock file).
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      auto records = RecordsFromSummary(MakeRunOutputs(FixtureOptions{}).summary,
                                        std::string(5000, static_cast<char>('x' + t)));
      for (int i = 0; i < kAppends; ++i) {
        AppendHistory(store.HistoryPath(), store.LockPath(), records);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  HistoryRead read = ReadHistory(store.HistoryPath());
  EXPECT_EQ(read.skipped_lines, 0);
  ASSERT_EQ(read.records.size(), static_cast<size_t>((kProcesses + 2) * kAppends * 2));
  std::map<char, int> per_writer;
  for (const HistoryRecord& r : read.records) {
    ASSERT_FALSE(r.source.empty());
    EXPECT_EQ(r.source, std::string(r.source.size(), r.source[0]));  // not interleaved
    ++per_writer[r.source[0]];
  }
  EXPECT_EQ(per_writer.size(), static_cast<size_t>(kProcesses + 2));
  for (const auto& [writer, count] : per_writer) EXPECT_EQ(count, kAppends * 2) << writer;
}

// ---------------------------------------------------------------------------------------------
// Interruption: a child rewrites a run's outputs, its reports, its baseline and the history in a
// loop, alternating two versions; the parent kills it at varying moments. Every file under its
// final name must then be one of the complete versions; anything else must be a temporary
// (".<name>.tmp.<pid>.<n>").

struct Versions {
  std::string summary[2], steps[2], markdown[2], html[2];
};

Versions ExpectedVersions(const compare::RunOutputs outputs[2]) {
  Versions v;
  for (int i = 0; i < 2; ++i) {
    TempDir dir;
    compare::WriteRunOutputs(dir.path(), outputs[i]);
    WriteReports(dir.path());
    v.summary[i] = ReadFileText(dir.path() + "/summary.json");
    v.steps[i] = ReadFileText(dir.path() + "/steps.jsonl");
    v.markdown[i] = ReadFileText(dir.path() + "/report.md");
    v.html[i] = ReadFileText(dir.path() + "/report.html");
  }
  return v;
}

[[noreturn]] void WriteForever(const std::string& run_dir, const std::string& store_dir,
                               const compare::RunOutputs outputs[2]) {
  BaselineStore store(store_dir);
  for (int i = 0;; i = 1 - i) {
    compare::WriteRunOutputs(run_dir, outputs[i]);
    WriteReports(run_dir);
    store.Save(outputs[i].summary, run_dir);
    AppendHistory(store.HistoryPath(), store.LockPath(),
                  RecordsFromSummary(outputs[i].summary, std::string(20000, 'k')));
  }
}

void ExpectOneOf(const std::string& path, const std::string& a, const std::string& b) {
  if (!std::filesystem::exists(path)) return;  // not written yet: acceptable
  std::string content = ReadFileText(path);
  EXPECT_TRUE(content == a || content == b)
      << path << " is neither version (" << content.size() << " bytes; versions " << a.size()
      << " and " << b.size() << ")";
}

TEST(InterruptionTest, KilledWritersLeaveOnlyCompleteFiles) {
  compare::RunOutputs outputs[2];
  FixtureOptions big;  // a few hundred KB of report so that kills land inside writes
  big.num_prompts = 12;
  big.steps = 48;
  outputs[0] = MakeRunOutputs(big);
  big.kl_scale_fp16 = 3e-5;
  big.created_utc = "2024-05-02T12:00:00Z";
  outputs[1] = MakeRunOutputs(big);
  Versions expected = ExpectedVersions(outputs);
  ASSERT_GT(expected.html[0].size(), 200000u);

  TempDir dir;
  std::string run_dir = dir.path() + "/run", store_dir = dir.path() + "/store";
  std::regex temp_name(R"(\..+\.tmp\.[0-9]+\.[0-9]+)");
  const int delays_ms[] = {3, 17, 41, 73, 120, 9, 55, 260, 31, 90};
  for (int round = 0; round < 10; ++round) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      try {
        WriteForever(run_dir, store_dir, outputs);
      } catch (...) {
      }
      ::_exit(3);  // only reached when a write failed: the parent sees a normal exit
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delays_ms[round]));
    int signal = round % 3 == 2 ? SIGINT : SIGKILL;
    ASSERT_EQ(::kill(pid, signal), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer exited by itself";

    ExpectOneOf(run_dir + "/summary.json", expected.summary[0], expected.summary[1]);
    ExpectOneOf(run_dir + "/steps.jsonl", expected.steps[0], expected.steps[1]);
    ExpectOneOf(run_dir + "/report.md", expected.markdown[0], expected.markdown[1]);
    ExpectOneOf(run_dir + "/report.html", expected.html[0], expected.html[1]);
    BaselineStore store(store_dir);
    if (store.Has("tiny")) {
      std::optional<Baseline> baseline = store.Load("tiny");  // throws when truncated
      ASSERT_TRUE(baseline.has_value());
      nlohmann::json json = compare::ToJson(baseline->summary);
      EXPECT_TRUE(json == compare::ToJson(outputs[0].summary) ||
                  json == compare::ToJson(outputs[1].summary));
    }
    // History: every complete line is a record; at most a torn tail, which the next append cuts.
    HistoryRead history = ReadHistory(store.HistoryPath());
    EXPECT_LE(history.skipped_lines, 1);
    std::string text = ReadFileText(store.HistoryPath());
    if (!text.empty() && text.back() != '\n') {
      EXPECT_EQ(history.skipped_lines, 1);
    }

    for (const std::string& folder : {run_dir, store_dir, store_dir + "/baselines"}) {
      if (!std::filesystem::exists(folder)) continue;
      for (const auto& entry : std::filesystem::directory_iterator(folder)) {
        std::string name = entry.path().filename().string();
        static const std::set<std::string> finals = {
            "summary.json", "steps.jsonl", "report.md", "report.html", "baselines",
            "history.jsonl", ".history.lock", "tiny.json"};
        EXPECT_TRUE(finals.count(name) || std::regex_match(name, temp_name))
            << "unexpected file " << entry.path();
      }
    }
  }
  BaselineStore store(store_dir);
  AppendHistory(store.HistoryPath(), store.LockPath(),
                RecordsFromSummary(outputs[0].summary, "after"));
  HistoryRead history = ReadHistory(store.HistoryPath());
  EXPECT_EQ(history.skipped_lines, 0);
  EXPECT_GE(history.records.size(), 2u);
}

}  // namespace
}  // namespace parity::report
