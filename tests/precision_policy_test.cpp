// Precision policies (forward/precision_policy.h): the text form and its errors, and the numerics at
// the cast points, each against an independent computation: a policy whose overrides all name the
// base is the plain run bit for bit; "bf16+fp32:all" (and fp16's) is the FP32 run bit for bit (the
// BF16 checkpoint's weights are exact in FP32, every cast between modules is then a no-op); an
// upgraded LM head is the FP32 product of the BF16 run's final hidden state; an upgraded MLP layer
// is computed by hand in FP32 from its BF16 input and added back in BF16. An MoE checkpoint written
// by HF (router, q/k norms) is checked the same way.
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "harness/compare/case.h"
#include "harness/compare/verdict.h"
#include "harness/core/error.h"
#include "harness/forward/causal_lm.h"
#include "harness/forward/numerics.h"
#include "harness/forward/precision_policy.h"
#include "harness/io/checkpoint.h"
#include "tests/precision_models.h"
#include "tests/test_util.h"

namespace parity {
namespace {

using forward::Module;
using forward::ParsePrecisionPolicy;
using forward::Precision;
using forward::PrecisionPolicy;
using model::Role;

std::string ErrorOf(const std::string& text) {
  try {
    ParsePrecisionPolicy(text);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(PrecisionPolicyText, ParsesAndPrintsCanonically) {
  const PrecisionPolicy p = ParsePrecisionPolicy("BF16+fp32:norm,Router,lm_head+float32:mlp[20-23]");
  EXPECT_EQ(p.base, Precision::kBF16);
  ASSERT_EQ(p.overrides.size(), 4u);
  EXPECT_EQ(p.Text(), "bf16+fp32:norm,router,lm_head,mlp[20-23]");
  EXPECT_EQ(ParsePrecisionPolicy(p.Text()), p);
  EXPECT_EQ(p.Of(Module::kMlp, 19), Precision::kBF16);
  EXPECT_EQ(p.Of(Module::kMlp, 20), Precision::kFP32);
  EXPECT_EQ(p.Of(Module::kMlp, 23), Precision::kFP32);
  EXPECT_EQ(p.Of(Module::kMlp, 24), Precision::kBF16);
  EXPECT_EQ(p.Of(Module::kNorm, -1), Precision::kFP32);  // the final norm: unranged norm
  EXPECT_EQ(p.Of(Module::kResidual, 3), Precision::kBF16);
  EXPECT_EQ(p.Coarsest(), Precision::kBF16);
  EXPECT_EQ(p.Widest(), Precision::kFP32);
  // Later overrides win; a range never matches a model-wide instance.
  const PrecisionPolicy q = ParsePrecisionPolicy("fp16+fp32:all+fp16:norm[2]");
  EXPECT_EQ(q.Of(Module::kNorm, 2), Precision::kFP16);
  EXPECT_EQ(q.Of(Module::kNorm, 3), Precision::kFP32);
  EXPECT_EQ(q.Of(Module::kNorm, -1), Precision::kFP32);
  EXPECT_EQ(ParsePrecisionPolicy("fp16+fp32:all[3]").Of(Module::kLmHead, -1), Precision::kFP16);
  EXPECT_EQ(ParsePrecisionPolicy("tf32").Text(), "tf32");
  EXPECT_TRUE(ParsePrecisionPolicy("tf32").tf32);
  // TF32 rounds matmul inputs to FP16's significand: budgeted as FP16 by the verdicts.
  EXPECT_EQ(compare::BudgetPrecision(ParsePrecisionPolicy("tf32")), Precision::kFP16);
  EXPECT_EQ(compare::BudgetPrecision(ParsePrecisionPolicy("bf16+tf32")), Precision::kBF16);
  EXPECT_EQ(compare::BudgetPrecision(ParsePrecisionPolicy("fp32")), Precision::kFP32);
  EXPECT_EQ(ParsePrecisionPolicy("bf16+fp32:experts+tf32").Text(), "bf16+fp32:mlp+tf32");
  EXPECT_TRUE(ParsePrecisionPolicy("half").Uniform());
  EXPECT_EQ(forward::SplitPolicyList("fp32,bf16+fp32:norm,router,fp16"),
            (std::vector<std::string>{"fp32", "bf16+fp32:norm,router", "fp16"}));
}

TEST(PrecisionPolicyText, ErrorsNameTheBadToken) {
  EXPECT_NE(ErrorOf("bf16+fp32:nrom").find("unknown module 'nrom'"), std::string::npos)
      << ErrorOf("bf16+fp32:nrom");
  EXPECT_NE(ErrorOf("fp12").find("unknown precision 'fp12'"), std::string::npos);
  EXPECT_NE(ErrorOf("bf16+fp8:mlp").find("unknown precision 'fp8'"), std::string::npos);
  EXPECT_NE(ErrorOf("bf16+mlp").find("'mlp' is neither"), std::string::npos);
  EXPECT_NE(ErrorOf("bf16+fp32:").find("names no module"), std::string::npos);
  EXPECT_NE(ErrorOf("bf16+fp32:mlp,").find("empty module"), std::string::npos);
  EXPECT_NE(ErrorOf("bf16+fp32:mlp[5-2]").find("5 > 2"), std::string::npos);
  EXPECT_NE(ErrorOf("bf16+fp32:mlp[a]").find("[N] or [N-M]"), std::string::npos);
  EXPECT_NE(ErrorOf("bf16+fp32:mlp[3").find("[N] or [N-M]"), std::string::npos);
  EXPECT_NE(ErrorOf("bf16+fp32:rotary[3]").find("no layer range"), std::string::npos);
  EXPECT_NE(ErrorOf("bf16+fp32:mlp[3]").find(""), std::string::npos);
  EXPECT_EQ(ErrorOf("bf16+fp32:mlp[3]"), "");
  // Every message names the whole text too.
  EXPECT_NE(ErrorOf("bf16+fp32:nrom").find("'bf16+fp32:nrom'"), std::string::npos);
  // TF32 is a CUDA mode.
  EXPECT_THROW(forward::MakeNumerics(ParsePrecisionPolicy("tf32"), c10::kCPU), InputError);
}

TEST(PrecisionPolicyText, CaseSidesAndDtypesTakePolicies) {
  const nlohmann::ordered_json json = {
      {"name", "p"},
      {"models", {{"m", {{"path", "/nonexistent"}}}}},
      {"prompts", {{{"tokens", {1, 2}}}}},
      {"pairs", {{{"a", "m@fp32"}, {"b", "m@bf16+fp32:norm,mlp[1-2]"}}}}};
  const compare::Case c = compare::ParseCase(json, "x.json");
  ASSERT_EQ(c.pairs.size(), 1u);
  EXPECT_EQ(compare::SideLabel(c.pairs[0].b), "m@bf16+fp32:norm,mlp[1-2]");
  nlohmann::ordered_json bad = json;
  bad["pairs"][0]["b"] = "m@bf16+fp32:nrom";
  try {
    compare::ParseCase(bad, "x.json");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("pairs[0].b: precision policy 'bf16+fp32:nrom': unknown "
                                         "module 'nrom'"), std::string::npos) << e.what();
  }
}

// Logits of `steps` greedy steps (prefill of the prompt, then one token at a time), [steps, V].
at::Tensor GreedyLogits(forward::CausalLM& model, const std::vector<int64_t>& prompt, int steps) {
  forward::KVCache cache;
  at::Tensor ids = at::tensor(at::ArrayRef<int64_t>(prompt), at::kLong).view({1, -1});
  std::vector<at::Tensor> out;
  for (int s = 0; s < steps; ++s) {
    at::Tensor logits = model.Forward(ids, cache).select(1, -1).squeeze(0);  // [V]
    out.push_back(logits.clone());
    ids = logits.argmax().view({1, 1});
  }
  return at::stack(out);
}

struct Model {
  model::ModelConfig config;
  forward::Weights weights;
};

std::unique_ptr<forward::CausalLM> Build(const Model& m, const std::string& policy) {
  return forward::MakeCausalLM(m.config, m.weights,
                               forward::MakeNumerics(ParsePrecisionPolicy(policy), c10::kCPU));
}

constexpr const char* kEveryModuleAt =
    "embedding,attn_proj,attn_scores,rotary,norm,mlp,router,residual,lm_head";

TEST(PrecisionPolicyNumerics, OverridesToTheBaseAndAllFp32AreThePlainRuns) {
  const model::ModelConfig config = testing::PrecisionTestConfig(4, 64);
  const Model m{config, testing::PrecisionTestWeights(config, 3.0, 11)};
  const auto prompt = testing::PrecisionTestPrompt();
  const at::Tensor fp32 = GreedyLogits(*Build(m, "fp32"), prompt, 12);
  for (const std::string base : {"bf16", "fp16"}) {
    const at::Tensor plain = GreedyLogits(*Build(m, base), prompt, 12);
    const at::Tensor same =
        GreedyLogits(*Build(m, base + "+" + base + ":" + kEveryModuleAt), prompt, 12);
    EXPECT_TRUE(at::equal(plain, same)) << base;
    const at::Tensor all = GreedyLogits(*Build(m, base + "+fp32:all"), prompt, 12);
    EXPECT_TRUE(at::equal(all, fp32)) << base << "+fp32:all: max |diff| "
                                      << (all - fp32).abs().max().item<double>();
    // A policy changes something when it upgrades only part of the model (the test can fail).
    EXPECT_FALSE(at::equal(GreedyLogits(*Build(m, base + "+fp32:mlp"), prompt, 12), plain)) << base;
  }
}

TEST(PrecisionPolicyNumerics, MoeCheckpointAllFp32IsTheFp32Run) {
  // Qwen3-MoE written by HF: router, experts, q/k norms, tied head off.
  const io::Checkpoint checkpoint =
      io::Checkpoint::Open(TestDataPath("golden/families/qwen3_moe"));
  auto build = [&](const std::string& policy) {
    return forward::LoadCausalLM(checkpoint,
                                 forward::MakeNumerics(ParsePrecisionPolicy(policy), c10::kCPU));
  };
  const std::vector<int64_t> prompt = {1, 5, 9, 14, 3};
  const at::Tensor fp32 = GreedyLogits(*build("fp32"), prompt, 6);
  EXPECT_TRUE(at::equal(GreedyLogits(*build("bf16+fp32:all"), prompt, 6), fp32));
  const at::Tensor bf16 = GreedyLogits(*build("bf16"), prompt, 6);
  EXPECT_TRUE(at::equal(GreedyLogits(*build(std::string("bf16+bf16:") + kEveryModuleAt), prompt, 6),
                        bf16));
  EXPECT_FALSE(at::equal(GreedyLogits(*build("bf16+fp32:router"), prompt, 6), bf16));
}

TEST(PrecisionPolicyNumerics, UpgradedLmHeadIsTheFp32ProductOfTheBf16Hidden) {
  const model::ModelConfig config = testing::PrecisionTestConfig(3, 64);
  const Model m{config, testing::PrecisionTestWeights(config, 3.0, 12)};
  auto model = Build(m, "bf16+fp32:lm_head");
  at::Tensor hidden;
  forward::Observer observer = [&](const forward::Observation& o) {
    if (o.point == forward::ObservationPoint::kFinalNorm) hidden = o.value.clone();
  };
  forward::KVCache cache;
  const auto prompt = testing::PrecisionTestPrompt();
  at::Tensor ids = at::tensor(at::ArrayRef<int64_t>(prompt), at::kLong).view({1, -1});
  const at::Tensor logits = model->Forward(ids, cache, at::Tensor(), &observer);
  ASSERT_EQ(hidden.scalar_type(), at::kBFloat16);
  const at::Tensor expected =
      at::linear(hidden.to(at::kFloat), m.weights.Get(Role::kLmHead).to(at::kFloat));
  EXPECT_TRUE(at::equal(logits, expected));
  // ... which the plain BF16 run rounds to BF16 first.
  forward::KVCache plain_cache;
  EXPECT_FALSE(at::equal(Build(m, "bf16")->Forward(ids, plain_cache), expected));
}

TEST(PrecisionPolicyNumerics, UpgradedMlpLayerIsFp32FromItsBf16InputAddedBackInBf16) {
  const model::ModelConfig config = testing::PrecisionTestConfig(4, 64);
  const Model m{config, testing::PrecisionTestWeights(config, 3.0, 13)};
  const int64_t k = 2;
  auto observe = [&](const std::string& policy) {
    std::map<std::string, at::Tensor> points;
    forward::Observer observer = [&](const forward::Observation& o) {
      points[std::to_string(o.layer) + forward::ObservationPointName(o.point)] = o.value.clone();
    };
    forward::KVCache cache;
    const auto prompt = testing::PrecisionTestPrompt(1);
    at::Tensor ids = at::tensor(at::ArrayRef<int64_t>(prompt), at::kLong).view({1, -1});
    Build(m, policy)->Forward(ids, cache, at::Tensor(), &observer);
    return points;
  };
  auto upgraded = observe("bf16+fp32:mlp[2]");
  auto plain = observe("bf16");
  const std::string attention = std::to_string(k) + "attention", mlp = std::to_string(k) + "mlp";
  // Upstream of the upgraded MLP nothing changes.
  EXPECT_TRUE(at::equal(upgraded[attention], plain[attention]));
  // By hand: BF16 RMSNorm (FP32 inside, as the references), FP32 SwiGLU, cast, BF16 residual add.
  const at::Tensor h = upgraded[attention];
  at::Tensor x = h.to(at::kFloat);
  x = (x * at::rsqrt(x.pow(2).mean(-1, true) + config.rms_norm_eps)).to(at::kBFloat16);
  x = m.weights.Get(Role::kMlpNorm, k) * x;
  const at::Tensor x32 = x.to(at::kFloat);
  const at::Tensor g = at::linear(x32, m.weights.Get(Role::kGate, k).to(at::kFloat));
  const at::Tensor u = at::linear(x32, m.weights.Get(Role::kUp, k).to(at::kFloat));
  const at::Tensor y = at::linear(at::silu(g) * u, m.weights.Get(Role::kDown, k).to(at::kFloat));
  const at::Tensor expected = h + y.to(at::kBFloat16);
  EXPECT_TRUE(at::equal(upgraded[mlp], expected))
      << "max |diff| " << (upgraded[mlp].to(at::kDouble) - expected.to(at::kDouble)).abs().max();
  EXPECT_FALSE(at::equal(plain[mlp], expected));
}

TEST(PrecisionPolicyNumerics, LayerRangePastTheModelIsRefused) {
  const model::ModelConfig config = testing::PrecisionTestConfig(4, 64);
  const Model m{config, testing::PrecisionTestWeights(config, 3.0, 14)};
  try {
    Build(m, "bf16+fp32:mlp[2-4]");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("mlp[2-4] reaches past the model's 4 layers"),
              std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace parity

namespace parity {
namespace {

// fp32 vs tf32 (CUDA FP32 matmuls as TF32): the tf32 side gets FP16's rounding budget (TF32 keeps
// FP16's 10 explicit significand bits), in either order of the pair, and the verdict names tf32
// rather than an fp16 neither side ran. The same figures with two FP32 sides are a real
// divergence: the budget is what decides. Depth 4: FP32 budget 8 x 2^-24 x 2 = 9.5e-7, FP16's
// 8 x 2^-11 x 2 = 7.8e-3; the pair differs by 1e-4 (relative) and flips a 1 ULP-of-FP16 near-tie.
TEST(PrecisionTf32Verdict, BothOrdersGetTheFp16BudgetAndSayTf32) {
  const forward::PrecisionPolicy fp32 = forward::ParsePrecisionPolicy("fp32");
  const forward::PrecisionPolicy tf32 = forward::ParsePrecisionPolicy("tf32");
  EXPECT_EQ(compare::BudgetName(tf32), "tf32 (fp16-sized budget)");
  EXPECT_EQ(compare::BudgetName(fp32), "fp32");
  EXPECT_EQ(compare::BudgetName(forward::ParsePrecisionPolicy("bf16+tf32")), "bf16");
  const std::vector<double> x = {1.0, 0.9995, 0.2, -0.3}, y = {0.9995, 1.0, 0.2, -0.3};
  compare::StepRecord at;
  at.step = 0;
  at.nmse = 1e-8;  // relative difference 1e-4
  for (const bool tf32_is_b : {true, false}) {
    const forward::PrecisionPolicy& pa = tf32_is_b ? fp32 : tf32;
    const forward::PrecisionPolicy& pb = tf32_is_b ? tf32 : fp32;
    compare::VerdictInputs in;
    in.a = &x;
    in.b = &y;
    in.token_a = 0;
    in.token_b = 1;
    in.precision_a = compare::BudgetPrecision(pa);
    in.precision_b = compare::BudgetPrecision(pb);
    in.side_a.budget_name = compare::BudgetName(pa);
    in.side_b.budget_name = compare::BudgetName(pb);
    in.depth = 4;
    in.at = &at;
    const compare::Classification c = compare::ClassifyDivergence(in);
    SCOPED_TRACE(tf32_is_b ? "fp32 vs tf32" : "tf32 vs fp32");
    EXPECT_EQ(c.kind, compare::DivergenceKind::kRounding) << c.evidence.reason;
    EXPECT_DOUBLE_EQ(c.evidence.rounding_budget.value_or(0),
                     compare::RoundingBudget(Precision::kFP16, 4));
    EXPECT_EQ(c.evidence.precision, "tf32 (fp16-sized budget)");
    EXPECT_NE(c.evidence.reason.find("tf32 (fp16-sized budget)"), std::string::npos)
        << c.evidence.reason;
    EXPECT_EQ(c.evidence.reason.find("rounding at fp16"), std::string::npos) << c.evidence.reason;
    const compare::Classification quiet = compare::ClassifyWithoutFlip(
        {at}, in.precision_a, in.precision_b, 4, std::nullopt, in.side_a, in.side_b);
    EXPECT_EQ(quiet.kind, compare::DivergenceKind::kRounding);
    EXPECT_NE(quiet.evidence.reason.find("tf32"), std::string::npos) << quiet.evidence.reason;
  }
  // Two true FP32 sides with the same figures: beyond FP32's budget, a different function.
  compare::VerdictInputs in;
  in.a = &x;
  in.b = &y;
  in.token_a = 0;
  in.token_b = 1;
  in.depth = 4;
  in.at = &at;
  EXPECT_EQ(compare::ClassifyDivergence(in).kind, compare::DivergenceKind::kReal);
}

}  // namespace
}  // namespace parity
