// Layer placement over devices (forward/placement.h): the syntax, the planner against synthetic
// device memory (several GPUs, uneven free memory, a model that does not fit, one that needs three
// devices), and the promise that placement does not change results: a model whose layers are
// spread over several "devices" that are all the CPU (so every boundary copy runs) gives logits
// bitwise equal to the same model on one device, for every family feature the boundary must carry
// (rotary tables, positions, padding masks, sliding windows, a tied head) and for a mixed-precision
// policy. The GPU confirmation (cuda:0 vs cuda:0,cuda:1) is scripts/gpu_placement.sh.
#include <cmath>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "harness/forward/causal_lm.h"
#include "harness/forward/memory_plan.h"
#include "harness/forward/placement.h"
#include "harness/forward/step_pieces.h"
#include "harness/forward/weights.h"
#include "harness/model/arch.h"

namespace parity::forward {
namespace {

const c10::Device kCpu(c10::kCPU);
c10::Device Cuda(int i) { return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i)); }
constexpr int64_t kGB = 1000LL * 1000 * 1000;

// internlm2_5-7b-chat's sizes (BRIEF.md): 7.7B parameters, 15.5 GB at BF16, 31 GB at FP32.
model::ModelConfig SevenB() {
  model::ModelConfig c;
  c.arch = model::Architecture::kInternLM2;
  c.source = "7b-shaped";
  c.vocab_size = 92544;
  c.hidden_size = 4096;
  c.num_layers = 32;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  c.intermediate_size = 14336;
  c.max_position_embeddings = 32768;
  c.bias = false;
  return c;
}

std::string Refusal(const PlacementSpec& spec, const ModelCost& cost, DeviceLedger& ledger) {
  try {
    PlanPlacement(spec, cost, ledger, "original@fp32");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(PlacementSpec, ParsesDevicesCountsCapsAndAuto) {
  PlacementSpec s = ParsePlacementSpec("cuda:0=20, cuda:1=12", "--devices");
  ASSERT_EQ(s.devices.size(), 2u);
  EXPECT_EQ(s.devices[1].device, Cuda(1));
  EXPECT_EQ(*s.devices[0].layers, 20);
  EXPECT_EQ(*s.devices[1].layers, 12);
  s = ParsePlacementSpec("cuda:0@40GB,cuda:1@512MiB,cuda:2", "--devices");
  EXPECT_EQ(*s.devices[0].memory_cap, 40 * kGB);
  EXPECT_EQ(*s.devices[1].memory_cap, 512LL * 1024 * 1024);
  EXPECT_FALSE(s.devices[2].memory_cap.has_value());
  EXPECT_TRUE(ParsePlacementSpec("AUTO", "x").automatic);
  EXPECT_TRUE(IsSingleDevice(ParsePlacementSpec("cpu", "x")));
  EXPECT_FALSE(IsSingleDevice(ParsePlacementSpec("cpu,cpu", "x")));
  EXPECT_EQ(ParsePlacementSpec("cuda=3@1.5", "x").devices[0].memory_cap, int64_t(1.5e9));
}

TEST(PlacementSpec, RefusesBadTextNamingTheFlagAndTheItem) {
  auto message = [](const std::string& text) {
    try {
      ParsePlacementSpec(text, "--devices-b");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message("cuda:0,gpu1").find("--devices-b: 'cuda:0,gpu1': unknown device 'gpu1'"),
            std::string::npos) << message("cuda:0,gpu1");
  EXPECT_NE(message("cuda:0=4,cuda:1").find("for every device or for none"), std::string::npos);
  EXPECT_NE(message("cuda:0=0").find("no layer count"), std::string::npos);
  EXPECT_NE(message("cuda:0@lots").find("no memory size"), std::string::npos);
  EXPECT_NE(message("cuda:0,,cuda:1").find("empty item"), std::string::npos);
  EXPECT_NE(message("").find("empty"), std::string::npos);
  EXPECT_NE(message("cpu,cuda:0").find("all CPU or all CUDA"), std::string::npos);
}

TEST(PlacementCost, OneDeviceTotalIsTheFootprintEstimate) {
  const model::ModelConfig c = SevenB();
  for (Precision p : {Precision::kFP32, Precision::kBF16, Precision::kFP64}) {
    const ModelCost cost = EstimateModelCost(c, p, c10::kCUDA, 160);
    EXPECT_EQ(cost.total_one_device(),
              EstimateFootprint(c, p, Cuda(0), 160, "x").total()) << PrecisionName(p);
  }
  // A policy keeping the norms and the last two layers' MLPs in FP32 weighs those at 4 bytes.
  const ModelCost bf16 = EstimateModelCost(c, Precision::kBF16, c10::kCUDA, 160);
  const ModelCost mixed =
      EstimateModelCost(c, ParsePrecisionPolicy("bf16+fp32:mlp[30-31]"), c10::kCUDA, 160);
  EXPECT_EQ(mixed.layer_weight_bytes[0], bf16.layer_weight_bytes[0]);
  EXPECT_EQ(mixed.layer_weight_bytes[31] - bf16.layer_weight_bytes[31],
            3 * c.intermediate_size * c.hidden_size * 2);
}

TEST(PlacementPlan, AutoUsesOneGpuWhenTheModelFitsAndSpreadsGivenDevicesByFreeMemory) {
  const ModelCost cost = EstimateModelCost(SevenB(), Precision::kFP32, c10::kCUDA, 160);
  DeviceLedger ledger({{Cuda(0), 140 * kGB}, {Cuda(1), 140 * kGB}});
  const Placement one = PlanPlacement(ParsePlacementSpec("auto", "x"), cost, ledger, "a");
  ASSERT_EQ(one.stages.size(), 1u);
  EXPECT_EQ(one.stages[0].device, Cuda(0));
  EXPECT_EQ(one.stages[0].needed(), cost.total_one_device());
  // Uneven free memory (the first GPU holds another model): layers follow what each has left.
  DeviceLedger uneven({{Cuda(0), 30 * kGB}, {Cuda(1), 60 * kGB}});
  const Placement two = PlanPlacement(ParsePlacementSpec("cuda:0,cuda:1", "x"), cost, uneven, "a");
  ASSERT_EQ(two.stages.size(), 2u);
  EXPECT_EQ(two.stages[0].first_layer, 0);
  EXPECT_EQ(two.stages[1].end_layer, 32);
  EXPECT_LT(two.stages[0].layers(), two.stages[1].layers());
  EXPECT_GE(two.stages[0].layers(), 8);  // ~1/3 of the layers after the fixed parts
  for (const PlacementStage& s : two.stages) EXPECT_LE(s.needed(), *s.free_bytes) << s.device;
  EXPECT_NE(two.Describe().find("cuda:0 layers 0-"), std::string::npos) << two.Describe();
  EXPECT_NE(two.Describe().find("+ embedding;"), std::string::npos) << two.Describe();
  EXPECT_NE(two.Describe().find("+ norm, lm_head"), std::string::npos) << two.Describe();
  // The plan took its memory: a second model of the same size fits in the rest, a third does not.
  EXPECT_EQ(*uneven.Free(Cuda(0)), 30 * kGB - two.stages[0].needed());
  PlanPlacement(ParsePlacementSpec("cuda:0,cuda:1", "x"), cost, uneven, "b");
  EXPECT_NE(Refusal(ParsePlacementSpec("cuda:0,cuda:1", "x"), cost, uneven).find("does not fit"),
            std::string::npos);
}

TEST(PlacementPlan, AModelThatNeedsThreeOfFourGpus) {
  // 7B at FP32 (~31 GB with its cache) on four GPUs with 12 GB free each: three are needed.
  const ModelCost cost = EstimateModelCost(SevenB(), Precision::kFP32, c10::kCUDA, 160);
  DeviceLedger ledger({{Cuda(0), 12 * kGB}, {Cuda(1), 12 * kGB}, {Cuda(2), 12 * kGB},
                       {Cuda(3), 12 * kGB}});
  const Placement p = PlanPlacement(ParsePlacementSpec("auto", "x"), cost, ledger, "a");
  ASSERT_EQ(p.stages.size(), 3u) << p.DescribeWithNumbers();
  EXPECT_EQ(p.stages[2].device, Cuda(2));
  EXPECT_NE(p.reason.find("auto: the fewest of 4 device(s) that hold it: 3"), std::string::npos)
      << p.reason;
  int64_t covered = 0;
  for (const PlacementStage& s : p.stages) {
    EXPECT_LE(s.needed(), 12 * kGB) << s.device;
    covered += s.layers();
  }
  EXPECT_EQ(covered, 32);
}

TEST(PlacementPlan, GivenCountsAndCapsAreHonouredAndADeviceSharedByTwoStagesSplitsItsMemory) {
  const ModelCost cost = EstimateModelCost(SevenB(), Precision::kBF16, c10::kCUDA, 160);
  DeviceLedger ledger({{Cuda(0), 140 * kGB}, {Cuda(1), 140 * kGB}});
  Placement p = PlanPlacement(ParsePlacementSpec("cuda:0=20,cuda:1=12", "x"), cost, ledger, "a");
  EXPECT_EQ(p.Key(), "cuda:0=20,cuda:1=12");
  EXPECT_EQ(p.reason, "given layer counts");
  DeviceLedger capped({{Cuda(0), 140 * kGB}, {Cuda(1), 140 * kGB}});
  p = PlanPlacement(ParsePlacementSpec("cuda:0@6GB,cuda:1", "x"), cost, capped, "a");
  EXPECT_LE(p.stages[0].needed(), 6 * kGB);
  EXPECT_EQ(p.stages[0].free_source, "@6 GB");
  EXPECT_EQ(p.stages[0].layers() + p.stages[1].layers(), 32);
  // Two stages on one device each get half of it.
  DeviceLedger one({{Cuda(0), 20 * kGB}});
  p = PlanPlacement(ParsePlacementSpec("cuda:0,cuda:0", "x"), cost, one, "a");
  EXPECT_EQ(*p.stages[0].free_bytes, 10 * kGB);
  // Layer counts that do not add up, more devices than layers: refused by name.
  EXPECT_NE(Refusal(ParsePlacementSpec("cuda:0=20,cuda:1=2", "x"), cost, ledger)
                .find("the layer counts add up to 22, the model has 32 layers"),
            std::string::npos);
}

TEST(PlacementPlan, ARefusalGivesEachDevicesNeedAndFreeMemoryBeforeLoading) {
  const ModelCost cost = EstimateModelCost(SevenB(), Precision::kFP64, c10::kCUDA, 160);
  DeviceLedger ledger({{Cuda(0), 20 * kGB}, {Cuda(1), 20 * kGB}});
  const std::string text = Refusal(ParsePlacementSpec("cuda:0,cuda:1", "x"), cost, ledger);
  EXPECT_NE(text.find("original@fp32 does not fit 'cuda:0,cuda:1'"), std::string::npos) << text;
  EXPECT_NE(text.find("nothing was loaded"), std::string::npos) << text;
  EXPECT_NE(text.find("original@fp32 on cuda:0: needs "), std::string::npos) << text;
  EXPECT_NE(text.find("original@fp32 on cuda:1: needs "), std::string::npos) << text;
  EXPECT_NE(text.find("20 GB available (test)"), std::string::npos) << text;
  EXPECT_NE(text.find(FormatBytes(cost.total_one_device()) + " on one device"), std::string::npos) << text;
  // Nothing was reserved by the refused plan.
  EXPECT_EQ(*ledger.Free(Cuda(0)), 20 * kGB);
  // auto over both: refused with the two-device split's numbers.
  const std::string automatic = Refusal(ParsePlacementSpec("auto", "x"), cost, ledger);
  EXPECT_NE(automatic.find("on cuda:1: needs"), std::string::npos) << automatic;
}

// --- placement does not change results (CPU "devices") ------------------------------------------

model::ModelConfig SmallConfig(const char* arch) {
  model::ModelConfig c;
  c.arch = model::Architecture(arch);
  c.source = std::string("placement-test ") + arch;
  c.vocab_size = 300;
  c.hidden_size = 64;
  c.num_layers = 4;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.intermediate_size = 96;
  c.max_position_embeddings = 16;  // prompt + steps pass it: the dynamic rope path runs
  c.rope_scaling = {model::RopeScaling::Type::kDynamic, 2.0};
  c.rms_norm_eps = 1e-5;
  c.bias = false;
  return c;
}

Weights SmallWeights(const model::ModelConfig& config, uint64_t seed) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  Weights weights;
  for (const model::ExpectedTensor& e : model::ExpectedTensors(config)) {
    at::Tensor noise = at::randn(e.shape, generator, at::TensorOptions().dtype(at::kDouble));
    at::Tensor value = e.name.find("norm") != std::string::npos ? 1 + noise * 0.1
                       : e.shape.size() == 1                   ? noise * 0.1
                       : e.role == model::Role::kEmbedding     ? noise
                       : noise * (4.0 / std::sqrt(static_cast<double>(e.shape.back())));
    weights.Set(e.role, e.layer, e.expert, value.to(at::kBFloat16));
  }
  return weights;
}

Placement OnCpuStages(std::vector<int64_t> counts) {
  Placement p;
  int64_t first = 0;
  for (int64_t n : counts) {
    PlacementStage s;
    s.first_layer = first;
    s.end_layer = first += n;
    p.stages.push_back(s);
  }
  return p;
}

at::Tensor Bits(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return c.element_size() == 8 ? c.view(at::kLong) : c.view(at::kInt);
}

// Prompt (batch 2, the second row left-padded) then 12 greedy steps with the KV cache; every
// Forward's logits, and the observer's values at every point.
std::vector<at::Tensor> Run(CausalLM& model) {
  std::vector<at::Tensor> out;
  KVCache cache;
  cache.capacity_hint = 8;  // grown by doubling on the way: the boundary path meets it too
  at::Tensor tokens = at::tensor({1, 17, 42, 99, 3, 250, 8, 0, 0, 5, 6, 7, 8, 9}, at::kLong).view({2, 7});
  at::Tensor mask = at::ones({2, 7}, at::kLong);
  mask[1][0] = 0;
  mask[1][1] = 0;
  Observer observer = [&](const Observation& o) { out.push_back(o.value.clone()); };
  for (int step = 0; step <= 12; ++step) {
    at::Tensor logits = model.Forward(tokens, cache, mask, &observer);
    out.push_back(logits);
    tokens = logits.select(1, logits.size(1) - 1).argmax(-1).view({2, 1});
    mask = at::cat({mask, at::ones({2, 1}, at::kLong)}, 1);
  }
  return out;
}

void ExpectBitwiseEqualToOneDevice(const model::ModelConfig& config, const PrecisionPolicy& policy,
                                   const std::vector<int64_t>& counts) {
  const Weights weights = SmallWeights(config, 7);
  const Numerics numerics = MakeNumerics(policy, kCpu);
  const Placement placement = OnCpuStages(counts);
  auto single = MakeCausalLM(config, weights, numerics);
  auto placed = MakeCausalLM(config, weights, numerics, nullptr, &placement);
  const std::vector<at::Tensor> a = Run(*single), b = Run(*placed);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].sizes(), b[i].sizes()) << i;
    EXPECT_TRUE(at::equal(Bits(a[i]), Bits(b[i])))
        << config.source << " " << policy.Text() << " " << placement.Key() << ": output " << i
        << " differs, max |a-b| "
        << (a[i].to(at::kDouble) - b[i].to(at::kDouble)).abs().max().item<double>();
  }
}

TEST(PlacementBitwise, InternLM2OverThreeCpuStagesAtEachPrecision) {
  for (const char* policy : {"fp32", "bf16", "fp16", "bf16+fp32:norm,lm_head,mlp[2-3]"}) {
    ExpectBitwiseEqualToOneDevice(SmallConfig("internlm2"), ParsePrecisionPolicy(policy), {1, 2, 1});
  }
}

TEST(PlacementBitwise, LlamaQwen2AndMistralWithTiedHeadsAndSlidingWindows) {
  model::ModelConfig llama = SmallConfig("llama");
  llama.tie_word_embeddings = true;  // the head's table is copied to the last stage
  ExpectBitwiseEqualToOneDevice(llama, Precision::kBF16, {2, 2});
  model::ModelConfig mistral = SmallConfig("mistral");
  mistral.sliding_window = 5;        // the windowed mask crosses the boundary too
  mistral.sliding_layers.assign(4, true);
  ExpectBitwiseEqualToOneDevice(mistral, Precision::kFP32, {1, 1, 1, 1});
  model::ModelConfig qwen3 = SmallConfig("qwen3");
  ExpectBitwiseEqualToOneDevice(qwen3, Precision::kBF16, {3, 1});
}

// CUDA-graph pieces (decode/piecewise.h) run on one device: a placed model's steps run eagerly.
TEST(PlacementBitwise, APlacedModelIsNotRecordedPiecewise) {
  const model::ModelConfig config = SmallConfig("llama");
  const Weights weights = SmallWeights(config, 7);
  const Numerics numerics = MakeNumerics(Precision::kFP32, kCpu);
  const Placement placement = OnCpuStages({2, 2});
  auto single = MakeCausalLM(config, weights, numerics);
  auto placed = MakeCausalLM(config, weights, numerics, nullptr, &placement);
  ASSERT_NE(placed->step_pieces(), nullptr);
  EXPECT_EQ(single->step_pieces()->RecordBlocker(), "");
  EXPECT_NE(placed->step_pieces()->RecordBlocker().find("placed over several devices"),
            std::string::npos);
  EXPECT_EQ(placed->devices(), std::vector<c10::Device>{kCpu});
}

TEST(PlacementBitwise, ABadPlacementIsRefusedByName) {
  const model::ModelConfig config = SmallConfig("internlm2");
  const Weights weights = SmallWeights(config, 7);
  const Numerics numerics = MakeNumerics(Precision::kFP32, kCpu);
  const Placement short_one = OnCpuStages({1, 2});
  try {
    MakeCausalLM(config, weights, numerics, nullptr, &short_one);
    FAIL() << "accepted a placement of 3 layers for 4";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("holds 3 layers, the model has 4"), std::string::npos)
        << e.what();
  }
  const Placement empty_stage = OnCpuStages({2, 0, 2});
  EXPECT_THROW(MakeCausalLM(config, weights, numerics, nullptr, &empty_stage), InputError);
}

}  // namespace
}  // namespace parity::forward
