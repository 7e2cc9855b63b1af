// SIGINT in the parts of a case run that do not decode in lockstep: a pair decoded one side after
// the other (its models do not fit in memory together) and the FP64 oracle. The stop request is
// made at an exact point of the run, from a log sink that sees the progress line of that point (the
// signal handler does nothing else than SetInterruptRequested(true)), so the tests are
// deterministic; cli_hardening_test.cpp delivers a real SIGINT to a child process.
#include <algorithm>
#include <memory>
#include <mutex>
#include <string>

#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "harness/compare/case.h"
#include "harness/compare/suite.h"
#include "harness/core/interrupt.h"
#include "harness/forward/memory_plan.h"
#include "harness/io/checkpoint.h"
#include "harness/model/config.h"
#include "tests/test_util.h"

namespace parity {
namespace {

// Requests a stop (as the SIGINT handler does) when a log line containing `trigger` is written.
class InterruptOnLog : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit InterruptOnLog(std::string trigger) : trigger_(std::move(trigger)) {}
  bool fired() const { return fired_; }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (std::string(msg.payload.data(), msg.payload.size()).find(trigger_) != std::string::npos) {
      fired_ = true;
      SetInterruptRequested(true);
    }
  }
  void flush_() override {}

 private:
  std::string trigger_;
  bool fired_ = false;
};

// Installs the sink on the default logger for the scope; clears any stop request on the way out.
class ScopedInterruptOnLog {
 public:
  explicit ScopedInterruptOnLog(const std::string& trigger)
      : sink_(std::make_shared<InterruptOnLog>(trigger)) {
    SetInterruptRequested(false);
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~ScopedInterruptOnLog() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    SetInterruptRequested(false);
  }
  bool fired() const { return sink_->fired(); }

 private:
  std::shared_ptr<InterruptOnLog> sink_;
};

class InterruptSuiteTest : public ::testing::Test {
 protected:
  // The fixture against its byte-identical copy, at FP32, on four token prompts.
  compare::Case MakeCase(bool oracle) {
    const std::string twin = CopyTrainedFixture(dir_.path() + "/twin");
    nlohmann::ordered_json json = {
        {"name", "interrupt"},
        {"models", {{"original", {{"path", TrainedFixtureDir()}}}, {"twin", {{"path", twin}}}}},
        {"prompts",
         {{{"tokens", {1, 300}}}, {{"tokens", {1, 301}}}, {{"tokens", {1, 302}}},
          {{"tokens", {1, 303}}}}},
        {"dtypes", {oracle ? "bf16" : "fp32"}},
        {"mode", "free"},
        {"max_new_tokens", kSteps},
        {"oracle", oracle}};
    return compare::ParseCase(json, dir_.path() + "/case.json");
  }
  compare::SuiteOptions Options() {
    compare::SuiteOptions options;
    options.cache_dir = dir_.path() + "/cache";
    return options;
  }

  static constexpr int64_t kSteps = 12;
  TempDir dir_;
};

TEST_F(InterruptSuiteTest, SidesDecodedAloneKeepTheRunsWhoseTwoSidesFinished) {
  compare::Case c = MakeCase(/*oracle=*/false);
  // A memory limit that holds one model but not two: the pair is decoded one side after the other.
  const model::ModelConfig config = model::ParseConfig(
      io::ReadJsonFile(TrainedFixtureDir() + "/config.json"), TrainedFixtureDir());
  const int64_t one = forward::EstimateFootprint(config, forward::Precision::kFP32, c10::kCPU,
                                                 2 + kSteps, "original@fp32")
                          .total();
  compare::SuiteOptions options = Options();
  options.memory_limit_bytes = one * 3 / 2;

  ScopedInterruptOnLog interrupt("(side b) decoded alone: prompt 2/4");
  compare::RunOutputs outputs = compare::RunCase(c, options);
  ASSERT_TRUE(interrupt.fired()) << "the pair was not decoded one side after the other";
  EXPECT_TRUE(outputs.summary.interrupted);
  // Prompts 0 and 1 have both sides: finished, measured and kept; 2 and 3 have only side a.
  ASSERT_EQ(outputs.summary.runs.size(), 2u);
  for (const compare::Run& run : outputs.summary.runs) {
    EXPECT_GT(run.metrics.steps, 0) << run.id;
    EXPECT_FALSE(run.first_divergence.has_value()) << run.id << ": the twin is byte-identical";
  }
  EXPECT_EQ(outputs.summary.runs[0].prompt_index, 0);
  EXPECT_EQ(outputs.summary.runs[1].prompt_index, 1);
}

TEST_F(InterruptSuiteTest, InterruptDuringTheOracleKeepsTheDecodedRunsWithoutIt) {
  compare::Case c = MakeCase(/*oracle=*/true);
  // The line written once A's FP64 model has run; B's comes next, stream by stream.
  ScopedInterruptOnLog interrupt("FP64 oracle: original@fp64");
  compare::RunOutputs outputs = compare::RunCase(c, Options());
  ASSERT_TRUE(interrupt.fired());
  EXPECT_TRUE(outputs.summary.interrupted);
  ASSERT_EQ(outputs.summary.runs.size(), 4u) << "every run was decoded before the oracle started";
  for (const compare::Run& run : outputs.summary.runs) {
    EXPECT_GT(run.metrics.steps, 0) << run.id;
    EXPECT_FALSE(run.oracle.has_value()) << run.id << ": the oracle did not finish";
  }
}

TEST_F(InterruptSuiteTest, AnUninterruptedOracleRunHasItsOracle) {
  // The control for the test above: the same case without a stop request.
  SetInterruptRequested(false);
  compare::RunOutputs outputs = compare::RunCase(MakeCase(/*oracle=*/true), Options());
  EXPECT_FALSE(outputs.summary.interrupted);
  ASSERT_EQ(outputs.summary.runs.size(), 4u);
  for (const compare::Run& run : outputs.summary.runs) {
    EXPECT_TRUE(run.oracle.has_value()) << run.id;
  }
}

}  // namespace
}  // namespace parity
