// parity explain: variant switches, the divergence-effect rule, and explain runs on the make-fixture
// model: identical models stay identical under every available flip (each flip computes the same
// function), and a B whose fault depends on one switch is explained by that switch alone.
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/convert/internlm2_to_llama.h"
#include "harness/convert/random_fixture.h"
#include "harness/core/error.h"
#include "harness/diagnose/explain.h"
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

const std::vector<int64_t> kPrompt = {1, 17, 233, 90, 411, 5};

class ExplainFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    convert::FixtureOptions options;
    options.seed = 11;
    options.dtype = "float32";
    convert::MakeFixture(dir_->path(), options);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TempDir* dir_;
};
TempDir* ExplainFixture::dir_ = nullptr;

TEST(ExplainRule, FlipAndEffect) {
  forward::Variants v;
  EXPECT_FALSE(FlipVariant(v, "fused_qkv").fused_qkv);
  EXPECT_FALSE(FlipVariant(v, "kv_cache").kv_cache);
  EXPECT_EQ(FlipVariant(v, "sdpa_attention").sdpa_attention, !v.sdpa_attention);
  EXPECT_TRUE(VariantValue(v, "rotary_precomputed"));
  EXPECT_FALSE(FlipVariant(v, "divide_scores_by_sqrt").divide_scores_by_sqrt);
  EXPECT_THROW(FlipVariant(v, "flash"), InputError);
  EXPECT_EQ(VariantNames().size(), 6u);

  PairStats at3, at7, none;
  at3.first_divergence = 3;
  at7.first_divergence = 7;
  EXPECT_EQ(DivergenceEffect(at3, none), "removed");
  EXPECT_EQ(DivergenceEffect(none, at3), "introduced");
  EXPECT_EQ(DivergenceEffect(at3, at7), "moved later");
  EXPECT_EQ(DivergenceEffect(at7, at3), "moved earlier");
  EXPECT_EQ(DivergenceEffect(at3, at3), "unchanged");
  EXPECT_EQ(DivergenceEffect(none, none), "unchanged");
}

TEST_F(ExplainFixture, IdenticalModelsStayIdenticalUnderEveryFlip) {
  const ModelSource a = CheckpointSource(dir_->path());
  ExplainOptions options;
  options.precisions = {Precision::kFP32, Precision::kBF16};
  options.max_new_tokens = 6;
  ExplainResult r = Explain(a, a, kPrompt, options);
  ASSERT_EQ(r.baselines.size(), 2u);
  ASSERT_EQ(r.rows.size(), 14u);  // (6 variants + all_variants) x 2 precisions, side b
  for (const ExplainPrecision& p : r.baselines) {
    EXPECT_FALSE(p.baseline.first_divergence) << p.precision;
    EXPECT_EQ(p.baseline.max_kl, 0.0) << p.precision;  // the same model: bit-identical
    EXPECT_EQ(p.baseline.steps, 6);
  }
  const bool sdpa = forward::ReferenceVariants(model::Architecture::kLlama).sdpa_attention;
  for (const VariantRow& row : r.rows) {
    if (row.variant == "sdpa_attention" && !sdpa) {
      EXPECT_FALSE(row.available);  // libtorch 1.13: no fused attention kernel
      EXPECT_EQ(row.effect, "unavailable");
      continue;
    }
    ASSERT_TRUE(row.available) << row.variant << ": " << row.note;
    // Every flip is the same function computed differently: KL at rounding level of the dtype.
    const double bound = row.precision == "fp32" ? 1e-9 : 1e-3;
    EXPECT_LT(row.flipped.max_kl, bound) << row.precision << " " << row.variant;
  }
  // The markdown table: a header, a separator and one line per row.
  const std::string markdown = FormatExplain(r, true);
  EXPECT_NE(markdown.find("| dtype | variant | flip | first divergence |"), std::string::npos)
      << markdown;
  EXPECT_NE(markdown.find("| fp32 | kv_cache | b 1->0 | none -> none | unchanged |"),
            std::string::npos)
      << markdown;
  nlohmann::ordered_json json = ExplainToJson(r);
  ASSERT_EQ(json["rows"].size(), 14u);
  EXPECT_EQ(json["rows"][0]["variant"], "fused_qkv");
  EXPECT_TRUE(json["rows"][0]["baseline"]["first_divergence"].is_null());
}

TEST_F(ExplainFixture, TheSwitchBehindAFaultIsNamed) {
  // B is A's weights, except that whenever B runs with precomputed rotary tables its LM head is
  // negated (argmax becomes argmin): a fault tied to one switch. Flipping rotary_precomputed on B
  // must remove the divergence; every other flip leaves it at step 0.
  const ModelSource a = CheckpointSource(dir_->path());
  io::Checkpoint checkpoint = io::Checkpoint::Open(dir_->path());
  forward::Weights clean = forward::LoadWeights(checkpoint, a.config);
  for (auto& entry : clean.tensors) entry.second = entry.second.clone();
  forward::Weights faulty = clean;
  faulty.Set(model::Role::kLmHead, -1, -clean.Get(model::Role::kLmHead));
  ModelSource clean_source = WeightsSource("clean", a.config, clean);
  ModelSource faulty_source = WeightsSource("faulty", a.config, faulty);
  ModelSource b = clean_source;
  b.label = "b";
  b.build = [clean_source, faulty_source](const forward::Numerics& numerics,
                                          const forward::Variants* variants) {
    const bool precomputed = variants == nullptr || variants->rotary_precomputed;
    return (precomputed ? faulty_source : clean_source).Build(numerics, variants);
  };
  ExplainOptions options;
  options.max_new_tokens = 5;
  ExplainResult r = Explain(a, b, kPrompt, options);
  ASSERT_EQ(r.baselines.size(), 1u);
  EXPECT_EQ(r.baselines[0].baseline.first_divergence, 0);
  EXPECT_GT(r.baselines[0].baseline.mean_kl, 0.01);
  for (const VariantRow& row : r.rows) {
    if (!row.available) continue;
    if (row.variant == "rotary_precomputed") {
      EXPECT_EQ(row.effect, "removed") << FormatExplain(r, false);
      EXPECT_LT(row.flipped.max_kl, 1e-6);
    } else {
      EXPECT_EQ(row.effect, "unchanged") << row.variant;
      EXPECT_EQ(row.flipped.first_divergence, 0) << row.variant;
    }
  }
}

TEST_F(ExplainFixture, CliPrintsATableAndJson) {
  std::string output;
  const std::string base = ParityCli() + " explain " + dir_->path() + " " + dir_->path() +
                           " --tokens 1,17,233 --max-new-tokens 3 --dtype fp32,bf16";
  ASSERT_EQ(RunStdout(base + " --json", &output), 0) << output;
  nlohmann::json json = nlohmann::json::parse(output);
  ASSERT_EQ(json["runs"].size(), 1u);
  EXPECT_EQ(json["runs"][0]["rows"].size(), 14u);
  EXPECT_EQ(json["runs"][0]["rows"][6]["variant"], "all_variants");
  ASSERT_EQ(RunStdout(base + " --markdown --variants kv_cache", &output), 0) << output;
  EXPECT_NE(output.find("| bf16 | kv_cache |"), std::string::npos) << output;
  EXPECT_EQ(RunCommand(base + " --variants flash", &output), 2) << output;
}

TEST(ExplainCli, RunsACaseFileConvertingItsModel) {
  TempDir out;
  std::string output;
  const std::string command = ParityCli() + " explain " + std::string(PARITY_SOURCE_DIR) +
                              "/cases/internlm2-tiny.json --dtype bf16 --max-new-tokens 6 "
                              "--variants kv_cache,fused_qkv --json --out " + out.path();
  ASSERT_EQ(RunStdout(command, &output), 0) << output;
  nlohmann::json json = nlohmann::json::parse(output);
  // --dtype bf16 keeps the pairs whose both sides run at BF16 (original vs converted); every
  // prompt of the case (4) is explained.
  ASSERT_EQ(json["runs"].size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const nlohmann::json& run = json["runs"][i];
    EXPECT_EQ(run["pair"], "original@bf16 vs converted@bf16");
    EXPECT_EQ(run["prompt_index"], i);
    ASSERT_EQ(run["rows"].size(), 2u);
    EXPECT_EQ(run["rows"][1]["variant"], "fused_qkv");
    EXPECT_EQ(run["rows"][1]["precision"], "bf16");
    EXPECT_EQ(run["max_new_tokens"], 6);
  }
  EXPECT_EQ(json["summary"].size(), 4u);
  // The converted model comes from the conversion cache, never from OUT.
  EXPECT_FALSE(std::filesystem::exists(out.path() + "/models"));
  EXPECT_EQ(nlohmann::json::parse(ReadFileText(out.path() + "/explain.json")), json);
  EXPECT_NE(ReadFileText(out.path() + "/explain.md").find("| bf16 | fused_qkv |"),
            std::string::npos);
}

TEST_F(ExplainFixture, ScoreScalingSwitchChangesRoundingOnly) {
  // head_dim 8: sqrt(8) is not a power of two, so x / sqrt(8) and x * 8 ** -0.5 round differently
  // in FP32; in FP64 the two agree to FP64 rounding. Both sides of the switch are the same function.
  const ModelSource a = CheckpointSource(dir_->path());
  forward::Variants divide = forward::ReferenceVariants(a.config.arch);
  ASSERT_TRUE(divide.divide_scores_by_sqrt);
  forward::Variants multiply = FlipVariant(divide, "divide_scores_by_sqrt");
  auto logits = [&](forward::Precision precision, const forward::Variants& v) {
    std::unique_ptr<forward::CausalLM> model = a.Build(forward::MakeNumerics(precision, c10::Device(c10::kCPU)), &v);
    forward::KVCache cache;
    at::Tensor ids = at::tensor(at::ArrayRef<int64_t>(kPrompt), at::kLong).view({1, -1});
    return model->Forward(ids, cache).to(at::kDouble);
  };
  const at::Tensor f32_divide = logits(Precision::kFP32, divide);
  const at::Tensor f32_multiply = logits(Precision::kFP32, multiply);
  EXPECT_FALSE(f32_divide.equal(f32_multiply));  // the switch is honoured
  const double scale = f32_divide.abs().max().item<double>();
  EXPECT_LT((f32_divide - f32_multiply).abs().max().item<double>(), 1e-5 * scale);
  const at::Tensor f64_divide = logits(Precision::kFP64, divide);
  const at::Tensor f64_multiply = logits(Precision::kFP64, multiply);
  EXPECT_LT((f64_divide - f64_multiply).abs().max().item<double>(), 1e-12 * scale);
}

TEST_F(ExplainFixture, AllVariantsRowCopiesTheOtherSidesImplementation) {
  // A is InternLM2, B a Llama-shaped copy of the same weights; all_variants runs B with every one
  // of A's switches. Identical weights: no flip may introduce a divergence at FP32.
  TempDir converted;
  convert::ConvertInternLM2ToLlama(dir_->path(), converted.path() + "/llama");
  const ModelSource a = CheckpointSource(dir_->path());
  const ModelSource b = CheckpointSource(converted.path() + "/llama");
  ExplainOptions options;
  options.max_new_tokens = 4;
  options.variants = {kAllVariants};
  ExplainResult r = Explain(a, b, kPrompt, options);
  ASSERT_EQ(r.rows.size(), 1u);
  const VariantRow& row = r.rows[0];
  EXPECT_EQ(row.variant, kAllVariants);
  EXPECT_EQ(row.from_variants, forward::DescribeVariants(forward::ReferenceVariants(b.config.arch)));
  EXPECT_EQ(row.to_variants, forward::DescribeVariants(forward::ReferenceVariants(a.config.arch)));
  ASSERT_TRUE(row.available) << row.note;
  EXPECT_FALSE(row.flipped.first_divergence);
  EXPECT_LT(row.flipped.max_kl, 1e-9);
  nlohmann::ordered_json json = ExplainToJson(r);
  EXPECT_EQ(json["rows"][0]["to"], row.to_variants);
  ExplainRun run{"a vs b", 0, "ids", r};
  EXPECT_NE(ExplainSummary(run).find("no divergence"), std::string::npos) << ExplainSummary(run);
}

// The memory plan comes before any model is built: a config far larger than this machine's memory
// (hidden 65536, 512 layers: ~18 TB at FP32) is refused with the numbers, and nothing is built.
TEST_F(ExplainFixture, AModelThatDoesNotFitIsRefusedBeforeLoading) {
  ModelSource huge = CheckpointSource(dir_->path());
  huge.label = "huge";
  huge.config.hidden_size = 65536;
  huge.config.intermediate_size = 4 * 65536;
  huge.config.num_layers = 512;
  huge.build = [](const forward::Numerics&, const forward::Variants*)
      -> std::unique_ptr<forward::CausalLM> {
    ADD_FAILURE() << "built a model the plan should have refused";
    return nullptr;
  };
  ExplainOptions options;
  options.precisions = {Precision::kFP32};
  options.max_new_tokens = 2;
  try {
    Explain(huge, huge, kPrompt, options);
    FAIL() << "expected the memory plan to refuse";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("explain fp32"), std::string::npos) << message;
    EXPECT_NE(message.find("huge@fp32"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace parity::diagnose

namespace parity::diagnose {
namespace {

// Sides given as precision policies. `bf16+fp32:all` runs every module in FP32 and is FP32 bit for
// bit (precision_policy_test), so explain on (A@bf16 vs A@bf16+fp32:all) must give exactly the
// statistics of (A@bf16 vs A@fp32), row for row, and (A@bf16+fp32:all vs A@fp32) no difference at
// all; a mixed policy (norms and LM head in FP32) runs with its own label.
TEST_F(ExplainFixture, PolicySidesExplainAsTheirPrecisions) {
  const ModelSource a = CheckpointSource(dir_->path());
  ExplainOptions options;
  options.max_new_tokens = 6;
  options.variants = {"kv_cache", "fused_qkv"};
  options.precisions = {Precision::kBF16, Precision::kBF16};
  options.precisions_b = {forward::ParsePrecisionPolicy("bf16+fp32:all"), Precision::kFP32};
  const ExplainResult r = Explain(a, a, kPrompt, options);
  ASSERT_EQ(r.baselines.size(), 2u);
  EXPECT_EQ(r.baselines[0].precision, "bf16/bf16+fp32:all");
  EXPECT_EQ(r.baselines[1].precision, "bf16/fp32");
  EXPECT_GT(r.baselines[1].baseline.max_kl, 0.0);  // BF16 vs FP32 differ
  auto same = [](const PairStats& x, const PairStats& y) {
    return x.first_divergence == y.first_divergence && x.steps == y.steps &&
           x.mean_kl == y.mean_kl && x.max_kl == y.max_kl;
  };
  EXPECT_TRUE(same(r.baselines[0].baseline, r.baselines[1].baseline));
  ASSERT_EQ(r.rows.size(), 4u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(r.rows[i].precision, "bf16/bf16+fp32:all");
    EXPECT_TRUE(same(r.rows[i].flipped, r.rows[i + 2].flipped)) << r.rows[i].variant;
  }
  ExplainOptions equal = options;
  equal.precisions = {forward::ParsePrecisionPolicy("bf16+fp32:all")};
  equal.precisions_b = {Precision::kFP32};
  const ExplainResult e = Explain(a, a, kPrompt, equal);
  EXPECT_EQ(e.baselines[0].baseline.max_kl, 0.0);
  EXPECT_FALSE(e.baselines[0].baseline.first_divergence);
}

TEST_F(ExplainFixture, CliTakesPolicySidesAndKeepsPolicyPairsUnderDtype) {
  std::string output;
  // Two directories, each with its own policy (a comma inside the module list stays in it).
  const std::string sides = ParityCli() + " explain " + dir_->path() + "@bf16 " + dir_->path() +
                            "@bf16+fp32:norm,lm_head --tokens 1,17,233 --max-new-tokens 3 "
                            "--variants kv_cache --json";
  ASSERT_EQ(RunStdout(sides, &output), 0) << output;
  nlohmann::json json = nlohmann::json::parse(output);
  ASSERT_EQ(json["runs"].size(), 1u);
  ASSERT_EQ(json["runs"][0]["baselines"].size(), 1u);
  EXPECT_EQ(json["runs"][0]["baselines"][0]["precision"], "bf16/bf16+fp32:norm,lm_head");
  EXPECT_EQ(json["runs"][0]["rows"][0]["precision"], "bf16/bf16+fp32:norm,lm_head");
  // One side with a policy, the other at each --dtype.
  ASSERT_EQ(RunStdout(ParityCli() + " explain " + dir_->path() + " " + dir_->path() +
                          "@bf16+fp32:norm --tokens 1,17,233 --max-new-tokens 3 --variants "
                          "kv_cache --dtype fp32,bf16 --json", &output), 0) << output;
  json = nlohmann::json::parse(output);
  ASSERT_EQ(json["runs"][0]["baselines"].size(), 2u);
  EXPECT_EQ(json["runs"][0]["baselines"][0]["precision"], "fp32/bf16+fp32:norm");
  EXPECT_EQ(json["runs"][0]["baselines"][1]["precision"], "bf16/bf16+fp32:norm");
  // A case pair A@bf16 vs A@bf16+fp32:norm is kept by --dtype bf16 (its base), and by the policy
  // itself with bf16; dropped by --dtype fp32.
  TempDir cases;
  const std::string case_path = cases.path() + "/policy.json";
  WriteFileText(case_path, nlohmann::json{{"name", "policy"},
                                          {"models", {{"m", {{"path", dir_->path()}}}}},
                                          {"prompts", {{{"tokens", {1, 17, 233}}}}},
                                          {"pairs", {{{"a", "m@bf16"}, {"b", "m@bf16+fp32:norm"}}}},
                                          {"max_new_tokens", 3}}
                               .dump());
  for (const std::string& dtype : {"bf16", "bf16,bf16+fp32:norm"}) {
    ASSERT_EQ(RunStdout(ParityCli() + " explain " + case_path + " --variants kv_cache --json "
                            "--dtype " + dtype, &output), 0) << dtype << ": " << output;
    json = nlohmann::json::parse(output);
    ASSERT_EQ(json["runs"].size(), 1u) << dtype;
    EXPECT_EQ(json["runs"][0]["pair"], "m@bf16 vs m@bf16+fp32:norm");
  }
  EXPECT_EQ(RunCommand(ParityCli() + " explain " + case_path + " --variants kv_cache --dtype fp32",
                       &output), 2);
  EXPECT_NE(output.find("no pair of the case runs at the precisions given"), std::string::npos)
      << output;
}

}  // namespace
}  // namespace parity::diagnose
