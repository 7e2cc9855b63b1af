// Config-only directories (the seeds compare configs without weights) and VL configs: parameter
// counts total and active from config.json alone, nested text_config / vision_config compared field
// by field with prefixes, expected model_type differences between VL checkpoint types.
// The configs under tests/data/configs/ are written from BRIEF.md's and issue 10's figures (see its
// README): a Qwen3-VL-235B-A22B-shaped one, the same with 512 experts (Intern-S1-Pro's text model),
// an InternVLA-N1-shaped one and the Qwen2.5-VL config it is built on (resized vocabulary).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/compare/config_diff.h"
#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/model/config.h"
#include "harness/model/inspect.h"
#include "tests/test_util.h"

namespace parity {
namespace {

using compare::FieldVerdict;
using nlohmann::json;

std::string Dir(const std::string& name) { return TestDataPath("configs/" + name); }

const compare::FieldComparison* Row(const compare::ConfigDiff& diff, const std::string& field) {
  for (const auto& row : diff.fields) {
    if (row.field == field) return &row;
  }
  return nullptr;
}

TEST(ConfigOnlyTest, Qwen3Vl235bCountsTotalAndActiveFromTheConfig) {
  ASSERT_TRUE(model::IsConfigOnly(Dir("qwen3-vl-235b-a22b")));
  const model::CheckpointSummary summary = model::SummarizeConfigOnly(Dir("qwen3-vl-235b-a22b"));
  EXPECT_EQ(summary.config.arch, model::Architecture("qwen3_moe"));
  EXPECT_EQ(summary.config.container.model_type, "qwen3_vl_moe");
  EXPECT_EQ(summary.config.num_experts, 128);
  EXPECT_EQ(summary.config.experts_per_token, 8);
  EXPECT_EQ(summary.config.head_dim, 128);
  // BRIEF.md: 235,093,634,560 parameters, 22,190,763,520 active (the text model).
  EXPECT_EQ(summary.from_config.total, 235093634560);
  EXPECT_EQ(summary.from_config.active, 22190763520);
  // Independently: embedding + head 2 V D, final norm D, per layer attention (q, o [H d, D], k, v
  // [kv d, D], q/k norm d each, two norms D), router E D, E experts of 3 I D; active: k experts.
  const int64_t V = 151936, D = 4096, L = 94, H = 64, KV = 4, d = 128, E = 128, I = 1536, K = 8;
  const int64_t attention = 2 * H * d * D + 2 * KV * d * D + 2 * d + 2 * D;
  EXPECT_EQ(summary.from_config.total, 2 * V * D + D + L * (attention + E * D + E * 3 * I * D));
  EXPECT_EQ(summary.from_config.active, 2 * V * D + D + L * (attention + E * D + K * 3 * I * D));
  // With 512 experts (Intern-S1-Pro's text model): ~916.5B total, the same 22.19B active.
  const model::CheckpointSummary s1 = model::SummarizeConfigOnly(Dir("intern-s1-pro-shaped"));
  EXPECT_EQ(s1.from_config.total, 2 * V * D + D + L * (attention + 512 * D + 512 * 3 * I * D));
  EXPECT_NEAR(s1.from_config.total / 1e9, 916.5, 0.05);
  EXPECT_EQ(s1.from_config.active, 22190763520 + L * (512 - 128) * D);  // the router grows
}

TEST(ConfigOnlyTest, InspectCliPrintsBillionsForAConfigOnlyDirectory) {
  std::string output;
  EXPECT_EQ(RunCommand(ParityCli() + " inspect " + Dir("qwen3-vl-235b-a22b"), &output), 0) << output;
  EXPECT_NE(output.find("235.09B"), std::string::npos) << output;
  EXPECT_NE(output.find("22.19B"), std::string::npos) << output;
  EXPECT_NE(output.find("128 experts of width 1536, top-8"), std::string::npos) << output;
  EXPECT_NE(output.find("config.json only"), std::string::npos) << output;
  EXPECT_EQ(RunCommand(ParityCli() + " inspect --json " + Dir("qwen3-vl-235b-a22b"), &output), 0) << output;
  const json parsed = json::parse(output);
  EXPECT_EQ(parsed["config_only"], true);
  EXPECT_EQ(parsed["parameters"]["from_config"]["total"], 235093634560);
  EXPECT_EQ(parsed["parameters"]["from_config"]["active"], 22190763520);
}

TEST(ConfigOnlyTest, DiffAgainstIntern_S1_ProShapedNamesNumExperts) {
  const compare::ConfigDiff diff =
      compare::DiffConfigPaths(Dir("qwen3-vl-235b-a22b"), Dir("intern-s1-pro-shaped"));
  EXPECT_FALSE(diff.same_network());
  EXPECT_EQ(diff.Count(FieldVerdict::kMismatch), 1) << diff.ToText();
  const auto* row = Row(diff, "text_config.num_experts");
  ASSERT_NE(row, nullptr) << diff.ToText();
  EXPECT_EQ(row->verdict, FieldVerdict::kMismatch);
  ASSERT_NE(Row(diff, "vision_config"), nullptr);  // equal: one row
  EXPECT_EQ(Row(diff, "vision_config")->verdict, FieldVerdict::kMatch);
  std::string output;
  EXPECT_EQ(RunCommand(ParityCli() + " diff-config " + Dir("qwen3-vl-235b-a22b") + " " +
                           Dir("intern-s1-pro-shaped"), &output), 1) << output;
  EXPECT_NE(output.find("MISMATCH: text_config.num_experts"), std::string::npos) << output;
}

TEST(ConfigOnlyTest, VisionConfigDifferencesAreNamedWithTheirPrefix) {
  TempDir dir;
  json config = io::ReadJsonFile(Dir("qwen3-vl-235b-a22b") + "/config.json");
  config["vision_config"]["depth"] = 24;
  WriteFileText(dir.path() + "/config.json", config.dump());
  const compare::ConfigDiff diff = compare::DiffConfigPaths(Dir("qwen3-vl-235b-a22b"), dir.path());
  ASSERT_NE(Row(diff, "vision_config.depth"), nullptr) << diff.ToText();
  EXPECT_EQ(Row(diff, "vision_config.depth")->verdict, FieldVerdict::kMismatch);
  EXPECT_EQ(diff.Count(FieldVerdict::kMismatch), 1);
}

TEST(ConfigOnlyTest, InternVlaN1IsTheQwen2_5VlNetworkUnderAnotherModelType) {
  const compare::ConfigDiff diff =
      compare::DiffConfigPaths(Dir("internvla-n1-shaped"), Dir("qwen2_5-vl-7b-resized"));
  EXPECT_TRUE(diff.same_network()) << diff.ToText();
  ASSERT_NE(Row(diff, "model_type"), nullptr);
  EXPECT_EQ(Row(diff, "model_type")->verdict, FieldVerdict::kExpectedDifference);
  EXPECT_NE(Row(diff, "model_type")->note.find("qwen2 language model"), std::string::npos);
  // Against the stock Qwen2.5-VL vocabulary (152064 rows) the resized embedding is a mismatch.
  TempDir dir;
  json stock = io::ReadJsonFile(Dir("qwen2_5-vl-7b-resized") + "/config.json");
  stock["vocab_size"] = 152064;
  WriteFileText(dir.path() + "/config.json", stock.dump());
  const compare::ConfigDiff resized = compare::DiffConfigPaths(Dir("internvla-n1-shaped"), dir.path());
  EXPECT_FALSE(resized.same_network());
  EXPECT_EQ(Row(resized, "vocab_size")->verdict, FieldVerdict::kMismatch);
  // The language model is a Qwen2 (q/k/v biases, mrope read as plain rope for text).
  const model::ModelConfig config = model::LoadConfig(Dir("internvla-n1-shaped"));
  EXPECT_EQ(config.arch, model::Architecture("qwen2"));
  EXPECT_EQ(config.rope_scaling.type, model::RopeScaling::Type::kNone);
  EXPECT_EQ(config.sliding_window, 0);  // use_sliding_window false
}

TEST(ConfigOnlyTest, NestedFieldProblemsNameTheNestedField) {
  json config = io::ReadJsonFile(Dir("qwen3-vl-235b-a22b") + "/config.json");
  config["text_config"].erase("hidden_size");
  try {
    model::ParseConfig(config, "x/config.json");
    FAIL() << "accepted a text_config without hidden_size";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("field 'text_config.hidden_size': required but absent"),
              std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace parity
