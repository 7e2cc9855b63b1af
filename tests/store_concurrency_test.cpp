// The baseline store under concurrent use by separate `parity` processes, as two nightly jobs (or a
// job and a person) sharing one store produce it: `baseline save`, `baseline record` and `drift`
// on one store at once, many times. No record may be lost or torn, and every baseline must stay a
// complete file.
#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "harness/compare/run_result.h"
#include "harness/report/baseline_store.h"
#include "harness/report/history.h"
#include "tests/report_fixture.h"
#include "tests/test_util.h"

namespace parity::report {
namespace {

TEST(StoreConcurrencyTest, ConcurrentSaveRecordAndDriftProcessesLoseNothing) {
  TempDir dir;
  const std::string store = dir.path() + "/store";
  const std::string run_a = dir.path() + "/a", run_b = dir.path() + "/b";
  parity::testing::FixtureOptions options;
  options.case_name = "case-a";
  compare::RunOutputs a = parity::testing::MakeRunOutputs(options);
  options.case_name = "case-b";
  compare::RunOutputs b = parity::testing::MakeRunOutputs(options);
  compare::WriteRunOutputs(run_a, a);
  compare::WriteRunOutputs(run_b, b);
  const std::string cli = ParityCli();
  std::string log;
  ASSERT_EQ(RunCommand(cli + " baseline save " + run_a + " --store " + store, &log), 0) << log;
  ASSERT_EQ(RunCommand(cli + " baseline save " + run_b + " --store " + store, &log), 0) << log;

  // Per round, four processes at once: save A, drift B, record A, drift A (each drift and record
  // appends one history record per pair).
  constexpr int kRounds = 8;
  const std::string s = " --store " + store;
  const std::string script = fmt::format(
      "fail=0; for i in $(seq {}); do "
      "{} baseline save {}{} & p1=$!; {} drift {}{} & p2=$!; "
      "{} baseline record {}{} & p3=$!; {} drift {}{} & p4=$!; "
      "for p in $p1 $p2 $p3 $p4; do wait $p || fail=1; done; done; exit $fail",
      kRounds, cli, run_a, s, cli, run_b, s, cli, run_a, s, cli, run_a, s);
  ASSERT_EQ(RunCommand("bash -c '" + script + "'", &log), 0) << log;

  HistoryRead history = ReadHistory(BaselineStore(store).HistoryPath());
  EXPECT_EQ(history.skipped_lines, 0);
  const size_t per_round = b.summary.pairs.size() + 2 * a.summary.pairs.size();
  EXPECT_EQ(history.records.size(), kRounds * per_round);
  size_t from_b = 0;
  for (const HistoryRecord& record : history.records) from_b += record.case_name == "case-b";
  EXPECT_EQ(from_b, kRounds * b.summary.pairs.size());
  // Both baselines are whole files with the summaries saved.
  BaselineStore reader(store);
  ASSERT_TRUE(reader.Load("case-a").has_value());
  EXPECT_EQ(compare::ToJson(reader.Load("case-a")->summary), compare::ToJson(a.summary));
  EXPECT_EQ(compare::ToJson(reader.Load("case-b")->summary), compare::ToJson(b.summary));
  // No temporary file left behind.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(store)) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
  }
}

}  // namespace
}  // namespace parity::report
