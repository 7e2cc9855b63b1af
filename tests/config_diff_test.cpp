// diff-config: verdicts on the example configs and on edited copies, through the library and the CLI.
#include "harness/compare/config_diff.h"

#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "tests/test_util.h"

namespace parity::compare {
namespace {

using nlohmann::json;

std::string Example(const std::string& name) { return TestDataPath("configs/" + name + "/config.json"); }
json ExampleJson(const std::string& name) { return io::ReadJsonFile(Example(name)); }

const FieldComparison& Row(const ConfigDiff& diff, const std::string& field) {
  for (const auto& row : diff.fields) {
    if (row.field == field) return row;
  }
  static FieldComparison missing;
  ADD_FAILURE() << "no row for " << field;
  return missing;
}

ConfigDiff Diff(const json& a, const json& b) { return DiffConfigs(a, "A/config.json", b, "B/config.json"); }

TEST(ConfigDiffTest, SevenBAndItsConversionDescribeTheSameNetwork) {
  ConfigDiff diff = DiffConfigPaths(Example("internlm2_5-7b-chat"), Example("internlm2_5-7b-chat-llama"));
  EXPECT_TRUE(diff.same_network()) << diff.ToText();
  EXPECT_EQ(diff.arch_a, model::Architecture::kInternLM2);
  EXPECT_EQ(diff.arch_b, model::Architecture::kLlama);
  EXPECT_EQ(Row(diff, "model_type").verdict, FieldVerdict::kExpectedDifference);
  EXPECT_EQ(Row(diff, "architectures").verdict, FieldVerdict::kExpectedDifference);
  EXPECT_EQ(Row(diff, "auto_map").verdict, FieldVerdict::kExpectedDrop);
  EXPECT_EQ(Row(diff, "attn_implementation").verdict, FieldVerdict::kExpectedDrop);
  EXPECT_NE(Row(diff, "attn_implementation").note.find("SDPA"), std::string::npos);
  const FieldComparison& bias = Row(diff, "bias");
  EXPECT_EQ(bias.verdict, FieldVerdict::kExpectedRename);
  EXPECT_EQ(bias.field_b, "attention_bias");
  // Fields the conversion adds with their default value: equal by meaning.
  EXPECT_EQ(Row(diff, "mlp_bias").verdict, FieldVerdict::kMatch);
  EXPECT_TRUE(Row(diff, "mlp_bias").by_meaning);
  EXPECT_EQ(Row(diff, "mlp_bias").note, "absent in A, where it means false");
  EXPECT_TRUE(Row(diff, "attention_dropout").by_meaning);
  EXPECT_EQ(Row(diff, "rope_theta").verdict, FieldVerdict::kMatch);
  EXPECT_FALSE(Row(diff, "rope_theta").by_meaning);
  // 24 fields in A's file (bias and attention_bias share a row) + attention_dropout + mlp_bias = 27
  // rows: 20 identical, 2 by meaning, bias renamed, auto_map and attn_implementation dropped,
  // model_type and architectures naming the architectures.
  EXPECT_EQ(diff.fields.size(), 27u);
  EXPECT_EQ(diff.Summary(),
            "27/27 fields match (2 by meaning, 1 expected rename, 2 expected drops, 2 expected differences)");
  // The other way round gives the same verdicts.
  ConfigDiff reverse = DiffConfigPaths(Example("internlm2_5-7b-chat-llama"), Example("internlm2_5-7b-chat"));
  EXPECT_TRUE(reverse.same_network()) << reverse.ToText();
  EXPECT_EQ(reverse.Summary(), diff.Summary());
}

TEST(ConfigDiffTest, OneEightBAndItsConversionToo) {
  ConfigDiff diff = DiffConfigPaths(TestDataPath("configs/internlm2-chat-1_8b"),
                                    TestDataPath("configs/internlm2-chat-1_8b-llama"));
  EXPECT_TRUE(diff.same_network()) << diff.ToText();
}

TEST(ConfigDiffTest, ATransformers5ConversionIsTheSameNetworkToo) {
  for (const char* model : {"internlm2_5-7b-chat", "internlm2-chat-1_8b"}) {
    ConfigDiff diff = DiffConfigPaths(Example(model), Example(std::string(model) + "-llama-tf5"));
    EXPECT_TRUE(diff.same_network()) << diff.ToText();
    // rope_theta and rope_scaling moved into rope_parameters, torch_dtype became dtype.
    EXPECT_TRUE(Row(diff, "rope_theta").by_meaning);
    EXPECT_TRUE(Row(diff, "rope_parameters").by_meaning);
    EXPECT_TRUE(Row(diff, "torch_dtype").by_meaning);
    EXPECT_TRUE(Row(diff, "head_dim").by_meaning);
    EXPECT_EQ(Row(diff, "transformers_version").verdict, FieldVerdict::kIrrelevant);
  }
  // A wrong theta inside rope_parameters is caught.
  json b = ExampleJson("internlm2_5-7b-chat-llama-tf5");
  b["rope_parameters"]["rope_theta"] = 10000;
  ConfigDiff diff = Diff(ExampleJson("internlm2_5-7b-chat"), b);
  EXPECT_FALSE(diff.same_network());
  EXPECT_EQ(Row(diff, "rope_theta").verdict, FieldVerdict::kMismatch);
}

TEST(ConfigDiffTest, ChangedRopeThetaIsAMismatchNamingTheField) {
  json converted = ExampleJson("internlm2_5-7b-chat-llama");
  converted["rope_theta"] = 10000.0;
  ConfigDiff diff = Diff(ExampleJson("internlm2_5-7b-chat"), converted);
  EXPECT_FALSE(diff.same_network());
  EXPECT_EQ(Row(diff, "rope_theta").verdict, FieldVerdict::kMismatch);
  EXPECT_EQ(Row(diff, "rope_theta").note, "A means 1000000.0, B means 10000.0");
  EXPECT_EQ(diff.Count(FieldVerdict::kMismatch), 1);
  EXPECT_NE(diff.Summary().find("26/27 fields match"), std::string::npos) << diff.Summary();
  EXPECT_NE(diff.Summary().find("1 MISMATCH: rope_theta"), std::string::npos) << diff.Summary();
}

TEST(ConfigDiffTest, DifferentModelsMismatchOnTheirSizes) {
  ConfigDiff diff = DiffConfigPaths(Example("internlm2_5-7b-chat"), Example("internlm2-chat-1_8b"));
  EXPECT_FALSE(diff.same_network());
  for (const char* field : {"hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers"}) {
    EXPECT_EQ(Row(diff, field).verdict, FieldVerdict::kMismatch) << field;
  }
  EXPECT_EQ(Row(diff, "num_key_value_heads").verdict, FieldVerdict::kMatch);
  EXPECT_EQ(diff.Count(FieldVerdict::kMismatch), 4);
}

TEST(ConfigDiffTest, AbsentFieldEqualsItsDefault) {
  json a = ExampleJson("internlm2_5-7b-chat");
  json b = ExampleJson("internlm2_5-7b-chat-llama");
  a.erase("rms_norm_eps");  // InternLM2 default 1e-6
  b["rms_norm_eps"] = 1e-6;
  ConfigDiff diff = Diff(a, b);
  EXPECT_TRUE(diff.same_network()) << diff.ToText();
  EXPECT_TRUE(Row(diff, "rms_norm_eps").by_meaning);
  EXPECT_EQ(Row(diff, "rms_norm_eps").note, "absent in A, where it means 1e-06");
  b["rms_norm_eps"] = 1e-5;  // the default no longer agrees
  EXPECT_EQ(Row(Diff(a, b), "rms_norm_eps").verdict, FieldVerdict::kMismatch);
}

TEST(ConfigDiffTest, DefaultsDifferPerArchitecture) {
  // InternLM2's `bias` defaults to true, Llama's attention_bias to false: dropping both is a mismatch.
  json a = ExampleJson("internlm2_5-7b-chat");
  json b = ExampleJson("internlm2_5-7b-chat-llama");
  a.erase("bias");
  b.erase("attention_bias");
  ConfigDiff diff = Diff(a, b);
  EXPECT_FALSE(diff.same_network());
  EXPECT_EQ(Row(diff, "bias").verdict, FieldVerdict::kMismatch);
  EXPECT_EQ(Row(diff, "bias").field_b, "attention_bias");
  EXPECT_EQ(Row(diff, "bias").note, "absent in both; by default A means true, B means false");
}

TEST(ConfigDiffTest, SameValueWrittenDifferentlyMatches) {
  json a = ExampleJson("internlm2_5-7b-chat");
  json b = ExampleJson("internlm2_5-7b-chat-llama");
  b["eos_token_id"] = json::array({2});
  b["rope_theta"] = 1e6;  // 1000000.0 vs A's integer 1000000
  b.erase("model_type");  // read as Llama from architectures
  ConfigDiff diff = Diff(a, b);
  EXPECT_TRUE(diff.same_network()) << diff.ToText();
  EXPECT_TRUE(Row(diff, "eos_token_id").by_meaning);
  EXPECT_EQ(Row(diff, "model_type").verdict, FieldVerdict::kExpectedDifference);
}

TEST(ConfigDiffTest, Transformers5RopeParametersMatchRopeThetaAndScaling) {
  json b = ExampleJson("internlm2_5-7b-chat-llama");
  b.erase("rope_theta");
  b.erase("rope_scaling");
  b["rope_parameters"] = {{"rope_type", "dynamic"}, {"factor", 2.0}, {"rope_theta", 1000000.0}};
  ConfigDiff diff = Diff(ExampleJson("internlm2_5-7b-chat"), b);
  EXPECT_TRUE(diff.same_network()) << diff.ToText();
  EXPECT_TRUE(Row(diff, "rope_theta").by_meaning);
  EXPECT_TRUE(Row(diff, "rope_scaling").by_meaning);
  b["rope_parameters"]["factor"] = 4.0;
  ConfigDiff changed = Diff(ExampleJson("internlm2_5-7b-chat"), b);
  EXPECT_EQ(Row(changed, "rope_scaling").verdict, FieldVerdict::kMismatch);
  EXPECT_EQ(Row(changed, "rope_parameters").verdict, FieldVerdict::kMismatch);
}

TEST(ConfigDiffTest, IrrelevantAndUnknownFields) {
  json a = ExampleJson("internlm2_5-7b-chat");
  json b = ExampleJson("internlm2_5-7b-chat-llama");
  b["transformers_version"] = "4.45.2";
  b["use_cache"] = false;
  b["output_attentions"] = true;  // generic PretrainedConfig field
  ConfigDiff diff = Diff(a, b);
  EXPECT_TRUE(diff.same_network()) << diff.ToText();
  EXPECT_EQ(Row(diff, "transformers_version").verdict, FieldVerdict::kIrrelevant);
  EXPECT_EQ(Row(diff, "use_cache").verdict, FieldVerdict::kIrrelevant);
  EXPECT_EQ(Row(diff, "output_attentions").verdict, FieldVerdict::kIrrelevant);
  // A field Parity does not know may change the network: conservatively a mismatch.
  b["attn_logit_softcapping"] = 50.0;
  ConfigDiff unknown = Diff(a, b);
  EXPECT_FALSE(unknown.same_network());
  EXPECT_EQ(Row(unknown, "attn_logit_softcapping").verdict, FieldVerdict::kMismatch);
  // A field the family does not read means nothing there: HF Llama has no sliding window.
  json windowed = ExampleJson("internlm2_5-7b-chat-llama");
  windowed["sliding_window"] = 4096;
  EXPECT_TRUE(Diff(a, windowed).same_network()) << Diff(a, windowed).ToText();
}

TEST(ConfigDiffTest, InvalidConfigIsAnInputErrorNamingTheField) {
  json b = ExampleJson("internlm2_5-7b-chat-llama");
  b["num_key_value_heads"] = 5;
  try {
    Diff(ExampleJson("internlm2_5-7b-chat"), b);
    FAIL() << "accepted an invalid config";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("B/config.json: field 'num_key_value_heads'"), std::string::npos)
        << e.what();
  }
}

TEST(ConfigDiffTest, JsonHasEveryFieldAndTheVerdict) {
  ConfigDiff diff = DiffConfigPaths(Example("internlm2_5-7b-chat"), Example("internlm2_5-7b-chat-llama"));
  json out = diff.ToJson();
  EXPECT_EQ(out["same_network"], true);
  EXPECT_EQ(out["fields"].size(), 27u);
  EXPECT_EQ(out["counts"]["expected_rename"], 1);
  EXPECT_EQ(out["counts"]["mismatch"], 0);
  EXPECT_EQ(out["a"]["architecture"], "internlm2");
  EXPECT_EQ(out["b"]["architecture"], "llama");
}

// --- The command line. ---

TEST(ConfigDiffCliTest, CompatibleExitsZeroAndPrintsTheSummary) {
  std::string output;
  int status = RunCommand(ParityCli() + " diff-config " + TestDataPath("configs/internlm2_5-7b-chat") + " " +
                              Example("internlm2_5-7b-chat-llama"),
                          &output);
  EXPECT_EQ(status, 0) << output;
  EXPECT_NE(output.find("27/27 fields match"), std::string::npos) << output;
  EXPECT_NE(output.find("bias / attention_bias"), std::string::npos) << output;
}

TEST(ConfigDiffCliTest, IncompatibleExitsOneAndNamesTheField) {
  TempDir dir;
  json converted = ExampleJson("internlm2_5-7b-chat-llama");
  converted["rope_theta"] = 10000.0;
  WriteFileText(dir.path() + "/config.json", converted.dump(2));
  std::string output;
  int status = RunCommand(ParityCli() + " diff-config " + Example("internlm2_5-7b-chat") + " " + dir.path(), &output);
  EXPECT_EQ(status, 1) << output;
  EXPECT_NE(output.find("MISMATCH: rope_theta"), std::string::npos) << output;

  status = RunCommand(ParityCli() + " diff-config --json " + Example("internlm2_5-7b-chat") + " " + dir.path(),
                      &output);
  EXPECT_EQ(status, 1) << output;
  json parsed = json::parse(output);
  EXPECT_EQ(parsed["same_network"], false);
  EXPECT_EQ(parsed["counts"]["mismatch"], 1);
}

TEST(ConfigDiffCliTest, BadConfigExitsTwoNamingTheField) {
  TempDir dir;
  json config = ExampleJson("internlm2_5-7b-chat");
  config.erase("hidden_size");
  WriteFileText(dir.path() + "/config.json", config.dump());
  std::string output;
  int status = RunCommand(ParityCli() + " diff-config " + dir.path() + " " + Example("internlm2_5-7b-chat"), &output);
  EXPECT_EQ(status, 2) << output;
  EXPECT_NE(output.find("field 'hidden_size': required but absent"), std::string::npos) << output;
}

}  // namespace
}  // namespace parity::compare
