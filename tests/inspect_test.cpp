// SummarizeCheckpoint and `parity inspect` on tiny checkpoints written here, with names spelled out
// literally (not taken from the tables) so that the table check is tested, not assumed.
#include "harness/model/inspect.h"

#include <algorithm>
#include <filesystem>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "harness/io/checkpoint.h"
#include "harness/io/safetensors.h"
#include "tests/test_util.h"

namespace parity::model {
namespace {

using nlohmann::json;

// V 64, D 16, 2 layers, 4 heads of d = 4, 2 KV heads, F 24, no bias.
json TinyConfig() {
  return {{"model_type", "internlm2"}, {"architectures", {"InternLM2ForCausalLM"}},
          {"vocab_size", 64},          {"hidden_size", 16},
          {"num_hidden_layers", 2},    {"num_attention_heads", 4},
          {"num_key_value_heads", 2},  {"intermediate_size", 24},
          {"bias", false},             {"torch_dtype", "bfloat16"}};
}
// Parameters by hand: embedding + output 2 * 64 * 16 = 2048; per layer wqkv (4 + 2 * 2) * 4 = 32 rows
// * 16 = 512, wo 256, w1/w2/w3 3 * 24 * 16 = 1152, norms 32: 1952; total 2048 + 2 * 1952 + 16 = 5968.
constexpr int64_t kTinyParameters = 5968;

std::vector<io::NamedTensor> TinyTensors() {
  auto t = [](std::vector<int64_t> shape) { return at::ones(shape, at::kBFloat16); };
  std::vector<io::NamedTensor> tensors = {{"model.tok_embeddings.weight", t({64, 16})},
                                          {"model.norm.weight", t({16})},
                                          {"output.weight", t({64, 16})}};
  for (int layer = 0; layer < 2; ++layer) {
    std::string p = "model.layers." + std::to_string(layer) + ".";
    tensors.push_back({p + "attention.wqkv.weight", t({32, 16})});
    tensors.push_back({p + "attention.wo.weight", t({16, 16})});
    tensors.push_back({p + "feed_forward.w1.weight", t({24, 16})});
    tensors.push_back({p + "feed_forward.w3.weight", t({24, 16})});
    tensors.push_back({p + "feed_forward.w2.weight", t({16, 24})});
    tensors.push_back({p + "attention_norm.weight", t({16})});
    tensors.push_back({p + "ffn_norm.weight", t({16})});
  }
  return tensors;
}

void WriteCheckpoint(const std::string& dir, const json& config, const std::vector<io::NamedTensor>& tensors) {
  WriteFileText(dir + "/config.json", config.dump(2));
  io::WriteSafetensors(dir + "/model.safetensors", tensors);
}

TEST(InspectTest, ConsistentCheckpoint) {
  TempDir dir;
  WriteCheckpoint(dir.path(), TinyConfig(), TinyTensors());
  CheckpointSummary summary = SummarizeCheckpoint(io::Checkpoint::Open(dir.path()));
  EXPECT_EQ(summary.config.arch, Architecture::kInternLM2);
  EXPECT_EQ(summary.from_config.total, kTinyParameters);
  EXPECT_EQ(summary.tensor_parameters, kTinyParameters);
  EXPECT_TRUE(summary.counts_agree);
  EXPECT_EQ(summary.num_tensors, 17);
  EXPECT_EQ(summary.dtype_tensors, (std::map<std::string, int64_t>{{"BF16", 17}}));
  EXPECT_EQ(summary.dtype_parameters.at("BF16"), kTinyParameters);
  EXPECT_EQ(summary.num_shards, 1);
  EXPECT_FALSE(summary.sharded);
  EXPECT_EQ(summary.bytes_on_disk, std::filesystem::file_size(dir.path() + "/model.safetensors"));
  EXPECT_TRUE(summary.table_agrees()) << summary.ToText();
  EXPECT_EQ(summary.architectures, std::vector<std::string>{"InternLM2ForCausalLM"});
  std::string text = summary.ToText();
  EXPECT_NE(text.find("from tensors 5,968: agrees with the config"), std::string::npos) << text;
  EXPECT_NE(text.find("BF16 (17 tensors, 5,968 parameters)"), std::string::npos) << text;
}

TEST(InspectTest, ReportsMissingUnexpectedAndMisshapenTensors) {
  TempDir dir;
  auto tensors = TinyTensors();
  tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                               [](const auto& t) { return t.name == "model.layers.1.feed_forward.w3.weight"; }),
                tensors.end());
  for (auto& t : tensors) {
    if (t.name == "model.layers.0.attention.wqkv.weight") t.tensor = at::ones({16, 16}, at::kBFloat16);
  }
  tensors.push_back({"model.layers.0.attention.rotary_emb.inv_freq", at::ones({2}, at::kFloat)});
  tensors.push_back({"model.layers.2.attention_norm.weight", at::ones({16}, at::kBFloat16)});  // layer 2 of 2
  WriteCheckpoint(dir.path(), TinyConfig(), tensors);
  CheckpointSummary summary = SummarizeCheckpoint(io::Checkpoint::Open(dir.path()));
  EXPECT_EQ(summary.missing, std::vector<std::string>{"model.layers.1.feed_forward.w3.weight"});
  EXPECT_EQ(summary.unexpected, (std::vector<std::string>{"model.layers.0.attention.rotary_emb.inv_freq",
                                                          "model.layers.2.attention_norm.weight"}));
  EXPECT_EQ(summary.shape_mismatches,
            std::vector<std::string>{"model.layers.0.attention.wqkv.weight: expected [32, 16], got [16, 16]"});
  // 5968 - w3 (384) - (512 - 256) for the smaller wqkv + 2 + 16.
  EXPECT_EQ(summary.tensor_parameters, kTinyParameters - 384 - 256 + 2 + 16);
  EXPECT_FALSE(summary.counts_agree);
  EXPECT_EQ(summary.dtype_tensors.at("F32"), 1);
  std::string text = summary.ToText();
  EXPECT_NE(text.find("DISAGREES"), std::string::npos) << text;
  EXPECT_NE(text.find("MISSING 1: model.layers.1.feed_forward.w3.weight"), std::string::npos) << text;
}

TEST(InspectTest, TiedEmbeddingsWithOrWithoutAStoredHead) {
  TempDir dir;
  json config = TinyConfig();
  config["tie_word_embeddings"] = true;
  auto tensors = TinyTensors();
  WriteCheckpoint(dir.path(), config, tensors);  // the head stored anyway
  CheckpointSummary stored = SummarizeCheckpoint(io::Checkpoint::Open(dir.path()));
  EXPECT_EQ(stored.from_config.total, kTinyParameters - 1024);
  EXPECT_TRUE(stored.counts_agree);
  EXPECT_TRUE(stored.table_agrees());

  TempDir dir2;
  tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                               [](const auto& t) { return t.name == "output.weight"; }),
                tensors.end());
  WriteCheckpoint(dir2.path(), config, tensors);
  CheckpointSummary absent = SummarizeCheckpoint(io::Checkpoint::Open(dir2.path()));
  EXPECT_TRUE(absent.counts_agree);
  EXPECT_TRUE(absent.table_agrees()) << absent.ToText();
}

TEST(InspectCliTest, TextAndJsonOnAShardedCheckpoint) {
  TempDir dir;
  WriteFileText(dir.path() + "/config.json", TinyConfig().dump(2));
  auto tensors = TinyTensors();
  std::vector<io::NamedTensor> first(tensors.begin(), tensors.begin() + 9);
  std::vector<io::NamedTensor> second(tensors.begin() + 9, tensors.end());
  io::WriteSafetensors(dir.path() + "/model-00001-of-00002.safetensors", first);
  io::WriteSafetensors(dir.path() + "/model-00002-of-00002.safetensors", second);
  json index = {{"metadata", {{"total_size", kTinyParameters * 2}}}, {"weight_map", json::object()}};
  for (const auto& t : first) index["weight_map"][t.name] = "model-00001-of-00002.safetensors";
  for (const auto& t : second) index["weight_map"][t.name] = "model-00002-of-00002.safetensors";
  WriteFileText(dir.path() + "/model.safetensors.index.json", index.dump(2));

  std::string output;
  EXPECT_EQ(RunCommand(ParityCli() + " inspect " + dir.path(), &output), 0) << output;
  EXPECT_NE(output.find("internlm2 (InternLM2ForCausalLM)"), std::string::npos) << output;
  EXPECT_NE(output.find("17 tensors in 2 shards (indexed)"), std::string::npos) << output;
  EXPECT_NE(output.find("layers 2, hidden 16, heads 4, kv heads 2 (group 2), head_dim 4"), std::string::npos)
      << output;

  EXPECT_EQ(RunCommand(ParityCli() + " inspect --json " + dir.path(), &output), 0) << output;
  json parsed = json::parse(output);
  EXPECT_EQ(parsed["architecture"], "internlm2");
  EXPECT_EQ(parsed["parameters"]["from_config"]["total"], kTinyParameters);
  EXPECT_EQ(parsed["parameters"]["from_tensors"], kTinyParameters);
  EXPECT_EQ(parsed["parameters"]["agree"], true);
  EXPECT_EQ(parsed["num_shards"], 2);
  EXPECT_EQ(parsed["dtypes"]["BF16"]["tensors"], 17);
  EXPECT_EQ(parsed["table"]["agrees"], true);
}

TEST(InspectCliTest, BadConfigExitsTwoNamingTheField) {
  TempDir dir;
  json config = TinyConfig();
  config["num_key_value_heads"] = 3;
  WriteCheckpoint(dir.path(), config, TinyTensors());
  std::string output;
  EXPECT_EQ(RunCommand(ParityCli() + " inspect " + dir.path(), &output), 2) << output;
  EXPECT_NE(output.find("field 'num_key_value_heads': 3 does not divide num_attention_heads 4"), std::string::npos)
      << output;
}

}  // namespace
}  // namespace parity::model
