// Drift gates against a stored baseline: each gate trips exactly past its threshold, the KL floor
// keeps noise-level growth quiet, thresholds come from the case file; the `parity baseline` /
// `parity drift` / `parity trend` commands and scripts/nightly.sh end to end (with a stand-in for
// `parity run` that copies prepared run outputs, until the comparison producer exists).
#include <cstring>
#include <filesystem>

#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "harness/report/baseline_store.h"
#include "harness/report/drift.h"
#include "harness/report/history.h"
#include "tests/report_fixture.h"
#include "tests/test_util.h"

namespace parity::report {
namespace {

using parity::testing::FixtureOptions;
using parity::testing::MakeRunOutputs;
using parity::testing::MakeRunOutputsForPrompts;

const char* kP1Fp16 = "p1/original@fp16/converted@fp16";

std::vector<const DriftItem*> Tripped(const DriftReport& report, const std::string& metric = "") {
  std::vector<const DriftItem*> out;
  for (const DriftItem& item : report.items) {
    if (item.trips && (metric.empty() || item.metric == metric)) out.push_back(&item);
  }
  return out;
}

std::string Describe(const DriftReport& report) { return FormatDriftReport(report); }

TEST(DriftTest, AnUnchangedRunDoesNotDrift) {
  compare::Summary base = MakeRunOutputs(FixtureOptions{}).summary;
  DriftReport report = CompareWithBaseline(base, base, DriftThresholds{});
  EXPECT_FALSE(report.Drifted()) << Describe(report);
  EXPECT_EQ(report.runs_compared, 6);
  EXPECT_TRUE(report.items.empty()) << Describe(report);
}

TEST(DriftTest, FirstDivergenceEarlierByMoreThanTheThresholdTrips) {
  compare::Summary base = MakeRunOutputs(FixtureOptions{}).summary;  // p1 fp16 diverges at 5
  FixtureOptions earlier3;
  earlier3.divergences[{1, 1}] = {2, "real"};
  DriftReport report =
      CompareWithBaseline(base, MakeRunOutputs(earlier3).summary, DriftThresholds{});
  auto items = Tripped(report, "first_divergence_step");
  ASSERT_EQ(items.size(), 1u) << Describe(report);
  EXPECT_EQ(items[0]->run, kP1Fp16);
  EXPECT_EQ(items[0]->pair, "original@fp16/converted@fp16");
  EXPECT_EQ(items[0]->baseline, 5);
  EXPECT_EQ(items[0]->current, 2);
  EXPECT_EQ(items[0]->threshold, 3);
  EXPECT_NE(items[0]->message.find("first_divergence_step"), std::string::npos);

  FixtureOptions earlier2;  // exactly the threshold: not drift
  earlier2.divergences[{1, 1}] = {3, "rounding"};
  report = CompareWithBaseline(base, MakeRunOutputs(earlier2).summary, DriftThresholds{});
  EXPECT_TRUE(Tripped(report, "first_divergence_step").empty()) << Describe(report);

  FixtureOptions later;  // a later divergence is an improvement
  later.divergences[{1, 1}] = {9, "rounding"};
  report = CompareWithBaseline(base, MakeRunOutputs(later).summary, DriftThresholds{});
  EXPECT_FALSE(report.Drifted()) << Describe(report);
}

TEST(DriftTest, ARoundingFlipThatMovesIsReportedButDoesNotTripUnlessAsked) {
  compare::Summary base = MakeRunOutputs(FixtureOptions{}).summary;  // p1 fp16: rounding at 5
  FixtureOptions moved;
  moved.divergences[{1, 1}] = {1, "rounding"};
  DriftReport report = CompareWithBaseline(base, MakeRunOutputs(moved).summary, DriftThresholds{});
  EXPECT_TRUE(Tripped(report, "first_divergence_step").empty()) << Describe(report);
  bool reported = false;
  for (const DriftItem& item : report.items) {
    reported = reported || (item.metric == "first_divergence_step" && !item.trips);
  }
  EXPECT_TRUE(reported) << Describe(report);
  DriftThresholds strict;
  strict.fail_on_rounding_flip_move = true;
  report = CompareWithBaseline(base, MakeRunOutputs(moved).summary, strict);
  EXPECT_EQ(Tripped(report, "first_divergence_step").size(), 1u) << Describe(report);
}

TEST(DriftTest, AVerdictThatBecomesRealTrips) {
  compare::Summary base = MakeRunOutputs(FixtureOptions{}).summary;  // p1 fp16: rounding at 5
  FixtureOptions real;
  real.divergences[{1, 1}] = {5, "real"};
  DriftReport report = CompareWithBaseline(base, MakeRunOutputs(real).summary, DriftThresholds{});
  EXPECT_EQ(Tripped(report, "verdict").size(), 1u) << Describe(report);
}

TEST(DriftTest, ADivergenceWhereTheBaselineHadNoneTrips) {
  compare::Summary base = MakeRunOutputs(FixtureOptions{}).summary;
  FixtureOptions now;
  now.divergences[{0, 0}] = {3, "real"};  // fp32, prompt 0: identical for 12 steps in the baseline
  DriftReport report = CompareWithBaseline(base, MakeRunOutputs(now).summary, DriftThresholds{});
  auto items = Tripped(report, "first_divergence_step");
  ASSERT_EQ(items.size(), 1u) << Describe(report);
  EXPECT_EQ(items[0]->run, "p0/original@fp32/converted@fp32");
  EXPECT_NE(items[0]->message.find("none in 12 steps"), std::string::npos) << items[0]->message;
}

TEST(DriftTest, KlGrowthBelowTheFloorIsNoise) {
  compare::Summary base = MakeRunOutputs(FixtureOptions{}).summary;
  FixtureOptions fp32_noise;  // 1e-12 -> 3e-12: three times more, still FP32 noise
  fp32_noise.kl_scale_fp32 = 3e-12;
  DriftReport report =
      CompareWithBaseline(base, MakeRunOutputs(fp32_noise).summary, DriftThresholds{});
  EXPECT_FALSE(report.Drifted()) << Describe(report);

  FixtureOptions fp16_growth;  // 1e-5 -> 3e-5 scale at FP16: below FP16's floor (1e-4) by default
  fp16_growth.kl_scale_fp16 = 3e-5;
  report = CompareWithBaseline(base, MakeRunOutputs(fp16_growth).summary, DriftThresholds{});
  EXPECT_FALSE(report.Drifted()) << Describe(report);
  DriftThresholds low_floor;  // with a floor of 1e-6: above the floor, x3 > x2
  low_floor.kl_floor_fp16 = 1e-6;
  report = CompareWithBaseline(base, MakeRunOutputs(fp16_growth).summary, low_floor);
  // Only prompt 0 moves: p1 and p2 reach 1e-2 after their divergence in both runs.
  auto p99 = Tripped(report, "p99_kl");
  ASSERT_EQ(p99.size(), 1u) << Describe(report);
  EXPECT_EQ(p99[0]->run, "p0/original@fp16/converted@fp16");
  EXPECT_DOUBLE_EQ(*p99[0]->baseline, 4e-5);  // max of 1..4 x 1e-5 (p99 of 12 steps = max)
  EXPECT_DOUBLE_EQ(*p99[0]->current, 1.2e-4);
  EXPECT_DOUBLE_EQ(*p99[0]->threshold, 8e-5);
  EXPECT_EQ(Tripped(report, "max_kl").size(), 1u);

  DriftThresholds loose;
  loose.kl_floor_fp16 = 1e-3;
  EXPECT_FALSE(CompareWithBaseline(base, MakeRunOutputs(fp16_growth).summary, loose).Drifted());
  loose.kl_floor_fp16 = 1e-6;
  loose.kl_factor = 3.5;
  EXPECT_FALSE(CompareWithBaseline(base, MakeRunOutputs(fp16_growth).summary, loose).Drifted());
}

TEST(DriftTest, NonFiniteKlIsDrift) {
  compare::Summary base = MakeRunOutputs(FixtureOptions{}).summary;
  compare::Summary now = base;
  now.runs[0].metrics.max_kl = std::nan("");
  DriftReport report = CompareWithBaseline(base, now, DriftThresholds{});
  ASSERT_EQ(Tripped(report, "max_kl").size(), 1u) << Describe(report);
}

TEST(DriftTest, SameTopOneRateFallingBeyondTheThresholdTrips) {
  compare::Summary base = MakeRunOutputs(FixtureOptions{}).summary;
  base.settings.mode = "teacher_forced";  // free mode: the rate is judged by the divergence step
  compare::Summary now = base;
  now.runs[0].metrics.top1_agreement = 0.96;  // baseline 1.0; drop 0.04 <= 0.05
  EXPECT_FALSE(CompareWithBaseline(base, now, DriftThresholds{}).Drifted());
  now.runs[0].metrics.top1_agreement = 0.94;
  compare::Summary free = now;
  free.settings.mode = "free";
  EXPECT_TRUE(Tripped(CompareWithBaseline(base, free, DriftThresholds{}), "top1_agreement").empty());
  DriftReport report = CompareWithBaseline(base, now, DriftThresholds{});
  auto items = Tripped(report, "top1_agreement");
  ASSERT_EQ(items.size(), 1u) << Describe(report);
  EXPECT_EQ(items[0]->run, base.runs[0].id);
  EXPECT_NE(items[0]->message.find("100.0% -> 94.0%"), std::string::npos) << items[0]->message;
}

TEST(DriftTest, NewFailingPairTrips) {
  FixtureOptions passing;
  passing.max_kl_gate = std::nullopt;  // no gates: everything passes
  compare::Summary base = MakeRunOutputs(passing).summary;
  compare::Summary now = MakeRunOutputs(FixtureOptions{}).summary;  // max_kl gate: fp16 fails
  DriftReport report = CompareWithBaseline(base, now, DriftThresholds{});
  auto items = Tripped(report, "new_failing_pair");
  ASSERT_EQ(items.size(), 1u) << Describe(report);
  EXPECT_EQ(items[0]->pair, "original@fp16/converted@fp16");
  // A pair that already failed in the baseline is not new.
  EXPECT_TRUE(Tripped(CompareWithBaseline(now, now, DriftThresholds{}), "new_failing_pair").empty());
  DriftThresholds off;
  off.fail_on_new_failing_pair = false;
  EXPECT_FALSE(CompareWithBaseline(base, now, off).Drifted());
}

TEST(DriftTest, MissingRunsAndPairsTrip) {
  compare::Summary base = MakeRunOutputs(FixtureOptions{}).summary;
  compare::Summary fewer_prompts = MakeRunOutputsForPrompts(FixtureOptions{}, {0, 1}).summary;
  DriftReport report = CompareWithBaseline(base, fewer_prompts, DriftThresholds{});
  auto missing = Tripped(report, "missing_run");
  ASSERT_EQ(missing.size(), 2u) << Describe(report);
  EXPECT_EQ(missing[0]->run, "p2/original@fp32/converted@fp32");

  compare::Summary one_pair = base;
  one_pair.pairs.pop_back();
  one_pair.runs.resize(3);
  report = CompareWithBaseline(base, one_pair, DriftThresholds{});
  ASSERT_EQ(Tripped(report, "missing_pair").size(), 1u) << Describe(report);
  EXPECT_EQ(Tripped(report, "missing_pair")[0]->pair, "original@fp16/converted@fp16");

  DriftThresholds off;
  off.fail_on_missing = false;
  EXPECT_FALSE(CompareWithBaseline(base, one_pair, off).Drifted());
  // The other direction: new runs and (passing) pairs are notes, not drift.
  FixtureOptions passing;
  passing.max_kl_gate = std::nullopt;
  compare::Summary all_passing = MakeRunOutputs(passing).summary;
  compare::Summary first_pair_only = all_passing;
  first_pair_only.pairs.pop_back();
  first_pair_only.runs.resize(3);
  report = CompareWithBaseline(first_pair_only, all_passing, DriftThresholds{});
  EXPECT_FALSE(report.Drifted()) << Describe(report);
  EXPECT_NE(Describe(report).find("has no baseline (new run)"), std::string::npos);
}

TEST(DriftTest, ChangedSettingsAreNotedNotGated) {
  compare::Summary base = MakeRunOutputs(FixtureOptions{}).summary;
  compare::Summary now = base;
  now.settings.seed = 7;
  now.settings.num_threads = 16;  // machine-dependent: not even a note
  now.libtorch_version = "2.11.0";
  DriftReport report = CompareWithBaseline(base, now, DriftThresholds{});
  EXPECT_FALSE(report.Drifted());
  std::string text = Describe(report);
  EXPECT_NE(text.find("settings.seed changed: 0 -> 7"), std::string::npos) << text;
  EXPECT_EQ(text.find("num_threads"), std::string::npos) << text;
  EXPECT_NE(text.find("libtorch 2.11.0"), std::string::npos) << text;
}

TEST(DriftThresholdsTest, ReadFromTheCaseFile) {
  TempDir dir;
  std::string path = dir.path() + "/case.json";
  WriteFileText(path, R"({"name": "x", "thresholds": {"max_kl": 0.1, "drift": {
      "first_divergence_earlier_by": 0, "kl_factor": 1.5, "kl_floor": 1e-8, "top1_drop": 0.01,
      "fail_on_new_failing_pair": false, "fail_on_missing": false}}})");
  DriftThresholds t = DriftThresholdsFromCaseFile(path);
  EXPECT_EQ(t.first_divergence_earlier_by, 0);
  EXPECT_EQ(t.kl_factor, 1.5);
  EXPECT_EQ(t.kl_floor_fp32, 1e-8);  // one kl_floor sets every precision's
  EXPECT_EQ(t.kl_floor_bf16, 1e-8);
  EXPECT_EQ(t.top1_drop, 0.01);
  EXPECT_FALSE(t.fail_on_new_failing_pair);
  EXPECT_FALSE(t.fail_on_missing);

  WriteFileText(path, R"({"name": "x", "thresholds": {"max_kl": 0.1}})");
  EXPECT_EQ(ToJson(DriftThresholdsFromCaseFile(path)), ToJson(DriftThresholds{}));
}

TEST(DriftThresholdsTest, RejectsUnknownFieldsAndBadValuesTogether) {
  try {
    DriftThresholdsFromJson({{"kl_factr", 2}, {"top1_drop", -0.1}, {"kl_factor", 0.5}}, "c.json");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("c.json.kl_factr: unknown field"), std::string::npos) << message;
    EXPECT_NE(message.find("c.json.top1_drop: expected a non-negative number"), std::string::npos);
    EXPECT_NE(message.find("c.json.kl_factor: expected >= 1"), std::string::npos) << message;
  }
}

// ---------------------------------------------------------------------------------------------
// The commands.

class DriftCliTest : public ::testing::Test {
 protected:
  std::string RunDir(const std::string& name, FixtureOptions options) {
    std::string dir = tmp_.path() + "/" + name;
    compare::RunOutputs outputs = MakeRunOutputs(options);
    outputs.summary.case_ref.path = case_path_;
    compare::WriteRunOutputs(dir, outputs);
    return dir;
  }
  int Parity(const std::string& args, std::string* output) {
    return RunCommand(ParityCli() + " " + args, output);
  }
  void SetUp() override {
    case_path_ = tmp_.path() + "/tiny.json";
    WriteFileText(case_path_, R"({"name": "tiny", "thresholds": {"drift": {"kl_factor": 2}}})");
    store_ = tmp_.path() + "/store";
  }
  TempDir tmp_;
  std::string case_path_;
  std::string store_;
};

TEST_F(DriftCliTest, BaselineThenUnchangedThenPlantedFault) {
  std::string output;
  std::string base = RunDir("base", FixtureOptions{});
  ASSERT_EQ(Parity("baseline save " + base + " --store " + store_, &output), 0) << output;
  EXPECT_NE(output.find("saved baseline for case 'tiny'"), std::string::npos) << output;
  EXPECT_TRUE(std::filesystem::exists(store_ + "/baselines/tiny.json"));

  std::string same = RunDir("same", FixtureOptions{});
  EXPECT_EQ(Parity("drift " + same + " --store " + store_, &output), 0) << output;
  EXPECT_NE(output.find("nothing moved beyond its threshold"), std::string::npos) << output;
  EXPECT_NE(output.find("thresholds from " + case_path_), std::string::npos) << output;

  FixtureOptions fault;  // a planted fault: fp16 KL up 10x, prompt 1 diverging 4 steps earlier
  fault.kl_scale_fp16 = 1e-4;
  fault.divergences[{1, 1}] = {1, "real"};
  std::string faulty = RunDir("faulty", fault);
  EXPECT_EQ(Parity("drift " + faulty + " --store " + store_, &output), 1) << output;
  EXPECT_NE(output.find("DRIFT p0/original@fp16/converted@fp16 p99_kl"), std::string::npos)
      << output;
  EXPECT_NE(output.find("DRIFT p1/original@fp16/converted@fp16 first_divergence_step: step 5 -> "
                        "step 1"),
            std::string::npos)
      << output;
  EXPECT_EQ(output.find("original@fp32"), std::string::npos) << "fp32 did not move: " << output;

  EXPECT_EQ(Parity("drift " + faulty + " --store " + store_ + " --json --no-history", &output), 1);
  nlohmann::json json = nlohmann::json::parse(output);
  EXPECT_TRUE(json["drift"].get<bool>());
  EXPECT_EQ(json["baseline"]["source"], base);

  // Two drift runs were recorded (the --no-history one was not): 2 pairs each.
  HistoryRead history = ReadHistory(store_ + "/history.jsonl");
  ASSERT_EQ(history.records.size(), 4u);
  EXPECT_EQ(history.skipped_lines, 0);
  EXPECT_EQ(history.records[1].drift, "ok");
  EXPECT_EQ(history.records[2].pair, "original@fp32/converted@fp32");
  EXPECT_EQ(history.records[2].drift, "ok");
  EXPECT_EQ(history.records[3].drift, "drift");
  EXPECT_EQ(history.records[3].moved,
            (std::vector<std::string>{"p99_kl", "max_kl", "first_divergence_step", "verdict"}));
  EXPECT_EQ(history.records[3].earliest_divergence_step, 1);

  EXPECT_EQ(Parity("trend --store " + store_, &output), 0) << output;
  std::string trend = ReadFileText(store_ + "/trend.html");
  EXPECT_NE(trend.find("original@fp16/converted@fp16"), std::string::npos);
  EXPECT_NE(trend.find("<tr class=\"drift\">"), std::string::npos);
}

TEST_F(DriftCliTest, NoBaselineIsBadInputNamingStoreAndCase) {
  std::string output;
  std::string run = RunDir("run", FixtureOptions{});
  EXPECT_EQ(Parity("drift " + run + " --store " + store_, &output), 2) << output;
  EXPECT_NE(output.find("no baseline for case 'tiny' in store '" + store_ + "'"),
            std::string::npos)
      << output;
  EXPECT_FALSE(std::filesystem::exists(store_ + "/history.jsonl"));
}

TEST_F(DriftCliTest, SaveIfMissingKeepsTheExistingBaseline) {
  std::string output;
  std::string first = RunDir("first", FixtureOptions{});
  FixtureOptions other;
  other.kl_scale_fp16 = 5e-5;
  std::string second = RunDir("second", other);
  ASSERT_EQ(Parity("baseline save " + first + " --store " + store_ + " --if-missing", &output), 0);
  ASSERT_EQ(Parity("baseline save " + second + " --store " + store_ + " --if-missing", &output), 0);
  EXPECT_NE(output.find("not replaced"), std::string::npos) << output;
  EXPECT_EQ(BaselineStore(store_).Load("tiny")->source, first);
  ASSERT_EQ(Parity("baseline save " + second + " --store " + store_, &output), 0);
  EXPECT_NE(output.find("replacing the baseline"), std::string::npos) << output;
  EXPECT_EQ(BaselineStore(store_).Load("tiny")->source, second);
  ASSERT_EQ(Parity("baseline record " + second + " --store " + store_, &output), 0) << output;
  EXPECT_EQ(ReadHistory(store_ + "/history.jsonl").records.at(0).drift, "recorded");
}

TEST_F(DriftCliTest, MalformedDriftThresholdsAreBadInput) {
  std::string output;
  std::string run = RunDir("run", FixtureOptions{});
  ASSERT_EQ(Parity("baseline save " + run + " --store " + store_, &output), 0);
  WriteFileText(case_path_, R"({"name": "tiny", "thresholds": {"drift": {"kl_factor": "2"}}})");
  EXPECT_EQ(Parity("drift " + run + " --store " + store_, &output), 2) << output;
  EXPECT_NE(output.find("thresholds.drift.kl_factor"), std::string::npos) << output;
}

// scripts/nightly.sh with a stand-in `parity` whose `run` copies prepared outputs for the case and
// whose other commands are the real ones. Case alpha has a baseline and drifted overnight; case
// beta has none yet, so the script saves one and says so.
TEST_F(DriftCliTest, NightlyScriptSavesMissingBaselinesAndGatesOnDrift) {
  std::string cases = tmp_.path() + "/cases", prepared = tmp_.path() + "/prepared";
  for (const char* name : {"alpha", "beta"}) {
    WriteFileText(cases + "/" + name + ".json", std::string("{\"name\": \"") + name + "\"}");
    FixtureOptions options;
    options.case_name = name;
    options.max_kl_gate = std::nullopt;
    compare::RunOutputs outputs = MakeRunOutputs(options);
    if (std::string(name) == "alpha") {
      BaselineStore(store_).Save(outputs.summary, "yesterday");
      options.kl_scale_fp16 = 1e-4;  // alpha's FP16 KL grows 10x overnight
      outputs = MakeRunOutputs(options);
    }
    compare::WriteRunOutputs(prepared + "/" + name, outputs);
  }
  std::string stub = tmp_.path() + "/parity-stub.sh";
  WriteFileText(stub, "#!/usr/bin/env bash\n"
                      "if [ \"$1\" = run ]; then\n"
                      "  name=$(basename \"$2\" .json); out=\"\"\n"
                      "  while [ $# -gt 0 ]; do [ \"$1\" = --out ] && out=\"$2\"; shift; done\n"
                      "  mkdir -p \"$out\" && cp \"" + prepared + "/$name/\"* \"$out/\"\n"
                      "  exit 0\n"
                      "fi\n"
                      "exec '" + ParityCli() + "' \"$@\"\n");
  std::filesystem::permissions(stub, std::filesystem::perms::owner_all);
  std::string env = "PARITY_BIN='" + stub + "' PARITY_STORE='" + store_ + "' ";
  std::string script = "bash '" + std::string(PARITY_SOURCE_DIR) + "/scripts/nightly.sh'";
  std::string output;

  EXPECT_EQ(RunCommand(env + "PARITY_CASES='" + cases + "' PARITY_NIGHTLY_OUT='" + tmp_.path() +
                           "/night' " + script,
                       &output),
            1)
      << output;
  EXPECT_NE(output.find("baseline for case 'alpha' exists"), std::string::npos) << output;
  EXPECT_NE(output.find("saved baseline for case 'beta'"), std::string::npos) << output;
  EXPECT_NE(output.find("DRIFT p0/original@fp16/converted@fp16 p99_kl"), std::string::npos)
      << output;
  EXPECT_NE(output.find("drift in: alpha\n"), std::string::npos) << output;
  EXPECT_TRUE(std::filesystem::exists(tmp_.path() + "/night/alpha/report.html"));
  EXPECT_TRUE(std::filesystem::exists(tmp_.path() + "/night/beta/report.md"));
  EXPECT_TRUE(std::filesystem::exists(tmp_.path() + "/night/trend.html"));
  EXPECT_TRUE(BaselineStore(store_).Has("beta"));
  EXPECT_EQ(ReadHistory(store_ + "/history.jsonl").records.size(), 4u);  // 2 cases x 2 pairs

  std::string empty = tmp_.path() + "/no-cases";
  std::filesystem::create_directories(empty);
  EXPECT_EQ(RunCommand(env + "PARITY_CASES='" + empty + "' " + script, &output), 2) << output;
  EXPECT_NE(output.find("no cases in"), std::string::npos) << output;
}

// ---------------------------------------------------------------------------------------------
// End to end on the trained fixture: a baseline from the fixture against an exact copy, then
// `parity drift` against the copy again (exit 0) and against a planted-fault copy (exit 1, naming
// the metric and the pair).

// Multiplies every element of a BF16 tensor in a safetensors file by `factor` (round to nearest
// even), in place: a subtle planted fault on disk.
void ScaleBf16Tensor(const std::string& file, const std::string& tensor, float factor) {
  std::string bytes = ReadFileText(file);
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, header_size));
  ASSERT_TRUE(header.contains(tensor)) << file;
  ASSERT_EQ(header[tensor]["dtype"], "BF16");
  size_t begin = 8 + header_size + header[tensor]["data_offsets"][0].get<size_t>();
  size_t end = 8 + header_size + header[tensor]["data_offsets"][1].get<size_t>();
  for (size_t i = begin; i < end; i += 2) {
    uint16_t bf16 = 0;
    std::memcpy(&bf16, bytes.data() + i, 2);
    uint32_t bits = static_cast<uint32_t>(bf16) << 16;
    float value = 0;
    std::memcpy(&value, &bits, 4);
    value *= factor;
    std::memcpy(&bits, &value, 4);
    bf16 = static_cast<uint16_t>((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    std::memcpy(bytes.data() + i, &bf16, 2);
  }
  WriteFileText(file, bytes);
}

TEST(DriftFixtureTest, PlantedFaultCopyDriftsUnchangedCopyDoesNot) {
  TempDir tmp;
  std::string fixture = std::string(PARITY_SOURCE_DIR) + "/cases/fixtures/internlm2-tiny";
  // Both candidates are called "candidate" so the pair ids match: internlm2-tiny@fp32/candidate@fp32;
  // --name makes them one case (by default each pair of directories is a case of its own).
  std::string good = tmp.path() + "/good/candidate", bad = tmp.path() + "/bad/candidate";
  for (const std::string& copy : {good, bad}) {
    std::filesystem::create_directories(copy);
    std::filesystem::copy(fixture, copy, std::filesystem::copy_options::recursive);
  }
  // 5% on one attention output projection: small enough that the greedy text may not change.
  ScaleBf16Tensor(bad + "/model-00002-of-00002.safetensors", "model.layers.2.attention.wo.weight",
                  1.05f);
  std::string store = tmp.path() + "/store", output;
  auto compare_with = [&](const std::string& candidate, const std::string& out) {
    return RunCommand(ParityCli() + " compare " + fixture + " " + candidate +
                          " --prompt-tokens 1,300,301 --prompt-tokens 1,500,20,7 --dtypes fp32"
                          " --max-new-tokens 12 --name candidate-check --out " + out,
                      &output);
  };
  ASSERT_EQ(compare_with(good, tmp.path() + "/base"), 0) << output;
  ASSERT_EQ(RunCommand(ParityCli() + " baseline save " + tmp.path() + "/base --store " + store,
                       &output),
            0)
      << output;

  ASSERT_EQ(compare_with(good, tmp.path() + "/same"), 0) << output;
  EXPECT_EQ(RunCommand(ParityCli() + " drift " + tmp.path() + "/same --store " + store, &output),
            0)
      << output;

  // compare fails a real difference by default (the logits differ beyond rounding)
  ASSERT_EQ(compare_with(bad, tmp.path() + "/faulty"), 1) << output;
  EXPECT_EQ(RunCommand(ParityCli() + " drift " + tmp.path() + "/faulty --store " + store, &output),
            1)
      << output;
  EXPECT_NE(output.find("DRIFT p0/internlm2-tiny@fp32/candidate@fp32 p99_kl: 0 -> "),
            std::string::npos)
      << output;
  EXPECT_NE(output.find("DRIFT p1/internlm2-tiny@fp32/candidate@fp32 max_kl: 0 -> "),
            std::string::npos)
      << output;
}

}  // namespace
}  // namespace parity::report
