// VL checkpoints read as their language model: the golden family checkpoints rewritten in each
// container's layout (Qwen2.5-VL `model.*` beside `visual.*`, InternVL `language_model.model.*`,
// Qwen3-VL-MoE `model.language_model.*` with experts fused as gate_up_proj [E, D, 2I] and
// down_proj [E, I, D], transformers 5's fused [E, 2I, D] / [E, D, I]) must load, list the vision
// parts as ignored, and give bitwise the logits of the plain text checkpoint. diff-weights matches
// the two by role, and shape mismatches read as a shape-checking loader would skip them.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/compare/weight_diff.h"
#include "harness/forward/causal_lm.h"
#include "harness/io/checkpoint.h"
#include "harness/io/safetensors.h"
#include "harness/model/inspect.h"
#include "tests/test_util.h"

namespace parity {
namespace {

using nlohmann::json;

std::string Family(const std::string& name) { return TestDataPath("golden/families/" + name); }

// Writes `dir` with `config` and the family's tensors renamed (and reshaped) by `rename`, which
// appends what it wants written for each source tensor; plus the container's vision tensors.
void WriteContainer(const std::string& dir, const std::string& family, const json& config,
                    const std::function<void(const std::string&, const at::Tensor&,
                                             std::vector<io::NamedTensor>&)>& rename,
                    const std::vector<std::string>& vision) {
  const io::Checkpoint source = io::Checkpoint::Open(Family(family));
  std::vector<io::NamedTensor> tensors;
  for (const std::string& name : source.names()) rename(name, source.Get(name).clone(), tensors);
  for (const std::string& name : vision) tensors.push_back({name, at::ones({8, 3})});
  std::filesystem::create_directories(dir);
  io::WriteSafetensors(dir + "/model.safetensors", tensors);
  WriteFileText(dir + "/config.json", config.dump(2));
}

at::Tensor Logits(const std::string& dir) {
  const io::Checkpoint checkpoint = io::Checkpoint::Open(dir);
  const auto numerics = forward::MakeNumerics(forward::Precision::kFP32, c10::kCPU);
  forward::Variants variants = forward::ReferenceVariants(model::Architecture::kLlama);
  variants.sdpa_attention = false;
  variants.lm_head_all_positions = true;
  auto model = forward::LoadCausalLM(checkpoint, numerics, &variants);
  forward::KVCache cache;
  return model->Forward(at::tensor(std::vector<int64_t>{3, 14, 15, 92, 65, 35, 89, 79}, at::kLong).view({1, -1}),
                        cache);
}

std::string Replace(std::string name, const std::string& from, const std::string& to) {
  if (name.rfind(from, 0) == 0) name = to + name.substr(from.size());
  return name;
}

TEST(VlCheckpointTest, Qwen2_5VlAndInternVlHoldTheQwen2LanguageModel) {
  TempDir dir;
  const json text = io::ReadJsonFile(Family("qwen2") + "/config.json");
  json qwen25 = text;  // transformers 4 layout: text fields at the top, a vision_config beside
  qwen25["model_type"] = "qwen2_5_vl";
  qwen25["architectures"] = {"Qwen2_5_VLForConditionalGeneration"};
  qwen25["vision_config"] = {{"depth", 1}, {"hidden_size", 8}};
  WriteContainer(dir.path() + "/qwen25", "qwen2", qwen25,
                 [](const std::string& name, const at::Tensor& t, std::vector<io::NamedTensor>& out) {
                   out.push_back({name, t});
                 },
                 {"visual.patch_embed.proj.weight", "visual.blocks.0.attn.qkv.weight"});
  json internvl = {{"model_type", "internvl_chat"}, {"architectures", {"InternVLChatModel"}},
                   {"llm_config", text}, {"vision_config", {{"hidden_size", 8}}}};
  WriteContainer(dir.path() + "/internvl", "qwen2", internvl,
                 [](const std::string& name, const at::Tensor& t, std::vector<io::NamedTensor>& out) {
                   out.push_back({"language_model." + name, t});  // model.* and lm_head alike
                 },
                 {"vision_model.embeddings.patch_embedding.weight", "mlp1.0.weight"});
  const at::Tensor plain = Logits(Family("qwen2"));
  EXPECT_TRUE(Logits(dir.path() + "/qwen25").equal(plain));
  EXPECT_TRUE(Logits(dir.path() + "/internvl").equal(plain));
  // inspect lists the vision parts as ignored and the counts agree.
  const model::CheckpointSummary summary =
      model::SummarizeCheckpoint(io::Checkpoint::Open(dir.path() + "/internvl"));
  EXPECT_TRUE(summary.table_agrees()) << summary.ToText();
  EXPECT_TRUE(summary.counts_agree) << summary.ToText();
  EXPECT_EQ(summary.ignored.size(), 2u) << summary.ToText();  // vision_model.*, mlp1.*
  EXPECT_EQ(summary.ignored_parameters, 2 * 24);
  // diff-weights across the two containers, by role: every text tensor bitwise equal.
  const compare::WeightDiffReport report = compare::DiffWeights(dir.path() + "/qwen25", dir.path() + "/internvl");
  EXPECT_EQ(report.Count(compare::WeightStatus::kBitwiseEqual), static_cast<int64_t>(report.compared.size()));
  EXPECT_GT(report.compared.size(), 20u);
}

TEST(VlCheckpointTest, Qwen3VlMoeFusedTransposedExpertsAndTransformers5FusedExperts) {
  TempDir dir;
  const json text = io::ReadJsonFile(Family("qwen3_moe") + "/config.json");
  const int64_t experts = text.at("num_local_experts").get<int64_t>();  // as transformers 5 saves it
  // Experts regrouped per layer: fused as `transposed` says.
  auto fuse = [&](bool transposed, const std::string& model_prefix) {
    return [=](const std::string& name, const at::Tensor& t, std::vector<io::NamedTensor>& out) {
      const std::string renamed = Replace(name, "model.", model_prefix);
      const size_t at_experts = renamed.find(".mlp.experts.");
      if (at_experts == std::string::npos) return out.push_back({renamed, t});
      if (name.find(".experts.0.gate_proj") == std::string::npos) return;  // fused from expert 0's turn
      const io::Checkpoint source = io::Checkpoint::Open(Family("qwen3_moe"));
      const std::string layer = name.substr(0, name.find(".mlp.experts."));
      std::vector<at::Tensor> gate_up, down;
      for (int64_t e = 0; e < experts; ++e) {
        const std::string base = layer + ".mlp.experts." + std::to_string(e) + ".";
        at::Tensor g = source.Get(base + "gate_proj.weight"), u = source.Get(base + "up_proj.weight");
        at::Tensor d = source.Get(base + "down_proj.weight");
        gate_up.push_back(transposed ? at::cat({g.t(), u.t()}, 1) : at::cat({g, u}, 0));
        down.push_back(transposed ? d.t() : d);
      }
      const std::string prefix = renamed.substr(0, at_experts) + ".mlp.experts.";
      out.push_back({prefix + "gate_up_proj", at::stack(gate_up).contiguous()});
      out.push_back({prefix + "down_proj", at::stack(down).contiguous()});
    };
  };
  json vl = {{"model_type", "qwen3_vl_moe"}, {"text_config", text}, {"vision_config", {{"depth", 1}}},
             {"tie_word_embeddings", false}};
  WriteContainer(dir.path() + "/vl", "qwen3_moe", vl, fuse(true, "model.language_model."),
                 {"model.visual.patch_embed.proj.weight"});
  WriteContainer(dir.path() + "/tf5", "qwen3_moe", text, fuse(false, "model."), {});
  const at::Tensor plain = Logits(Family("qwen3_moe"));
  EXPECT_TRUE(Logits(dir.path() + "/vl").equal(plain));
  EXPECT_TRUE(Logits(dir.path() + "/tf5").equal(plain));
  const model::CheckpointSummary summary = model::SummarizeCheckpoint(io::Checkpoint::Open(dir.path() + "/vl"));
  EXPECT_TRUE(summary.table_agrees()) << summary.ToText();
  EXPECT_TRUE(summary.counts_agree) << summary.ToText();
  EXPECT_EQ(summary.from_config.total, model::SummarizeCheckpoint(io::Checkpoint::Open(Family("qwen3_moe"))).from_config.total);
}

TEST(VlCheckpointTest, ShapeMismatchesAcrossArchitecturesReadAsALoaderWouldSkipThem) {
  // Qwen2 against Mistral of other sizes: matched by role, every differing shape listed with the
  // checkpoint and model shapes.
  const compare::WeightDiffReport report = compare::DiffWeights(Family("qwen2"), Family("mistral"));
  EXPECT_GT(report.Count(compare::WeightStatus::kShapeMismatch), 10);
  const std::string text = compare::FormatWeightDiff(report);
  EXPECT_NE(text.find("checkpoint shape [72, 72] vs model shape [144, 96]"), std::string::npos) << text;
  // Qwen2's q/k/v biases have no Mistral counterpart: listed, not dropped.
  EXPECT_NE(text.find("self_attn.q_proj.bias"), std::string::npos) << text;
}

}  // namespace
}  // namespace parity
