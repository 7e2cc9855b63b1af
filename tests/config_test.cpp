// ParseConfig / Validate / CountParameters on the example configs and on broken ones.
#include "harness/model/config.h"

#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "tests/test_util.h"

namespace parity::model {
namespace {

using nlohmann::json;

std::string Example(const std::string& name) { return TestDataPath("configs/" + name + "/config.json"); }

json ExampleJson(const std::string& name) { return io::ReadJsonFile(Example(name)); }

// The smallest InternLM2 config: only what has no default.
json MinimalInternLM2() {
  return {{"model_type", "internlm2"}, {"vocab_size", 64},          {"hidden_size", 32},
          {"num_hidden_layers", 2},    {"num_attention_heads", 4}, {"intermediate_size", 48}};
}

// Runs ParseConfig, expecting an InputError; returns its message.
std::string ParseError(const json& config, const std::string& source = "/tmp/bad/config.json") {
  try {
    ParseConfig(config, source);
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "ParseConfig accepted " << config.dump();
  return "";
}

TEST(ConfigTest, ParsesInternLM2_5_7bChat) {
  ModelConfig c = LoadConfig(Example("internlm2_5-7b-chat"));
  EXPECT_EQ(c.arch, Architecture::kInternLM2);
  EXPECT_EQ(c.source, Example("internlm2_5-7b-chat"));
  EXPECT_EQ(c.vocab_size, 92544);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.num_layers, 32);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.group_size(), 4);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kDynamic);
  EXPECT_EQ(c.rope_scaling.factor, 2.0);
  EXPECT_FALSE(c.bias);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c.pad_token_id, 2);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.hidden_act, "silu");
}

TEST(ConfigTest, ParsesItsLlamaConversion) {
  ModelConfig c = LoadConfig(Example("internlm2_5-7b-chat-llama"));
  EXPECT_EQ(c.arch, Architecture::kLlama);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_FALSE(c.bias);  // from attention_bias
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kDynamic);
  EXPECT_EQ(c.rope_theta, 1e6);
}

TEST(ConfigTest, ParsesATransformers5Conversion) {
  // Written by transformers 5.17.0 (tests/data/configs/README.md): dtype, head_dim, rope_parameters.
  ModelConfig c = LoadConfig(Example("internlm2_5-7b-chat-llama-tf5"));
  EXPECT_EQ(c.arch, Architecture::kLlama);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_TRUE(c.head_dim_explicit);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kDynamic);
  EXPECT_EQ(c.rope_scaling.factor, 2.0);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(CountParameters(c).total, 7737708544);
}

TEST(ConfigTest, LoadConfigAcceptsADirectory) {
  ModelConfig c = LoadConfig(TestDataPath("configs/internlm2-chat-1_8b"));
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.num_layers, 24);
  EXPECT_EQ(c.num_heads, 16);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.group_size(), 2);
}

TEST(ConfigTest, LlamaWithoutModelTypeIsRecognisedFromArchitectures) {
  json config = ExampleJson("internlm2_5-7b-chat-llama");
  config.erase("model_type");
  EXPECT_EQ(ParseConfig(config, "x").arch, Architecture::kLlama);
  config["architectures"] = json::array({"InternLM2ForCausalLM"});
  EXPECT_EQ(ParseConfig(config, "x").arch, Architecture::kInternLM2);
}

TEST(ConfigTest, InternLM2DefaultsAreThoseOfInternLM2Config) {
  ModelConfig c = ParseConfig(MinimalInternLM2(), "minimal");
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_TRUE(c.bias);  // InternLM2Config(bias=True)
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_EQ(c.num_kv_heads, 4);  // = num_attention_heads
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c.pad_token_id, 0);  // InternLM2Config(pad_token_id=0)
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, "");
}

TEST(ConfigTest, LlamaDefaultsAreThoseOfLlamaConfig) {
  json config = MinimalInternLM2();
  config["model_type"] = "llama";
  ModelConfig c = ParseConfig(config, "minimal");
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_FALSE(c.bias);  // LlamaConfig(attention_bias=False)
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.pad_token_id, -1);  // LlamaConfig(pad_token_id=None)
  EXPECT_FALSE(c.tie_word_embeddings);
}

TEST(ConfigTest, LlamaHonoursAnExplicitHeadDim) {
  json config = MinimalInternLM2();
  config["model_type"] = "llama";
  config["head_dim"] = 16;  // H * d = 64 != D = 32, as HF Llama allows
  ModelConfig c = ParseConfig(config, "x");
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_TRUE(c.head_dim_explicit);
}

TEST(ConfigTest, InternLM2RejectsAHeadDimItsCodeWouldIgnore) {
  json config = MinimalInternLM2();
  config["head_dim"] = 16;
  EXPECT_NE(ParseError(config).find("'head_dim'"), std::string::npos);
  config["head_dim"] = 8;  // agrees with D / H: fine
  EXPECT_EQ(ParseConfig(config, "x").head_dim, 8);
}

TEST(ConfigTest, EosTokenIdMayBeAList) {
  json config = MinimalInternLM2();
  config["eos_token_id"] = json::array({2, 60});
  EXPECT_EQ(ParseConfig(config, "x").eos_token_ids, (std::vector<int64_t>{2, 60}));
}

TEST(ConfigTest, RopeScalingAcceptsTypeOrRopeTypeAndNull) {
  json config = MinimalInternLM2();
  config["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 4}};
  ModelConfig c = ParseConfig(config, "x");
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_EQ(c.rope_scaling.factor, 4.0);
  config["rope_scaling"] = nullptr;
  EXPECT_EQ(ParseConfig(config, "x").rope_scaling.type, RopeScaling::Type::kNone);
}

TEST(ConfigTest, ReadsTransformers5RopeParameters) {
  json config = MinimalInternLM2();
  config["model_type"] = "llama";
  config["rope_parameters"] = {{"rope_type", "dynamic"}, {"factor", 2.0}, {"rope_theta", 500000.0}};
  ModelConfig c = ParseConfig(config, "x");
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kDynamic);
  config["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 250000.0}};
  c = ParseConfig(config, "x");
  EXPECT_EQ(c.rope_theta, 250000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kNone);
}

// --- Broken configs: each message names the field and the file. ---

TEST(ConfigTest, MissingHiddenSizeIsNamed) {
  json config = MinimalInternLM2();
  config.erase("hidden_size");
  std::string message = ParseError(config);
  EXPECT_NE(message.find("field 'hidden_size': required but absent"), std::string::npos) << message;
  EXPECT_NE(message.find("/tmp/bad/config.json"), std::string::npos) << message;
}

TEST(ConfigTest, HeadsNotDividingHiddenIsNamed) {
  json config = MinimalInternLM2();
  config["num_attention_heads"] = 6;  // 32 % 6 != 0
  config["num_key_value_heads"] = 6;
  std::string message = ParseError(config);
  EXPECT_NE(message.find("field 'num_attention_heads': 6 does not divide hidden_size 32"), std::string::npos)
      << message;
}

TEST(ConfigTest, KvHeadsNotDividingHeadsIsNamed) {
  json config = MinimalInternLM2();
  config["num_key_value_heads"] = 3;  // 4 % 3 != 0
  std::string message = ParseError(config);
  EXPECT_NE(message.find("field 'num_key_value_heads': 3 does not divide num_attention_heads 4"),
            std::string::npos)
      << message;
}

TEST(ConfigTest, UnknownRopeTypeIsNamed) {
  json config = MinimalInternLM2();
  config["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
  std::string message = ParseError(config);
  EXPECT_NE(message.find("field 'rope_scaling.type': unsupported rope scaling type 'yarn'"), std::string::npos)
      << message;
}

TEST(ConfigTest, RopeFactorNotAboveOneIsNamed) {
  for (double factor : {1.0, 0.5, -2.0}) {
    json config = MinimalInternLM2();
    config["rope_scaling"] = {{"type", "dynamic"}, {"factor", factor}};
    std::string message = ParseError(config);
    EXPECT_NE(message.find("field 'rope_scaling.factor': must be > 1 for dynamic scaling"), std::string::npos)
        << message;
  }
  json config = MinimalInternLM2();
  config["rope_scaling"] = {{"type", "linear"}};
  EXPECT_NE(ParseError(config).find("field 'rope_scaling.factor': required for linear scaling"),
            std::string::npos);
}

TEST(ConfigTest, NotAnObjectIsRejected) {
  for (const json& config : {json::array({1, 2}), json("text"), json(nullptr)}) {
    std::string message = ParseError(config);
    EXPECT_NE(message.find("expected a JSON object at the top level"), std::string::npos) << message;
    EXPECT_NE(message.find("/tmp/bad/config.json"), std::string::npos) << message;
  }
}

TEST(ConfigTest, WrongTypesAndUnknownModelTypeAreNamed) {
  json config = MinimalInternLM2();
  config["hidden_size"] = "32";
  EXPECT_NE(ParseError(config).find("field 'hidden_size': expected an integer, got \"32\""), std::string::npos);
  config = MinimalInternLM2();
  config["model_type"] = "gpt2";
  EXPECT_NE(ParseError(config).find("field 'model_type': unsupported model type 'gpt2'"), std::string::npos);
  config.erase("model_type");
  EXPECT_NE(ParseError(config).find("field 'model_type': absent"), std::string::npos);
  config = MinimalInternLM2();
  config["hidden_act"] = "gelu";
  EXPECT_NE(ParseError(config).find("field 'hidden_act': unsupported activation 'gelu'"), std::string::npos);
}

TEST(ConfigTest, EveryProblemIsReportedAtOnce) {
  json config = MinimalInternLM2();
  config.erase("vocab_size");
  config["num_key_value_heads"] = 3;
  config["rope_scaling"] = {{"type", "ntk"}, {"factor", 2.0}};
  config["rms_norm_eps"] = 0;
  std::string message = ParseError(config);
  EXPECT_NE(message.find("(4 problems)"), std::string::npos) << message;
  for (const char* field : {"'vocab_size'", "'num_key_value_heads'", "'rope_scaling.type'", "'rms_norm_eps'"}) {
    EXPECT_NE(message.find(field), std::string::npos) << field << " not in: " << message;
  }
  // An absent size is reported once, not again as "must be positive".
  EXPECT_EQ(message.find("field 'vocab_size': must be positive"), std::string::npos) << message;
}

TEST(ConfigTest, ValidateChecksAHandBuiltConfig) {
  ModelConfig c = ParseConfig(MinimalInternLM2(), "x");
  EXPECT_NO_THROW(c.Validate());
  c.num_layers = 0;
  c.num_kv_heads = 3;
  c.rope_scaling = {RopeScaling::Type::kLinear, 1.0};
  try {
    c.Validate();
    FAIL() << "Validate accepted a broken config";
  } catch (const InputError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("field 'num_hidden_layers': must be positive, got 0"), std::string::npos) << message;
    EXPECT_NE(message.find("field 'num_key_value_heads'"), std::string::npos) << message;
    EXPECT_NE(message.find("field 'rope_scaling.factor'"), std::string::npos) << message;
  }
}

// --- Parameter counts, each expected figure derived by hand in the comment. ---

TEST(ConfigTest, CountsInternLM2_5_7bChat) {
  ParameterCount count = CountParameters(LoadConfig(Example("internlm2_5-7b-chat")));
  // Embedding and untied LM head: 92544 * 4096 * 2 = 758,120,448.
  EXPECT_EQ(count.embedding, 758120448);
  // Per layer: wqkv (32 + 2 * 8) * 128 = 6144 rows * 4096 = 25,165,824; wo 4096 * 4096 = 16,777,216;
  // w1, w2, w3 3 * 14336 * 4096 = 176,160,768; two norms 2 * 4096 = 8,192. Sum 218,112,000.
  EXPECT_EQ(count.per_layer, 218112000);
  // 758,120,448 + 32 * 218,112,000 (= 6,979,584,000) + final norm 4,096 = 7,737,708,544, the figure
  // published for internlm2_5-7b-chat ("7.74B").
  EXPECT_EQ(count.total, 7737708544);
  EXPECT_EQ(count.active, count.total);
  // The conversion has the same parameters.
  EXPECT_EQ(CountParameters(LoadConfig(Example("internlm2_5-7b-chat-llama"))).total, 7737708544);
}

TEST(ConfigTest, CountsInternLM2Chat1_8b) {
  ParameterCount count = CountParameters(LoadConfig(Example("internlm2-chat-1_8b")));
  // 92544 * 2048 * 2 = 379,060,224. Per layer: wqkv (16 + 2 * 8) * 128 = 4096 rows * 2048 =
  // 8,388,608; wo 2048 * 2048 = 4,194,304; MLP 3 * 8192 * 2048 = 50,331,648; norms 4,096;
  // sum 62,918,656. Total 379,060,224 + 24 * 62,918,656 + 2,048 = 1,889,110,016 ("1.89B").
  EXPECT_EQ(count.per_layer, 62918656);
  EXPECT_EQ(count.total, 1889110016);
}

TEST(ConfigTest, CountsTiedEmbeddingsAndBiases) {
  // Minimal: V 64, D 32, 2 layers, H = kv = 4, d 8, F 48.
  // Untied, InternLM2 default bias true: embedding 2 * 64 * 32 = 4096; per layer: wqkv (4 + 2*4) * 8
  // = 96 * 32 = 3072 + bias 96; wo 32 * 32 = 1024 + bias 32; MLP 3 * 48 * 32 = 4608; norms 64;
  // sum 8896. Total 4096 + 2 * 8896 + 32 = 21,920.
  ModelConfig c = ParseConfig(MinimalInternLM2(), "x");
  EXPECT_EQ(CountParameters(c).per_layer, 8896);
  EXPECT_EQ(CountParameters(c).total, 21920);
  c.tie_word_embeddings = true;  // one 64 * 32 matrix less
  EXPECT_EQ(CountParameters(c).embedding, 2048);
  EXPECT_EQ(CountParameters(c).total, 21920 - 2048);
  c.bias = false;  // 96 + 32 fewer per layer
  EXPECT_EQ(CountParameters(c).total, 21920 - 2048 - 2 * 128);
  c.arch = Architecture::kLlama;  // same count: q, k, v, o as wqkv, wo (no bias now)
  c.mlp_bias = true;  // Llama mlp_bias: gate and up [48], down [32] per layer
  EXPECT_EQ(CountParameters(c).total, 21920 - 2048 - 2 * 128 + 2 * (48 + 48 + 32));
}

}  // namespace
}  // namespace parity::model
