// Layer localization: the departure rule on hand-made error curves, and planted faults in real
// (random) checkpoints: the make-fixture InternLM2 model (FP32-stored) against its convert2llama
// copy with one change each. The faults are applied to the copy's weights in memory (the forward
// layer builds models from Weights), and once through files and the CLI.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/convert/internlm2_to_llama.h"
#include "harness/convert/random_fixture.h"
#include "harness/diagnose/localize.h"
#include "harness/diagnose/model_source.h"
#include "harness/forward/weights.h"
#include "harness/io/checkpoint.h"
#include "tests/test_util.h"

namespace parity::diagnose {
namespace {

// Runs `command` keeping only its stdout in `output` (logs go to stderr).
int RunStdout(const std::string& command, std::string* output) {
  return RunCommand("( " + command + " 2>/dev/null )", output);
}

using forward::Precision;
using model::Role;

// Prompt ids inside the fixture's 512-token vocabulary.
const std::vector<int64_t> kPrompt = {1, 17, 233, 90, 411, 5, 64, 300};

// One FP32-stored InternLM2 fixture (3 layers) and its Llama conversion, made once for the suite.
class LocalizeFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    convert::FixtureOptions options;
    options.seed = 7;
    options.num_layers = 3;
    options.dtype = "float32";
    convert::MakeFixture(dir_->path() + "/original", options);
    convert::ConvertInternLM2ToLlama(dir_->path() + "/original", dir_->path() + "/converted");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string Original() { return dir_->path() + "/original"; }
  static std::string Converted() { return dir_->path() + "/converted"; }

  // The converted copy's weights, cloned so a test can change them.
  static forward::Weights ConvertedWeights(model::ModelConfig* config) {
    io::Checkpoint checkpoint = io::Checkpoint::Open(Converted());
    *config = model::ParseConfig(checkpoint.config_json(), Converted());
    forward::Weights weights = forward::LoadWeights(checkpoint, *config);
    for (auto& entry : weights.tensors) entry.second = entry.second.clone();
    return weights;
  }

  static LocalizeResult Run(const ModelSource& b, Precision precision) {
    LocalizeOptions options;
    options.precision = precision;
    options.step = 3;  // teacher-forced at a fixed step: the faults need no divergence to be seen
    return Localize(CheckpointSource(Original()), b, kPrompt, options);
  }

  static TempDir* dir_;
};
TempDir* LocalizeFixture::dir_ = nullptr;

const PointError& Departed(const LocalizeResult& r) {
  EXPECT_GE(r.first_departure.index, 0) << r.first_departure.reason;
  return r.points.at(std::max<int64_t>(r.first_departure.index, 0));
}

PointError Point(const std::string& name, double ab, double a64, double b64, double fp64) {
  PointError p;
  p.name = name;
  p.rel_rms_error = ab;
  p.a_err_vs_fp64 = a64;
  p.b_err_vs_fp64 = b64;
  p.fp64_rel_diff = fp64;
  return p;
}

TEST(LocalizeRule, RealNeedsFp64DifferenceAboveResolutionAndFloor) {
  // Rounding noise growing with depth, FP64 level identical: rounding, at the first nonzero point.
  std::vector<PointError> points = {Point("embedding", 0, 0, 0, 0),
                                    Point("layer 0 attention", 1e-7, 6e-8, 7e-8, 1e-16),
                                    Point("layer 0 mlp", 3e-7, 2e-7, 2e-7, 2e-16)};
  Departure d = FindFirstDeparture(points);
  EXPECT_EQ(d.kind, "rounding");
  EXPECT_EQ(d.index, 1);
  EXPECT_EQ(Fp64FirstDifference(points), -1);
  // An FP64 difference above 1e-9 but below the run's own noise (BF16-sized floor): not real.
  points[2].fp64_rel_diff = 2e-4;
  points[2].a_err_vs_fp64 = 3e-3;
  d = FindFirstDeparture(points);
  EXPECT_EQ(d.kind, "rounding");
  EXPECT_EQ(Fp64FirstDifference(points), 2);
  // Above the floor: real, at that point even though an earlier point already differed by rounding.
  points[2].a_err_vs_fp64 = 1e-4;
  d = FindFirstDeparture(points);
  EXPECT_EQ(d.kind, "real");
  EXPECT_EQ(d.index, 2);
  // FP64 runs compared with each other: floor 0, only the 1e-9 resolution applies.
  std::vector<PointError> fp64 = {Point("embedding", 0, 0, 0, 0),
                                  Point("layer 0 attention", 5e-10, 0, 0, 5e-10),
                                  Point("layer 0 mlp", 2e-9, 0, 0, 2e-9)};
  d = FindFirstDeparture(fp64);
  EXPECT_EQ(d.kind, "real");
  EXPECT_EQ(d.index, 2);
  EXPECT_EQ(FindFirstDeparture({Point("embedding", 0, 0, 0, 0)}).kind, "none");
}

TEST(LocalizeRule, RelRmsError) {
  at::Tensor ref = at::tensor({3.0, 4.0}, at::kDouble);  // rms = sqrt(12.5)
  at::Tensor x = at::tensor({3.0, 5.0}, at::kDouble);    // rms(x - ref) = sqrt(0.5)
  EXPECT_NEAR(RelRmsError(x, ref), std::sqrt(0.5 / 12.5), 1e-15);
  EXPECT_EQ(RelRmsError(ref, ref), 0.0);
  at::Tensor zero = at::zeros({2}, at::kDouble);
  EXPECT_EQ(RelRmsError(zero, zero), 0.0);
  EXPECT_TRUE(std::isinf(RelRmsError(x, zero)));
}

TEST_F(LocalizeFixture, FaithfulConversionIsNotReal) {
  LocalizeResult r = Run(CheckpointSource(Converted()), Precision::kFP32);
  // embedding, 3 x (attention, mlp), final norm, logits
  ASSERT_EQ(r.points.size(), 1u + 2 * 3 + 2);
  EXPECT_EQ(r.points.front().name, "embedding");
  EXPECT_EQ(r.points[3].name, "layer 1 attention");
  EXPECT_EQ(r.points.back().name, "logits");
  EXPECT_EQ(r.tokens.size(), kPrompt.size() + 3);
  EXPECT_NE(r.first_departure.kind, "real") << r.first_departure.reason;
  EXPECT_EQ(r.fp64_first_difference, -1);
  for (const PointError& p : r.points) {
    EXPECT_LT(p.fp64_rel_diff, 1e-12) << p.name;  // same function: FP64 agrees to ~1e-16
    EXPECT_LT(p.rel_rms_error, 1e-5) << p.name;   // FP32 rounding only
  }
}

TEST_F(LocalizeFixture, ScaledDownProjIsFoundAtItsLayer) {
  model::ModelConfig config;
  forward::Weights weights = ConvertedWeights(&config);
  weights.Set(Role::kDown, 1, weights.Get(Role::kDown, 1) * 1.01);
  LocalizeResult r = Run(WeightsSource("scaled", config, weights), Precision::kFP32);
  const PointError& p = Departed(r);
  EXPECT_EQ(r.first_departure.kind, "real") << FormatLocalize(r);
  EXPECT_EQ(p.layer, 1);
  EXPECT_EQ(p.sub_block, "mlp");
  EXPECT_EQ(p.name, "layer 1 mlp");
  // Before it, the FP64 runs agree; at it, the FP64 difference dwarfs the FP32 noise.
  for (int64_t i = 0; i < r.first_departure.index; ++i) {
    EXPECT_LT(r.points[i].fp64_rel_diff, 1e-12) << r.points[i].name;
  }
  EXPECT_GT(p.fp64_rel_diff, 100 * p.noise_floor());
  EXPECT_EQ(r.fp64_first_difference, r.first_departure.index);
}

TEST_F(LocalizeFixture, QueryHeadSwapIsRealFromThatLayerOn) {
  model::ModelConfig config;
  forward::Weights weights = ConvertedWeights(&config);
  // Query heads 0 and 1 share KV head 0 (G = 4): swapping their q_proj rows keeps every shape and
  // every K/V, but each head's output now lands in the other's columns of o_proj.
  const int64_t d = config.head_dim;
  at::Tensor q = weights.Get(Role::kQ, 2).clone();
  at::Tensor head0 = q.slice(0, 0, d).clone();
  q.slice(0, 0, d).copy_(q.slice(0, d, 2 * d));
  q.slice(0, d, 2 * d).copy_(head0);
  weights.Set(Role::kQ, 2, q);
  LocalizeResult r = Run(WeightsSource("swapped", config, weights), Precision::kFP32);
  const PointError& p = Departed(r);
  EXPECT_EQ(r.first_departure.kind, "real") << FormatLocalize(r);
  EXPECT_EQ(p.name, "layer 2 attention");
  // At position 0 each head attends to one key with weight 1 whatever its query is: the swap is
  // first seen at position 1, and only there do the FP64 runs part.
  EXPECT_EQ(r.position, 1) << FormatLocalize(r);
  EXPECT_EQ(r.fp64_first_part.position, 1);
  EXPECT_EQ(r.positions.at(0).fp64_first_point, "");
  for (size_t i = r.first_departure.index; i < r.points.size(); ++i) {
    EXPECT_GT(r.points[i].fp64_rel_diff, 1e-6) << r.points[i].name;
  }
}

TEST_F(LocalizeFixture, Bf16RoundedTensorIsRoundingLevelAtBf16) {
  model::ModelConfig config;
  forward::Weights weights = ConvertedWeights(&config);
  ASSERT_EQ(weights.Get(Role::kUp, 0).scalar_type(), at::kFloat);
  at::Tensor rounded = weights.Get(Role::kUp, 0).to(at::kBFloat16).to(at::kFloat);
  ASSERT_FALSE(rounded.equal(weights.Get(Role::kUp, 0)));  // the copy really changed
  weights.Set(Role::kUp, 0, rounded);
  const ModelSource b = WeightsSource("rounded", config, weights);

  // At BF16 both copies of the tensor cast to the same BF16 values: not real. The FP64 oracle still
  // sees the change, at layer 0's MLP, below the BF16 noise floor.
  LocalizeResult r = Run(b, Precision::kBF16);
  EXPECT_NE(r.first_departure.kind, "real") << FormatLocalize(r);
  ASSERT_GE(r.fp64_first_difference, 0);
  EXPECT_EQ(r.points[r.fp64_first_difference].name, "layer 0 mlp");
  const PointError& at_change = r.points[r.fp64_first_difference];
  EXPECT_LT(at_change.fp64_rel_diff, at_change.noise_floor());

  // At FP32 the same copy is a different function, and localize says so, at the right point.
  LocalizeResult fp32 = Run(b, Precision::kFP32);
  EXPECT_EQ(fp32.first_departure.kind, "real");
  EXPECT_EQ(Departed(fp32).name, "layer 0 mlp");
}

TEST_F(LocalizeFixture, CliWritesJsonAndLocalizeFile) {
  TempDir out;
  std::string output;
  const std::string command = ParityCli() + " localize " + Original() + " " + Converted() +
                              " --tokens 1,17,233,90,411 --max-new-tokens 8 --json --out " +
                              out.path();
  ASSERT_EQ(RunStdout(command, &output), 0) << output;
  nlohmann::json json = nlohmann::json::parse(output);
  ASSERT_TRUE(json.contains("first_departure"));
  EXPECT_NE(json["first_departure"]["kind"], "real");
  ASSERT_EQ(json["points"].size(), 9u);
  EXPECT_EQ(json["points"][1]["name"], "layer 0 attention");
  EXPECT_EQ(json["points"][1]["layer"], 0);
  EXPECT_EQ(json["points"][1]["sub_block"], "attention");
  for (const char* key : {"rel_rms_error", "max_abs_error", "cosine", "a_err_vs_fp64",
                          "b_err_vs_fp64", "fp64_rel_diff"}) {
    EXPECT_TRUE(json["points"][2].contains(key)) << key;
  }
  nlohmann::json file = nlohmann::json::parse(ReadFileText(out.path() + "/localize.json"));
  EXPECT_EQ(file, json);
  // The table form names every point and the verdict.
  ASSERT_EQ(RunStdout(ParityCli() + " localize " + Original() + " " + Converted() +
                           " --tokens 1,17,233 --step 1",
                       &output),
            0)
      << output;
  EXPECT_NE(output.find("layer 2 mlp"), std::string::npos) << output;
  EXPECT_NE(output.find("verdict at step "), std::string::npos) << output;
  EXPECT_NE(output.find("first departure: "), std::string::npos) << output;
  // Bad input: exit 2 with a message.
  EXPECT_EQ(RunCommand(ParityCli() + " localize " + Original() + " " + Converted() +
                           " --tokens 1,x",
                       &output),
            2)
      << output;
}

}  // namespace
}  // namespace parity::diagnose
