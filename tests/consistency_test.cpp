// Consistency checks on the make-fixture model (InternLM2) and its in-memory Llama twin: batch
// invariance, KV cache vs recompute, CPU vs CUDA; and planted inconsistencies (a model that ignores
// the attention mask, a "recompute" path that is a different model) that the checks must catch.
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/convert/internlm2_to_llama.h"
#include "harness/convert/random_fixture.h"
#include "harness/diagnose/consistency.h"
#include "harness/diagnose/model_source.h"
#include "harness/diagnose/recompute.h"
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

class ConsistencyFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    convert::FixtureOptions options;
    options.seed = 5;
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
  static TempDir* dir_;
};
TempDir* ConsistencyFixture::dir_ = nullptr;

// A model that drops the attention mask: padded rows attend to their padding.
class MaskDroppingLM : public forward::CausalLM {
 public:
  explicit MaskDroppingLM(std::unique_ptr<forward::CausalLM> inner) : inner_(std::move(inner)) {}
  const model::ModelConfig& config() const override { return inner_->config(); }
  const forward::Numerics& numerics() const override { return inner_->numerics(); }
  const forward::Variants& variants() const override { return inner_->variants(); }
  at::Tensor Forward(const at::Tensor& tokens, forward::KVCache& cache, const at::Tensor&,
                     const forward::Observer* observer) override {
    return inner_->Forward(tokens, cache, at::Tensor(), observer);
  }

 private:
  std::unique_ptr<forward::CausalLM> inner_;
};

TEST_F(ConsistencyFixture, BatchInvariantAtFp32ForBothArchitectures) {
  CheckOptions options;
  options.max_new_tokens = 8;
  for (const std::string& dir : {Original(), Converted()}) {
    CheckResult r = CheckBatchInvariance(CheckpointSource(dir), kPrompt, options);
    EXPECT_TRUE(r.consistent) << FormatCheck(r);
    EXPECT_EQ(r.tokens_reference.size(), 8u);
    EXPECT_EQ(r.compared_steps, 8);
    // Padding only changes GEMM shapes: FP32 rounding-level differences at most (logits ~0.2).
    EXPECT_LT(r.max_abs_logit_diff, 1e-5) << dir;
  }
}

TEST_F(ConsistencyFixture, BatchCheckCatchesAModelThatIgnoresTheMask) {
  ModelSource source = CheckpointSource(Original());
  ModelSource broken = source;
  broken.build = [source](const forward::Numerics& numerics, const forward::Variants* variants) {
    return std::unique_ptr<forward::CausalLM>(
        std::make_unique<MaskDroppingLM>(source.Build(numerics, variants)));
  };
  CheckOptions options;
  options.max_new_tokens = 4;
  // The other row is long so that the padded row mostly attends to padding when unmasked.
  options.other_prompt = std::vector<int64_t>(40, 77);
  CheckResult r = CheckBatchInvariance(broken, kPrompt, options);
  EXPECT_GT(r.max_abs_logit_diff, 1e-3) << FormatCheck(r);
  // Tokens may or may not flip on a random model; the logits must show it either way, and a flip,
  // when there is one, is reported with its step.
  if (!r.consistent) EXPECT_TRUE(r.first_divergence.has_value());
}

TEST_F(ConsistencyFixture, KvCacheMatchesRecompute) {
  CheckOptions options;
  options.max_new_tokens = 8;
  for (Precision precision : {Precision::kFP32, Precision::kBF16}) {
    options.precision = precision;
    CheckResult r = CheckKvCache(CheckpointSource(Converted()), kPrompt, options);
    EXPECT_EQ(r.compared_steps > 0, true);
    if (precision == Precision::kFP32) {
      EXPECT_TRUE(r.consistent) << FormatCheck(r);
      EXPECT_LT(r.max_abs_logit_diff, 1e-5);
    }
  }
}

TEST_F(ConsistencyFixture, KvCacheCheckCatchesADifferentRecomputePath) {
  ModelSource source = CheckpointSource(Original());
  io::Checkpoint checkpoint = io::Checkpoint::Open(Original());
  forward::Weights negated = forward::LoadWeights(checkpoint, source.config);
  negated.Set(model::Role::kLmHead, -1, -negated.Get(model::Role::kLmHead).clone());
  ModelSource other = WeightsSource("negated", source.config, negated);
  ModelSource broken = source;
  broken.build = [source, other](const forward::Numerics& numerics,
                                 const forward::Variants* variants) {
    // The recompute path (kv_cache false) runs a different model.
    return (variants != nullptr && !variants->kv_cache ? other : source).Build(numerics, variants);
  };
  CheckOptions options;
  options.max_new_tokens = 4;
  CheckResult r = CheckKvCache(broken, kPrompt, options);
  EXPECT_FALSE(r.consistent);
  EXPECT_EQ(r.first_divergence, 0);
}

TEST_F(ConsistencyFixture, RecomputingLMReturnsTheNewPositions) {
  ModelSource source = CheckpointSource(Original());
  const forward::Numerics fp64 = forward::MakeNumerics(Precision::kFP64, c10::kCPU);
  auto cached = source.Build(fp64);
  RecomputingLM recompute(source.Build(fp64));
  EXPECT_FALSE(recompute.variants().kv_cache);
  forward::KVCache c1, c2;
  at::Tensor first = at::tensor(at::ArrayRef<int64_t>(kPrompt), at::kLong).view({1, -1});
  at::Tensor a = cached->Forward(first, c1);
  at::Tensor b = recompute.Forward(first, c2);
  EXPECT_TRUE(at::allclose(a, b, 0, 1e-12));
  at::Tensor next = at::tensor({42, 7}, at::kLong).view({1, 2});
  a = cached->Forward(next, c1);
  b = recompute.Forward(next, c2);
  ASSERT_EQ(b.size(1), 2);  // only the new positions
  EXPECT_EQ(c2.length, static_cast<int64_t>(kPrompt.size()) + 2);
  EXPECT_TRUE(at::allclose(a, b, 0, 1e-12)) << (a - b).abs().max();
}

TEST_F(ConsistencyFixture, DeviceCheck) {
  CheckOptions options;
  options.max_new_tokens = 4;
  CheckResult r = CheckDevice(CheckpointSource(Original()), kPrompt, options);
  if (!at::hasCUDA()) {
    EXPECT_FALSE(r.available);
    EXPECT_NE(r.note.find("no CUDA"), std::string::npos);
    return;
  }
  ASSERT_TRUE(r.available);
  EXPECT_EQ(r.compared_steps > 0, true);
  EXPECT_LT(r.max_abs_logit_diff, 1e-3) << FormatCheck(r);
}

TEST_F(ConsistencyFixture, Cli) {
  std::string output;
  const std::string args = " --tokens 1,17,233,90 --max-new-tokens 4";
  EXPECT_EQ(RunCommand(ParityCli() + " check kv-cache " + Original() + args, &output), 0) << output;
  EXPECT_NE(output.find("consistent"), std::string::npos) << output;
  EXPECT_EQ(RunStdout(ParityCli() + " check batch " + Converted() + args + " --json",
                       &output),
            0)
      << output;
  EXPECT_EQ(nlohmann::json::parse(output)["consistent"], true);
  if (!at::hasCUDA()) {
    EXPECT_EQ(RunCommand(ParityCli() + " check device " + Original() + args, &output), 2);
    EXPECT_NE(output.find("no CUDA"), std::string::npos) << output;
  }
}

}  // namespace
}  // namespace parity::diagnose
