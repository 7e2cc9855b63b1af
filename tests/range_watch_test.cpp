// The overflow and saturation watch of compare (compare/overflow.h, compare/range_watch.h), on the
// 12-layer hidden-64 BF16 model of precision_bisect_test with a planted fault whose answer is known:
// layer 5's MLP output (its down projection) scaled so that the residual stream after that layer
// reaches a chosen fraction of FP16's 65504. The scale is calibrated from an FP32 run of the model
// (the residual there is ~scale x the MLP output), then the watch must find:
//  - at 70% of 65504: a saturation risk first at "layer 5 mlp" on the FP16 side, no point out of
//    range, and the same verdict as without the watch;
//  - at ~150%: FP16 overflows at "layer 5 mlp" (step 0), and compare's verdict is
//    precision_failure pointing there;
//  - FP32 and BF16 sides report the same magnitudes as fractions of their own ranges (~1e-34).
// Also: the verdict rules with a watch (finite logits, activations out of range -> precision_failure
// from "range_watch"; a point out of range only after the divergence step does not count), the
// JSON round trip, the terminal/markdown/HTML lines, and the command line's auto/on/off.
#include <cmath>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/compare/overflow.h"
#include "harness/compare/range_watch.h"
#include "harness/compare/run_result.h"
#include "harness/compare/suite.h"
#include "harness/compare/verdict.h"
#include "harness/forward/causal_lm.h"
#include "harness/report/html.h"
#include "harness/report/markdown.h"
#include "harness/report/terminal.h"
#include "tests/precision_models.h"
#include "tests/test_util.h"

namespace parity {
namespace {

using forward::ParsePrecisionPolicy;
using forward::Precision;

constexpr int64_t kLayer = 5;
constexpr double kFp16Max = 65504.0;

std::unique_ptr<forward::CausalLM> Build(const model::ModelConfig& config,
                                         const forward::Weights& weights,
                                         const std::string& policy) {
  return forward::MakeCausalLM(config, weights,
                               forward::MakeNumerics(ParsePrecisionPolicy(policy), c10::kCPU));
}

const compare::RangePoint& PointNamed(const compare::RangeWatch& watch, const std::string& name) {
  for (const compare::RangePoint& p : watch.points) {
    if (p.name == name) return p;
  }
  throw std::runtime_error("no point " + name);
}

compare::RunRequest Request(const std::string& b_precision, bool watch) {
  compare::RunRequest request;
  request.id = "watch";
  request.prompt_tokens = testing::PrecisionTestPrompt();
  request.pair = {{"m", "fp32", "", false}, {"m", b_precision, "", b_precision == "fp16"}};
  request.precision_a = Precision::kFP32;
  request.precision_b = ParsePrecisionPolicy(b_precision).base;
  request.greedy.max_new_tokens = 8;
  request.range_watch = watch;
  return request;
}

// The planted models: the base model, and the scale that puts layer 5's MLP residual at
// `fraction` of 65504 over a whole 8-step run. The residual there is dominated by the scaled MLP
// output, so it grows linearly with the scale: a first estimate from the prompt, then two
// corrections from FP32 runs of the 8 steps (their generated tokens move the maximum a little).
struct Planted {
  model::ModelConfig config = testing::PrecisionTestConfig(12, 64);
  forward::Weights base = testing::PrecisionTestWeights(config, 3.0, 21);

  double LargestAtLayer(double scale, bool whole_run) const {
    auto fp32 = Build(config, testing::WithScaledMlpOutput(base, kLayer, scale), "fp32");
    if (!whole_run) {
      return PointNamed(compare::WatchSideRange(*fp32, testing::PrecisionTestPrompt(), {}, 1, 0.5),
                        "layer 5 mlp").max_abs;
    }
    const compare::RunOutcome run =
        compare::RunPair(*fp32, *fp32, Request("fp32", true), compare::IdTextDecoder());
    return PointNamed(*run.run.range_a, "layer 5 mlp").max_abs;
  }
  double ScaleFor(double fraction) const {
    constexpr double kTrial = 1000.0;
    double scale = fraction * kFp16Max / (LargestAtLayer(kTrial, false) / kTrial);
    for (int i = 0; i < 2; ++i) scale *= fraction * kFp16Max / LargestAtLayer(scale, true);
    return scale;
  }
  forward::Weights At(double fraction) const {
    return testing::WithScaledMlpOutput(base, kLayer, ScaleFor(fraction));
  }
};

TEST(RangeWatch, SaturationRiskIsNamedAtTheLayerAndLeavesTheVerdictAlone) {
  const Planted planted;
  const forward::Weights weights = planted.At(0.7);
  auto fp32 = Build(planted.config, weights, "fp32");
  auto fp16 = Build(planted.config, weights, "fp16");
  const compare::RunOutcome without =
      compare::RunPair(*fp32, *fp16, Request("fp16", false), compare::IdTextDecoder());
  const compare::RunOutcome with =
      compare::RunPair(*fp32, *fp16, Request("fp16", true), compare::IdTextDecoder());
  EXPECT_FALSE(without.run.range_b.has_value());
  ASSERT_TRUE(with.run.range_a && with.run.range_b);
  const compare::RangeWatch& b = *with.run.range_b;
  std::cout << compare::DescribeRangeWatch("A", *with.run.range_a) << "\n"
            << compare::DescribeRangeWatch("B", b) << "\n";
  EXPECT_EQ(b.first_saturating.value_or("none"), "layer 5 mlp");
  EXPECT_FALSE(b.first_out_of_range.has_value());
  const compare::RangePoint& p = PointNamed(b, "layer 5 mlp");
  EXPECT_EQ(p.precision, "fp16");
  EXPECT_EQ(p.largest_finite, kFp16Max);
  // Calibrated to 70%; FP16 rounding of the weights' products moves it by well under 5%.
  EXPECT_NEAR(p.fraction(), 0.7, 0.035);
  EXPECT_TRUE(p.saturating);
  // Every point before it keeps its headroom.
  for (const compare::RangePoint& q : b.points) {
    if (q.name == "layer 5 mlp") break;
    EXPECT_FALSE(q.saturating) << q.name << " " << q.fraction();
  }
  // The verdict (kind, step) is the one the run gets without the watch.
  EXPECT_EQ(with.run.verdict_kind, without.run.verdict_kind);
  EXPECT_EQ(with.run.first_divergence.has_value(), without.run.first_divergence.has_value());
  if (with.run.first_divergence) {
    EXPECT_EQ(with.run.first_divergence->step, without.run.first_divergence->step);
    EXPECT_NE(with.run.first_divergence->kind, "precision_failure");
  }
  // The FP32 side: the same magnitude (to FP16 rounding), as a fraction of FP32's range.
  const compare::RangePoint& a = PointNamed(*with.run.range_a, "layer 5 mlp");
  EXPECT_EQ(a.precision, "fp32");
  EXPECT_NEAR(a.max_abs / p.max_abs, 1.0, 0.01);
  EXPECT_DOUBLE_EQ(a.fraction(), a.max_abs / 3.4028234663852886e38);
  EXPECT_LT(a.fraction(), 1e-33);
  EXPECT_FALSE(with.run.range_a->first_saturating.has_value());
}

TEST(RangeWatch, Fp16OverflowIsAPrecisionFailureAtTheLayerAndBf16StaysInRange) {
  const Planted planted;
  const forward::Weights weights = planted.At(1.5);
  auto fp32 = Build(planted.config, weights, "fp32");
  auto fp16 = Build(planted.config, weights, "fp16");
  auto bf16 = Build(planted.config, weights, "bf16");
  const compare::RunOutcome out =
      compare::RunPair(*fp32, *fp16, Request("fp16", true), compare::IdTextDecoder());
  ASSERT_TRUE(out.run.range_b.has_value());
  std::cout << compare::DescribeRangeWatch("B", *out.run.range_b) << "\n";
  EXPECT_EQ(out.run.range_b->first_out_of_range.value_or("none"), "layer 5 mlp");
  EXPECT_EQ(out.run.range_b->first_saturating.value_or("none"), "layer 5 mlp");
  EXPECT_EQ(PointNamed(*out.run.range_b, "layer 5 mlp").first_out_of_range_step, 0);
  EXPECT_FALSE(out.run.range_a->first_out_of_range.has_value());
  ASSERT_TRUE(out.run.first_divergence.has_value());
  EXPECT_EQ(out.run.first_divergence->kind, "precision_failure");
  EXPECT_EQ(out.run.first_divergence->evidence.failing_side.value_or("-"), "b");
  EXPECT_EQ(out.run.first_divergence->evidence.overflow_point.value_or("none"), "layer 5 mlp");
  // BF16 holds what FP16 cannot (its own tokens after step 0 move the maximum, but past 65504):
  // in range, with ~1e34 to spare.
  const compare::RunOutcome bf =
      compare::RunPair(*fp32, *bf16, Request("bf16", true), compare::IdTextDecoder());
  ASSERT_TRUE(bf.run.range_b.has_value());
  EXPECT_FALSE(bf.run.range_b->first_out_of_range.has_value());
  EXPECT_FALSE(bf.run.range_b->first_saturating.has_value());
  const compare::RangePoint& p = PointNamed(*bf.run.range_b, "layer 5 mlp");
  EXPECT_EQ(p.precision, "bf16");
  EXPECT_GT(p.max_abs, kFp16Max);
  EXPECT_DOUBLE_EQ(p.fraction(), p.max_abs / 3.3895313892515355e38);
  EXPECT_LT(p.fraction(), 1e-33);
  EXPECT_TRUE(!bf.run.first_divergence || bf.run.first_divergence->kind != "precision_failure");
}

// A watch with one point out of range from `step` on (finite logits everywhere).
compare::RangeWatch WatchOutOfRangeAt(int64_t step) {
  compare::RangeWatch w = compare::StartRangeWatch(Precision::kFP16, 0.5);
  compare::AddRangePoint(w, {"embedding", "fp16", kFp16Max, 3.0, 0, false, std::nullopt});
  compare::AddRangePoint(w, {"layer 0 mlp", "fp16", kFp16Max, 1e3, 0, false, std::nullopt});
  compare::AddRangePoint(w, {"layer 1 mlp", "fp16", kFp16Max, 7e3, 5, false, step});
  return w;
}

TEST(RangeWatchVerdict, OutOfRangeActivationsBeforeTheStepAreAPrecisionFailure) {
  const std::vector<double> a = {1.0, 2.0, 0.5}, b = {2.0, 1.0, 0.5};
  compare::StepRecord at;
  at.step = 3;
  compare::VerdictInputs in;
  in.a = &a;
  in.b = &b;
  in.token_a = 1;
  in.token_b = 0;
  in.precision_a = Precision::kFP32;
  in.precision_b = Precision::kFP16;
  in.at = &at;
  const compare::RangeWatch early = WatchOutOfRangeAt(2), late = WatchOutOfRangeAt(4);
  in.side_b.range = &early;
  compare::Classification c = compare::ClassifyDivergence(in);
  EXPECT_EQ(c.kind, compare::DivergenceKind::kPrecisionFailure);
  EXPECT_EQ(c.evidence.source, "range_watch");
  EXPECT_EQ(c.evidence.failing_side.value_or("-"), "b");
  EXPECT_EQ(c.evidence.overflow_point.value_or("-"), "layer 1 mlp");
  // Out of range only after the divergence step: not what made this flip.
  in.side_b.range = &late;
  c = compare::ClassifyDivergence(in);
  EXPECT_NE(c.kind, compare::DivergenceKind::kPrecisionFailure);
  // Without a flip: the same rule over the same-context steps.
  std::vector<compare::StepRecord> steps(4);
  for (int64_t i = 0; i < 4; ++i) steps[i].step = i;
  c = compare::ClassifyWithoutFlip(steps, Precision::kFP32, Precision::kFP16, 2, std::nullopt, {},
                                   {"", &early});
  EXPECT_EQ(c.kind, compare::DivergenceKind::kPrecisionFailure);
  EXPECT_EQ(c.evidence.source, "range_watch");
  c = compare::ClassifyWithoutFlip(steps, Precision::kFP32, Precision::kFP16, 2, std::nullopt, {},
                                   {"", &late});
  EXPECT_EQ(c.kind, compare::DivergenceKind::kRounding);
}

TEST(RangeWatchOutput, RoundTripsAndShowsInEveryReport) {
  compare::RunOutputs outputs;
  compare::Run run;
  run.id = "p0/m@fp32/m@fp16";
  run.pair = {{"m", "fp32", "fp32 (cpu)", false}, {"m", "fp16", "fp16 (emulated on cpu)", true}};
  run.range_a = compare::StartRangeWatch(Precision::kFP32, 0.5);
  compare::AddRangePoint(*run.range_a,
                         {"layer 0 mlp", "fp32", 3.4028234663852886e38, 4.5e4, 0, false, {}});
  run.range_b = compare::StartRangeWatch(Precision::kFP16, 0.5);
  compare::AddRangePoint(*run.range_b, {"layer 0 mlp", "fp16", kFp16Max, 4.5e4, 0, false, {}});
  outputs.summary.runs.push_back(run);
  outputs.summary.settings.range_watch = "on";
  TempDir dir;
  compare::WriteRunOutputs(dir.path(), outputs);
  const compare::RunOutputs back = compare::ReadRunOutputs(dir.path());
  ASSERT_EQ(back.summary.runs.size(), 1u);
  ASSERT_TRUE(back.summary.runs[0].range_b.has_value());
  EXPECT_EQ(compare::ToJson(*back.summary.runs[0].range_b), compare::ToJson(*run.range_b));
  EXPECT_EQ(compare::ToJson(*back.summary.runs[0].range_a), compare::ToJson(*run.range_a));
  EXPECT_EQ(back.summary.settings.range_watch, "on");
  EXPECT_EQ(back.summary.runs[0].range_b->first_saturating.value_or("-"), "layer 0 mlp");
  const std::string line = "B fp16: saturation risk from layer 0 mlp (>= 0.5 of the range)";
  EXPECT_NE(report::FormatSummaryTable(back.summary).find("range watch: " + line),
            std::string::npos)
      << report::FormatSummaryTable(back.summary);
  EXPECT_NE(report::RenderMarkdown(back, std::nullopt, std::nullopt)
                .find("range watch: B fp16: saturation risk from layer 0 mlp (\\>= 0.5 of the range)"),
            std::string::npos)
      << report::RenderMarkdown(back, std::nullopt, std::nullopt);
  EXPECT_NE(report::RenderHtml(back, std::nullopt, std::nullopt).find("Range watch"),
            std::string::npos);
}

TEST(RangeWatchCli, OnForFp16SidesOffForBf16UnlessAsked) {
  const Planted planted;
  TempDir dir;
  const std::string model = dir.path() + "/m";
  testing::WritePrecisionTestCheckpoint(model, planted.config, planted.At(0.7));
  std::string output;
  auto compare = [&](const std::string& b, const std::string& flags) {
    const std::string out = dir.path() + "/out";
    RemoveTree(out);
    const std::string command = ParityCli() + " compare " + model + "@fp32 " + model + "@" + b +
                                " --prompt-tokens 1,40,41,42,43 --max-new-tokens 3 "
                                "--no-fail-on-real-divergence --out " + out + " " + flags;
    EXPECT_EQ(RunCommand(command, &output), 0) << output;
    return compare::ReadRunOutputs(out).summary;
  };
  compare::Summary s = compare("fp16", "");
  ASSERT_EQ(s.runs.size(), 1u);
  EXPECT_EQ(s.settings.range_watch, "auto");
  ASSERT_TRUE(s.runs[0].range_b.has_value());
  EXPECT_EQ(s.runs[0].range_b->first_saturating.value_or("none"), "layer 5 mlp");
  EXPECT_NE(output.find("range watch: B fp16: saturation risk from layer 5 mlp"),
            std::string::npos) << output;
  s = compare("bf16", "");
  EXPECT_FALSE(s.runs[0].range_b.has_value());
  s = compare("bf16", "--range-watch --saturation-fraction 1e-40");
  ASSERT_TRUE(s.runs[0].range_b.has_value());
  EXPECT_EQ(s.settings.saturation_fraction, 1e-40);
  EXPECT_EQ(s.runs[0].range_b->first_saturating.value_or("none"), "embedding");
  s = compare("fp16", "--no-range-watch");
  EXPECT_EQ(s.settings.range_watch, "off");
  EXPECT_FALSE(s.runs[0].range_b.has_value());
  // A fraction outside (0, 1] is refused, naming the field.
  EXPECT_EQ(RunCommand(ParityCli() + " compare " + model + "@fp32 " + model + "@fp16 "
                       "--prompt-tokens 1,40 --saturation-fraction 2 --out " + dir.path() +
                       "/bad", &output), 2);
  EXPECT_NE(output.find("saturation_fraction"), std::string::npos) << output;
}

}  // namespace
}  // namespace parity
