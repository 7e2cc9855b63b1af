// Precision bisection (diagnose/precision_bisect.h) and the overflow watch, on models with a known
// answer:
//  - a 12-layer BF16 model whose layer-5 MLP overflows FP16 inside (gate and up x300, down /300^2:
//    silu(g) * u passes 65504 while the MLP's output keeps its size; BF16 and FP32 stay finite):
//    compare calls @fp32 vs @fp16 a precision_failure at layer 5's MLP, localize's range watch
//    names the same point, and bisection answers "layer 5 MLP" and shows nothing smaller does;
//  - the 24-layer BF16 model of verdict_labelled_test (hidden 128, logit scale 3): @fp32 vs @bf16
//    splits by rounding; bisection returns a set whose FP32 upgrade, rerun here independently of the
//    search, removes the split, and prints its runs against the number of modules.
#include <iostream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "harness/compare/suite.h"
#include "harness/diagnose/explain.h"
#include "harness/diagnose/localize.h"
#include "harness/diagnose/precision_bisect.h"
#include "harness/forward/causal_lm.h"
#include "tests/precision_models.h"
#include "tests/test_util.h"

namespace parity {
namespace {

using forward::ParsePrecisionPolicy;
using forward::Precision;

constexpr int64_t kOverflowLayer = 5;

struct OverflowModel {
  model::ModelConfig config = testing::PrecisionTestConfig(12, 64);
  forward::Weights weights = testing::WithFp16MlpOverflow(
      testing::PrecisionTestWeights(config, 3.0, 21), kOverflowLayer, 300.0);
};

std::unique_ptr<forward::CausalLM> Build(const model::ModelConfig& config,
                                         const forward::Weights& weights,
                                         const std::string& policy) {
  return forward::MakeCausalLM(config, weights,
                               forward::MakeNumerics(ParsePrecisionPolicy(policy), c10::kCPU));
}

TEST(PrecisionOverflow, CompareCallsItAPrecisionFailureAtTheLayer) {
  const OverflowModel m;
  auto fp32 = Build(m.config, m.weights, "fp32");
  auto fp16 = Build(m.config, m.weights, "fp16");
  auto bf16 = Build(m.config, m.weights, "bf16");
  compare::RunRequest request;
  request.id = "overflow";
  request.prompt_tokens = testing::PrecisionTestPrompt();
  request.pair = {{"m", "fp32", "", false}, {"m", "fp16", "", true}};
  request.precision_a = Precision::kFP32;
  request.precision_b = Precision::kFP16;
  request.greedy.max_new_tokens = 8;
  const compare::RunOutcome out = compare::RunPair(*fp32, *fp16, request, compare::IdTextDecoder());
  ASSERT_TRUE(out.run.first_divergence.has_value());
  EXPECT_EQ(out.run.first_divergence->kind, "precision_failure");
  EXPECT_EQ(out.run.first_divergence->evidence.overflow_point.value_or("none"), "layer 5 mlp");
  // The same model in BF16 has no such failure (its range holds the product).
  request.pair.b = {"m", "bf16", "", false};
  request.precision_b = Precision::kBF16;
  const compare::RunOutcome bf = compare::RunPair(*fp32, *bf16, request, compare::IdTextDecoder());
  EXPECT_TRUE(!bf.run.first_divergence || bf.run.first_divergence->kind != "precision_failure");
}

TEST(PrecisionOverflow, LocalizeRangeWatchNamesTheLayer) {
  const OverflowModel m;
  auto fp16 = Build(m.config, m.weights, "fp16");
  auto fp32 = Build(m.config, m.weights, "fp32");
  auto a64 = Build(m.config, m.weights, "fp64");
  auto b64 = Build(m.config, m.weights, "fp64");
  const diagnose::LocalizeResult r =
      diagnose::LocalizeTokens(*fp32, *fp16, *a64, *b64, testing::PrecisionTestPrompt());
  ASSERT_TRUE(r.range_a && r.range_b);
  EXPECT_FALSE(r.range_a->first_out_of_range.has_value());
  EXPECT_EQ(r.range_b->first_out_of_range.value_or("none"), "layer 5 mlp");
  EXPECT_EQ(r.range_b->first_non_finite.value_or("none"), "layer 5 mlp");
  // Layers before it stay in range with headroom, and are reported with their magnitudes.
  ASSERT_GT(r.range_b->points.size(), 3u);
  EXPECT_EQ(r.range_b->points[0].name, "embedding");
  EXPECT_GT(r.range_b->points[0].max_abs, 0.0);
  EXPECT_EQ(r.range_b->points[0].largest_finite, 65504.0);
  EXPECT_FALSE(r.range_b->points[0].out_of_range());
  std::cout << diagnose::DescribeRangeWatch("A", *r.range_a) << "\n"
            << diagnose::DescribeRangeWatch("B", *r.range_b) << "\n";
}

TEST(PrecisionBisect, Fp16OverflowBisectsToTheLayerMlp) {
  const OverflowModel m;
  const diagnose::ModelSource source = diagnose::WeightsSource("m", m.config, m.weights);
  diagnose::BisectOptions options;
  options.precision_a = Precision::kFP32;
  options.precision_b = Precision::kFP16;
  options.max_new_tokens = 16;
  const diagnose::BisectResult r =
      diagnose::BisectPrecision(source, source, testing::PrecisionTestPrompt(), options);
  std::cout << diagnose::FormatBisect(r);
  ASSERT_EQ(r.status, "found");
  EXPECT_EQ(r.answer_text, "mlp[5]");
  EXPECT_NE(r.sentence.find("raising layer 5 MLP to fp32 removes the split at step 0; nothing "
                            "smaller does"), std::string::npos) << r.sentence;
  EXPECT_LT(static_cast<int64_t>(r.runs.size()), r.module_instances);
}

TEST(PrecisionBisect, Bf16DivergenceOfThe24LayerModelIsRemovedByTheAnswer) {
  const model::ModelConfig config = testing::PrecisionTestConfig(24, 128);
  const forward::Weights weights = testing::PrecisionTestWeights(config, 3.0, 7);
  const diagnose::ModelSource source = diagnose::WeightsSource("m", config, weights);
  diagnose::BisectOptions options;
  options.precision_a = Precision::kFP32;
  options.precision_b = Precision::kBF16;
  options.max_new_tokens = 48;
  const auto prompt = testing::PrecisionTestPrompt(0);
  const diagnose::BisectResult r = diagnose::BisectPrecision(source, source, prompt, options);
  std::cout << diagnose::FormatBisect(r)
            << fmt::format("runs taken: {} for {} module instances ({} kinds x {} layers + "
                           "model-wide)\n", r.runs.size(), r.module_instances, r.module_kinds,
                           r.layers);
  ASSERT_TRUE(r.baseline_split.has_value()) << "the test model must diverge at bf16";
  ASSERT_EQ(r.status, "found");
  // Rerun outside the search: the answer applied to B removes the split.
  const forward::PrecisionPolicy upgraded =
      diagnose::WithUpgrade(Precision::kBF16, r.answer, Precision::kFP32);
  auto a = source.Build(forward::MakeNumerics(Precision::kFP32, c10::kCPU));
  auto b = source.Build(forward::MakeNumerics(upgraded, c10::kCPU));
  const diagnose::PairStats stats = diagnose::RunPairStats(*a, *b, prompt, 48, {});
  EXPECT_FALSE(stats.first_divergence.has_value()) << upgraded.Text();
  // ... and is smaller than the whole model.
  EXPECT_NE(r.answer_text, "all");
  EXPECT_LT(static_cast<int64_t>(r.runs.size()), r.module_instances);
}

// The command line: a policy with a bad token is refused with exit 2 naming it; on the trained
// fixture, @fp32 vs @bf16 runs the search and prints JSON whose claims name their runs.
TEST(PrecisionBisectCli, RefusesBadPoliciesAndReportsTheSearch) {
  const std::string fixture = TrainedFixtureDir();
  std::string output;
  EXPECT_EQ(RunCommand(ParityCli() + " bisect-precision " + fixture + " " + fixture +
                           "@bf16+fp32:nrom --tokens 1,2,3", &output), 2) << output;
  EXPECT_NE(output.find("unknown module 'nrom'"), std::string::npos) << output;
  EXPECT_EQ(RunCommand(ParityCli() + " bisect-precision " + fixture + " " + fixture +
                           " --tokens 1,2,3", &output), 2) << output;
  EXPECT_NE(output.find("with itself"), std::string::npos) << output;
  TempDir dir;
  EXPECT_EQ(RunCommand(ParityCli() + " compare " + fixture + " '" + fixture +
                           "@bf16+fp32:mlp[9]' --prompt-tokens 1,2,3 --max-new-tokens 2 --out " +
                           dir.path() + "/out", &output), 2) << output;
  EXPECT_NE(output.find("mlp[9] reaches past the model's 4 layers"), std::string::npos) << output;
  const int rc = RunCommand(ParityCli() + " bisect-precision " + fixture + " " + fixture +
                                "@bf16 --prompt 'Permission is hereby granted' --max-new-tokens 24 "
                                "--out " + dir.path() + "/bisect", &output);
  ASSERT_EQ(rc, 0) << output;
  EXPECT_NE(output.find("run  phase"), std::string::npos) << output;  // the table
  const nlohmann::json json =
      nlohmann::json::parse(ReadFileText(dir.path() + "/bisect/bisect_precision.json"));
  EXPECT_EQ(json["b"]["precision"], "bf16");
  ASSERT_GE(json["runs"].size(), 1u);
  EXPECT_EQ(json["runs"][0]["phase"], "baseline");
  EXPECT_EQ(json["runs_taken"], json["runs"].size());
  if (json["status"] == "found") {
    EXPECT_FALSE(json["answer"].empty());
    EXPECT_FALSE(json["shown"].empty());
  } else {
    EXPECT_EQ(json["status"], "no_divergence");
  }
}

}  // namespace
}  // namespace parity
