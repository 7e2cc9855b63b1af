// make-fixture: determinism (same seed -> same bytes, different seed -> different weights), the
// shape of the checkpoint it writes, and the pieces it is built from (PRNG, protobuf edit, JSON).
#include <filesystem>
#include <algorithm>
#include <map>
#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "harness/convert/fixture_corpus.h"
#include "harness/convert/python_json.h"
#include "harness/convert/random_fixture.h"
#include "harness/convert/seeded_random.h"
#include "harness/convert/spm_model_bytes.h"
#include "harness/core/error.h"
#include "harness/decode/tokenizer.h"
#include "harness/io/checkpoint.h"
#include "harness/model/arch.h"
#include "harness/model/config.h"
#include "test_util.h"

namespace parity {
namespace {

namespace fs = std::filesystem;

// Every file of a directory with its bytes.
std::map<std::string, std::string> DirectoryContents(const std::string& dir) {
  std::map<std::string, std::string> contents;
  for (const auto& entry : fs::directory_iterator(dir)) {
    contents[entry.path().filename().string()] = ReadFileText(entry.path().string());
  }
  return contents;
}

// One fixture per (seed, copy) for the whole suite: each costs a tokenizer training.
std::string FixtureDir(uint64_t seed, int copy = 0) {
  static std::map<std::pair<uint64_t, int>, std::unique_ptr<TempDir>> dirs;
  auto& dir = dirs[{seed, copy}];
  if (!dir) {
    dir = std::make_unique<TempDir>();
    convert::FixtureOptions options;
    options.seed = seed;
    convert::MakeFixture(dir->path() + "/fixture", options);
  }
  return dir->path() + "/fixture";
}

TEST(SeededRandomTest, SplitMix64MatchesItsPublishedReferenceValues) {
  // First outputs of SplitMix64 seeded with 0 (the reference C implementation by Vigna).
  convert::SplitMix64 random(0);
  EXPECT_EQ(random.Next(), 0xE220A8397B1DCDAFULL);
  EXPECT_EQ(random.Next(), 0x6E789E6AA1B965F4ULL);
  EXPECT_EQ(random.Next(), 0x06C45D188009454FULL);
}

TEST(SeededRandomTest, NormalGeneratorHasUnitMomentsAndIsReproducible) {
  convert::NormalGenerator first(42), second(42);
  double sum = 0.0, sum_squares = 0.0;
  constexpr int kCount = 200000;
  for (int i = 0; i < kCount; ++i) {
    const double value = first.Next();
    ASSERT_EQ(value, second.Next());
    sum += value;
    sum_squares += value * value;
  }
  // Standard errors: mean 1/sqrt(n) = 0.0022, variance sqrt(2/n) = 0.0032; allow 5 of them.
  EXPECT_NEAR(sum / kCount, 0.0, 0.011);
  EXPECT_NEAR(sum_squares / kCount, 1.0, 0.016);
}

TEST(FixtureCorpusTest, IsDeterministicAndHoldsChatMarkersNewlinesAndChinese) {
  const std::string corpus = convert::FixtureCorpus(500);
  EXPECT_EQ(corpus, convert::FixtureCorpus(500));
  EXPECT_NE(corpus.find("<|im_start|>"), std::string::npos);
  EXPECT_NE(corpus.find("<|im_end|>"), std::string::npos);
  EXPECT_NE(corpus.find("你好"), std::string::npos);
  EXPECT_EQ(std::count(corpus.begin(), corpus.end(), '\n'), 500);
}

TEST(PythonJsonTest, MatchesPythonJsonDumpsLayout) {
  // Expected text: python3 -c 'import json; print(json.dumps({"b": [1, 2.0], "a": {"y": 1e-05,
  // "x": null}}, indent=2, sort_keys=True))'
  const nlohmann::json value = {{"b", {1, 2.0}}, {"a", {{"y", 1e-05}, {"x", nullptr}}}};
  EXPECT_EQ(convert::DumpSortedJson(value),
            "{\n  \"a\": {\n    \"x\": null,\n    \"y\": 1e-05\n  },\n  \"b\": [\n    1,\n    2.0\n"
            "  ]\n}\n");
  // json.dump(d, indent=2) keeps insertion order and adds no newline.
  nlohmann::ordered_json ordered;
  ordered["z"] = 1;
  ordered["a"] = "\u00e9";
  EXPECT_EQ(convert::DumpOrderedJson(ordered), "{\n  \"z\": 1,\n  \"a\": \"\\u00e9\"\n}");
}

TEST(PythonJsonTest, RestoresIntegersTooLargeForSixtyFourBits) {
  const std::string source = R"({"model_max_length": 1000000000000000019884624838656, "x": 1})";
  const nlohmann::json parsed = convert::ParseOrderedJson(source, "t.json");
  const std::string dumped = convert::DumpSortedJson(parsed, false);
  ASSERT_NE(dumped.find("1e+30"), std::string::npos);  // what nlohmann alone would write
  EXPECT_EQ(convert::RestoreBigIntegers(dumped, source),
            "{\n  \"model_max_length\": 1000000000000000019884624838656,\n  \"x\": 1\n}\n");
}

TEST(SpmModelBytesTest, ListsPiecesInIdOrderAndRecordsNoPath) {
  const std::string dir = FixtureDir(1);
  const std::string model = ReadFileText(dir + "/tokenizer.model");
  EXPECT_EQ(model.find(dir), std::string::npos) << "the output path leaked into tokenizer.model";
  const auto pieces = convert::ModelPieces(model, "tokenizer.model");
  ASSERT_EQ(pieces.size(), 512u);
  EXPECT_EQ(pieces[0], "<unk>");
  EXPECT_EQ(pieces[1], "<s>");
  EXPECT_EQ(pieces[2], "</s>");
  // Cross-check with SentencePiece itself: the piece at the id it gives a word is that word.
  const decode::Tokenizer tokenizer = decode::Tokenizer::Load(dir);
  const auto ids = tokenizer.Encode("<|im_end|>", false);
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(pieces[ids[0]], "<|im_end|>");
  EXPECT_THROW(convert::ModelPieces("\xff\xff", "m"), InputError);
}

TEST(MakeFixtureTest, SameSeedGivesSameBytesInEveryFile) {
  const auto first = DirectoryContents(FixtureDir(7, 0));
  const auto second = DirectoryContents(FixtureDir(7, 1));
  ASSERT_EQ(first.size(), 8u);
  for (const auto& [name, bytes] : first) {
    ASSERT_TRUE(second.count(name)) << name;
    EXPECT_TRUE(bytes == second.at(name)) << name << " differs between two runs with seed 7";
  }
}

TEST(MakeFixtureTest, DifferentSeedsGiveDifferentWeightsAndTheSameTokenizer) {
  const auto seed7 = DirectoryContents(FixtureDir(7));
  const auto seed1 = DirectoryContents(FixtureDir(1));
  EXPECT_NE(seed7.at("model-00001-of-00002.safetensors"), seed1.at("model-00001-of-00002.safetensors"));
  EXPECT_NE(seed7.at("model-00002-of-00002.safetensors"), seed1.at("model-00002-of-00002.safetensors"));
  EXPECT_EQ(seed7.at("tokenizer.model"), seed1.at("tokenizer.model"));
  EXPECT_EQ(seed7.at("config.json"), seed1.at("config.json"));
}

TEST(MakeFixtureTest, WritesAShardedGqaInternLM2CheckpointThatMatchesItsTable) {
  const io::Checkpoint checkpoint = io::Checkpoint::Open(FixtureDir(1));
  const model::ModelConfig config =
      model::ParseConfig(checkpoint.config_json(), FixtureDir(1) + "/config.json");
  EXPECT_EQ(config.arch, model::Architecture::kInternLM2);
  EXPECT_EQ(config.num_heads, 8);
  EXPECT_EQ(config.num_kv_heads, 2);
  EXPECT_EQ(config.hidden_size, 64);
  EXPECT_EQ(config.num_layers, 2);
  EXPECT_EQ(config.intermediate_size, 176);
  EXPECT_EQ(config.vocab_size, 512);
  EXPECT_FALSE(config.bias);
  EXPECT_EQ(config.rope_scaling.type, model::RopeScaling::Type::kDynamic);
  EXPECT_EQ(config.rope_scaling.factor, 2.0);
  EXPECT_EQ(config.torch_dtype, "bfloat16");
  EXPECT_EQ(checkpoint.config_json().at("attn_implementation"), "eager");
  EXPECT_TRUE(checkpoint.config_json().contains("auto_map"));

  ASSERT_TRUE(checkpoint.sharded());
  EXPECT_EQ(checkpoint.shard_files(),
            (std::vector<std::string>{"model-00001-of-00002.safetensors",
                                      "model-00002-of-00002.safetensors"}));
  const auto expected = model::ExpectedTensors(config);
  EXPECT_EQ(checkpoint.names().size(), expected.size());
  int64_t total_bytes = 0;
  for (const auto& spec : expected) {
    ASSERT_TRUE(checkpoint.Contains(spec.name)) << spec.name;
    EXPECT_EQ(checkpoint.Info(spec.name).shape, spec.shape) << spec.name;
    EXPECT_EQ(checkpoint.Info(spec.name).dtype, io::DType::kBF16) << spec.name;
    total_bytes += checkpoint.Info(spec.name).nbytes();
  }
  EXPECT_EQ(checkpoint.index_json().at("metadata").at("total_size"), total_bytes);
  EXPECT_EQ(checkpoint.ShardOf("model.tok_embeddings.weight"), "model-00001-of-00002.safetensors");
  EXPECT_EQ(checkpoint.ShardOf("output.weight"), "model-00002-of-00002.safetensors");
  EXPECT_EQ(checkpoint.Info("model.layers.0.attention.wqkv.weight").shape,
            (std::vector<int64_t>{2 * (4 + 2) * 8, 64}));
}

TEST(MakeFixtureTest, WeightsHaveInitScaleAndNormsAreNearOne) {
  const io::Checkpoint checkpoint = io::Checkpoint::Open(FixtureDir(1));
  const at::Tensor wo = checkpoint.Get("model.layers.1.attention.wo.weight").to(at::kDouble);
  EXPECT_NEAR(wo.std().item<double>(), 0.02, 0.002);
  EXPECT_NEAR(wo.mean().item<double>(), 0.0, 0.002);
  const at::Tensor norm = checkpoint.Get("model.norm.weight").to(at::kDouble);
  EXPECT_NEAR(norm.mean().item<double>(), 1.0, 0.01);
  EXPECT_LT((norm - 1.0).abs().max().item<double>(), 0.15);
}

TEST(MakeFixtureTest, TokenizerKnowsTheChatMarkersAndGenerationConfigStopsOnImEnd) {
  const std::string dir = FixtureDir(1);
  const decode::Tokenizer tokenizer = decode::Tokenizer::Load(dir);
  EXPECT_EQ(tokenizer.vocab_size(), 512);
  const auto ids = tokenizer.Encode("<|im_start|>user\nwho are you<|im_end|>", false);
  ASSERT_GE(ids.size(), 3u);
  const nlohmann::json generation = io::ReadJsonFile(dir + "/generation_config.json");
  const int64_t im_end = generation.at("eos_token_id").at(1).get<int64_t>();
  EXPECT_EQ(ids.back(), im_end);
  EXPECT_EQ(tokenizer.Encode("<|im_start|>", false).size(), 1u);
  EXPECT_TRUE(tokenizer.IsEos(im_end));
  EXPECT_TRUE(tokenizer.IsEos(2));
  const nlohmann::json tokenizer_config = io::ReadJsonFile(dir + "/tokenizer_config.json");
  EXPECT_EQ(tokenizer_config.at("added_tokens_decoder").at(std::to_string(im_end)).at("content"),
            "<|im_end|>");
}

TEST(MakeFixtureTest, RejectsInvalidSizesNamingTheOption) {
  TempDir dir;
  convert::FixtureOptions options;
  options.num_kv_heads = 3;
  try {
    convert::MakeFixture(dir.path(), options);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("kv-heads 3 must divide heads 8"), std::string::npos)
        << e.what();
  }
}

TEST(MakeFixtureCliTest, WritesTheSameBytesAsTheLibraryAndSupportsJson) {
  TempDir dir;
  std::string output;
  ASSERT_EQ(RunCommand(ParityCli() + " make-fixture '" + dir.path() + "/f' --seed 7 --json", &output),
            0)
      << output;
  EXPECT_NE(output.find("\"im_end_id\""), std::string::npos) << output;
  const auto from_cli = DirectoryContents(dir.path() + "/f");
  const auto from_library = DirectoryContents(FixtureDir(7));
  EXPECT_TRUE(from_cli == from_library);
  EXPECT_EQ(RunCommand(ParityCli() + " make-fixture '" + dir.path() + "/g' --heads 5", &output), 2)
      << output;
  EXPECT_NE(output.find("heads 5 must divide hidden 64"), std::string::npos) << output;
}

}  // namespace
}  // namespace parity
