// The verdicts end to end through the `parity` command line, on checkpoints written here: a 24-layer
// BF16 InternLM2 with a realistic logit scale and copies of it with planted faults.
//  - `compare A FAULTY` (one MLP weight x1.05) exits 1 with a real divergence (default gate);
//  - `compare A A@bf16` (one function, two precisions) calls no divergence real and exits 0;
//  - without any gate the verdict says so instead of PASS;
//  - the FP64 oracle runs without lockstep on the CPU, and a memory plan that does not fit is
//    refused with exit 2 and the numbers;
//  - `drift` fails an FP32 run of a 1%-scaled weight against a clean baseline and passes a rerun of
//    the clean run at another thread count.
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/compare/run_result.h"
#include "harness/convert/qkv_split.h"
#include "harness/forward/weights.h"
#include "harness/io/safetensors.h"
#include "harness/model/arch.h"
#include "harness/model/config.h"
#include "tests/test_util.h"

namespace parity {
namespace {

using model::Architecture;
using model::Role;

struct Sizes {
  int64_t layers = 24;
  double logit_scale = 3.0;
};

// Writes an InternLM2 (or, with `llama`, its convert2llama layout) BF16 checkpoint with seeded
// random weights; `edit` may change the weights before they are written.
void WriteModel(const std::string& dir, const Sizes& sizes, bool llama,
                const std::function<void(forward::Weights&)>& edit = nullptr) {
  const int64_t vocab = 512, hidden = 128, heads = 4, kv_heads = 2, head_dim = 32, inter = 352;
  at::manual_seed(11);
  auto randn = [](std::vector<int64_t> shape, double scale) {
    return (at::randn(shape, at::kDouble) * scale).to(at::kBFloat16);
  };
  auto norm = [&]() { return (1.0 + at::randn({hidden}, at::kDouble) * 0.1).to(at::kBFloat16); };
  const double in = 1.0 / std::sqrt(double(hidden));
  forward::Weights w;
  w.Set(Role::kEmbedding, -1, randn({vocab, hidden}, 1.0));
  w.Set(Role::kFinalNorm, -1, norm());
  w.Set(Role::kLmHead, -1, randn({vocab, hidden}, sizes.logit_scale * in));
  for (int64_t i = 0; i < sizes.layers; ++i) {
    w.Set(Role::kAttentionNorm, i, norm());
    w.Set(Role::kQkv, i, randn({kv_heads * (heads / kv_heads + 2) * head_dim, hidden}, in));
    w.Set(Role::kO, i, randn({hidden, heads * head_dim}, in));
    w.Set(Role::kMlpNorm, i, norm());
    w.Set(Role::kGate, i, randn({inter, hidden}, in));
    w.Set(Role::kUp, i, randn({inter, hidden}, in));
    w.Set(Role::kDown, i, randn({hidden, inter}, 1.0 / std::sqrt(double(inter))));
  }
  if (edit) edit(w);
  nlohmann::json config = {{"vocab_size", vocab},
                           {"hidden_size", hidden},
                           {"intermediate_size", inter},
                           {"num_hidden_layers", sizes.layers},
                           {"num_attention_heads", heads},
                           {"num_key_value_heads", kv_heads},
                           {"max_position_embeddings", 4096},
                           {"rms_norm_eps", 1e-5},
                           {"rope_theta", 10000.0},
                           {"torch_dtype", "bfloat16"},
                           {"bos_token_id", 1},
                           {"eos_token_id", 2},
                           {"tie_word_embeddings", false}};
  const Architecture arch = llama ? Architecture::kLlama : Architecture::kInternLM2;
  if (llama) {
    config["model_type"] = "llama";
    config["architectures"] = {"LlamaForCausalLM"};
    config["attention_bias"] = false;
  } else {
    config["model_type"] = "internlm2";
    config["architectures"] = {"InternLM2ForCausalLM"};
    config["bias"] = false;
  }
  std::vector<io::NamedTensor> tensors;
  for (const auto& [key, tensor] : w.tensors) {
    if (llama && key.first == Role::kQkv) {
      convert::QkvLayout layout{kv_heads, heads / kv_heads, head_dim};
      convert::SplitQkv split = convert::SplitPackedQkv(tensor, layout, "wqkv");
      tensors.push_back({model::TensorName(arch, Role::kQ, key.second), split.q});
      tensors.push_back({model::TensorName(arch, Role::kK, key.second), split.k});
      tensors.push_back({model::TensorName(arch, Role::kV, key.second), split.v});
      continue;
    }
    tensors.push_back({model::TensorName(arch, key.first, key.second), tensor});
  }
  std::filesystem::create_directories(dir);
  io::WriteSafetensors(dir + "/model.safetensors", tensors);
  WriteFileText(dir + "/config.json", config.dump(2));
}

void ScaleDown(forward::Weights& w, int64_t layer, double factor) {
  w.Set(Role::kDown, layer, (w.Get(Role::kDown, layer).to(at::kDouble) * factor).to(at::kBFloat16));
}

const char* kPrompts =
    " --prompt-tokens 1,40,41,42,43,44 --prompt-tokens 1,300,17,9,250 --prompt-tokens 1,77,78,79,80,81,82";

compare::Summary ReadSummary(const std::string& dir) {
  return compare::ReadRunOutputs(dir).summary;
}

class VerdictCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    WriteModel(dir_->path() + "/original", {}, false);
    WriteModel(dir_->path() + "/scaled", {}, false,
               [](forward::Weights& w) { ScaleDown(w, 12, 1.05); });
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string Path(const std::string& name) { return dir_->path() + "/" + name; }
  static TempDir* dir_;
};
TempDir* VerdictCliTest::dir_ = nullptr;

TEST_F(VerdictCliTest, ScaledMlpWeightIsRealAndFailsByDefault) {
  std::string output;
  int rc = RunCommand(ParityCli() + " compare " + Path("original") + " " + Path("scaled") +
                          kPrompts + " --max-new-tokens 48 --out " + Path("out-scaled"),
                      &output);
  EXPECT_EQ(rc, 1) << output;
  compare::Summary s = ReadSummary(Path("out-scaled"));
  // Every prompt is real: a flip called real, or logits that differ far beyond FP32 rounding
  // without a flip yet (within 48 steps this model may not flip a token).
  for (const compare::Run& run : s.runs) {
    ASSERT_TRUE(run.verdict_kind.has_value());
    EXPECT_EQ(*run.verdict_kind, "real") << run.verdict_evidence.reason;
  }
  EXPECT_NE(output.find("fail_on_real_divergence"), std::string::npos) << output;
  EXPECT_NE(output.find("verdict: FAIL"), std::string::npos) << output;
}

TEST_F(VerdictCliTest, OneModelAtTwoPrecisionsIsNeverReal) {
  std::string output;
  int rc = RunCommand(ParityCli() + " compare " + Path("original") + " " + Path("original") +
                          "@bf16" + kPrompts + " --max-new-tokens 48 --out " + Path("out-prec"),
                      &output);
  EXPECT_EQ(rc, 0) << output;
  compare::Summary s = ReadSummary(Path("out-prec"));
  ASSERT_EQ(s.runs.size(), 3u);
  for (const compare::Run& run : s.runs) {
    EXPECT_EQ(run.pair.a.precision, "fp32");
    EXPECT_EQ(run.pair.b.precision, "bf16");
    EXPECT_EQ(run.pair.a.model, run.pair.b.model);
    if (run.first_divergence) EXPECT_NE(run.first_divergence->kind, "real") << output;
  }
  EXPECT_NE(output.find("verdict: PASS"), std::string::npos) << output;
}

TEST_F(VerdictCliTest, NoGateSaysSoInsteadOfPass) {
  std::string output;
  int rc = RunCommand(ParityCli() + " compare " + Path("original") + " " + Path("scaled") +
                          " --prompt-tokens 1,40,41 --max-new-tokens 8 --no-fail-on-real-divergence"
                          " --out " + Path("out-nogate"),
                      &output);
  EXPECT_EQ(rc, 0) << output;
  EXPECT_NE(output.find("verdict: no gate was on"), std::string::npos) << output;
  EXPECT_EQ(output.find("verdict: PASS"), std::string::npos) << output;
  EXPECT_FALSE(ReadSummary(Path("out-nogate")).verdict.gated);
}

TEST_F(VerdictCliTest, OracleRunsAfterDecodingAndItsPlanIsChecked) {
  std::string output;
  int rc = RunCommand(ParityCli() + " compare " + Path("original") + " " + Path("scaled") +
                          " --prompt-tokens 1,40,41,42,43,44 --dtypes bf16 --max-new-tokens 48 "
                          "--oracle --oracle-device cpu --out " + Path("out-oracle"),
                      &output);
  EXPECT_EQ(rc, 1) << output;
  compare::Summary s = ReadSummary(Path("out-oracle"));
  ASSERT_EQ(s.runs.size(), 1u);
  ASSERT_TRUE(s.runs[0].oracle.has_value()) << output;
  EXPECT_EQ(s.settings.oracle_device, "cpu");
  if (s.runs[0].first_divergence) {
    EXPECT_EQ(s.runs[0].first_divergence->evidence.source, "oracle") << output;
    EXPECT_EQ(s.runs[0].first_divergence->kind, "real") << output;
  }
  // A plan that cannot fit: refused before loading, exit 2, with the numbers per model.
  rc = RunCommand(ParityCli() + " compare " + Path("original") + " " + Path("scaled") +
                      " --prompt-tokens 1,40 --max-new-tokens 4 --oracle --memory-limit 0.001"
                      " --out " + Path("out-nomem"),
                  &output);
  EXPECT_EQ(rc, 2) << output;
  EXPECT_NE(output.find("available (--memory-limit)"), std::string::npos) << output;
  EXPECT_NE(output.find("original@fp32 on cpu"), std::string::npos) << output;
}

TEST(VerdictDriftCliTest, OnePercentScaledWeightDriftsAndAThreadCountChangeDoesNot) {
  TempDir dir;
  const Sizes sizes{8, 3.0};
  // The clean pair: an InternLM2 checkpoint and its Llama layout (the same function, different
  // kernels: FP32 rounding noise that depends on the thread count). The drifted pair: the same
  // with one MLP weight of the Llama copy scaled by 1.01.
  for (const char* run : {"clean", "rerun", "drifted"}) {
    const std::string base = dir.path() + "/" + run;
    WriteModel(base + "/original", sizes, false);
    if (std::string(run) == "drifted") {
      WriteModel(base + "/converted", sizes, true,
                 [](forward::Weights& w) { ScaleDown(w, 4, 1.01); });
    } else {
      WriteModel(base + "/converted", sizes, true);
    }
  }
  // One --name for the three runs: the default name hashes the two paths, which differ here.
  auto compare = [&](const std::string& run, const std::string& threads) {
    std::string output;
    const std::string base = dir.path() + "/" + run;
    int rc = RunCommand("OMP_NUM_THREADS=" + threads + " " + ParityCli() + " compare " + base +
                            "/original " + base + "/converted" + kPrompts +
                            " --max-new-tokens 32 --no-fail-on-real-divergence --name verdict-drift --out " + base +
                            "/out",
                        &output);
    EXPECT_EQ(rc, 0) << output;
    return base + "/out";
  };
  const std::string store = dir.path() + "/store";
  std::string clean = compare("clean", "2"), rerun = compare("rerun", "1");
  std::string drifted = compare("drifted", "2");
  EXPECT_NE(ReadSummary(clean).settings.num_threads, ReadSummary(rerun).settings.num_threads);
  std::string output;
  ASSERT_EQ(RunCommand(ParityCli() + " baseline save " + clean + " --store " + store, &output), 0)
      << output;
  EXPECT_EQ(RunCommand(ParityCli() + " drift " + rerun + " --store " + store, &output), 0) << output;
  EXPECT_EQ(RunCommand(ParityCli() + " drift " + drifted + " --store " + store, &output), 1)
      << output;
  EXPECT_NE(output.find("max_kl"), std::string::npos) << output;
}

}  // namespace
}  // namespace parity
