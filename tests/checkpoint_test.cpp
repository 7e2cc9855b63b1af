// Checkpoint directories: a single model.safetensors, shards through model.safetensors.index.json,
// and every way the index, the shards and config.json can disagree, each with its message.
#include "harness/io/checkpoint.h"

#include <filesystem>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "tests/test_util.h"

namespace parity::io {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const char* kConfig = R"({"model_type": "internlm2", "hidden_size": 8})";

// Two shards: embed [4, 2] F32 and norm [2] BF16 in shard 1, head [3, 2] F32 in shard 2.
struct ShardedFixture {
  TempDir dir;
  at::Tensor embed = at::arange(8, at::kFloat).reshape({4, 2});
  at::Tensor norm = at::ones({2}, at::kBFloat16);
  at::Tensor head = at::arange(6, at::kFloat).reshape({3, 2}).neg();
  std::string shard1 = "model-00001-of-00002.safetensors";
  std::string shard2 = "model-00002-of-00002.safetensors";

  ShardedFixture() {
    WriteFileText(path("config.json"), kConfig);
    WriteSafetensors(path(shard1), {{"embed", embed}, {"norm", norm}});
    WriteSafetensors(path(shard2), {{"head", head}});
    WriteIndex(R"({"embed": "model-00001-of-00002.safetensors",
                   "norm": "model-00001-of-00002.safetensors",
                   "head": "model-00002-of-00002.safetensors"})");
  }
  std::string path(const std::string& name) const { return dir.path() + "/" + name; }
  void WriteIndex(const std::string& weight_map) const {
    WriteFileText(path("model.safetensors.index.json"),
                  R"({"metadata": {"total_size": 60}, "weight_map": )" + weight_map + "}");
  }
};

std::string OpenError(const std::string& dir) {
  try {
    Checkpoint::Open(dir);
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an InputError opening " << dir;
  return "";
}

TEST(CheckpointTest, OpensSingleFile) {
  TempDir dir;
  WriteFileText(dir.path() + "/config.json", kConfig);
  at::Tensor w = at::arange(6, at::kFloat).reshape({2, 3});
  WriteSafetensors(dir.path() + "/model.safetensors", {{"w", w}, {"b", at::zeros({3}, at::kHalf)}});
  Checkpoint ckpt = Checkpoint::Open(dir.path());
  EXPECT_FALSE(ckpt.sharded());
  EXPECT_THAT(ckpt.names(), ElementsAre("b", "w"));
  EXPECT_THAT(ckpt.shard_files(), ElementsAre("model.safetensors"));
  EXPECT_EQ(ckpt.ShardOf("w"), "model.safetensors");
  EXPECT_TRUE(at::equal(ckpt.Get("w"), w));
  EXPECT_EQ(ckpt.Info("b").dtype, DType::kF16);
  EXPECT_EQ(ckpt.parameter_count(), 9);
  EXPECT_EQ(ckpt.bytes_on_disk(), std::filesystem::file_size(dir.path() + "/model.safetensors"));
  EXPECT_EQ(ckpt.config_json().at("model_type"), "internlm2");
  EXPECT_TRUE(ckpt.index_json().is_object() && ckpt.index_json().empty());
}

TEST(CheckpointTest, OpensShardsThroughTheIndex) {
  ShardedFixture f;
  Checkpoint ckpt = Checkpoint::Open(f.dir.path());
  EXPECT_TRUE(ckpt.sharded());
  EXPECT_THAT(ckpt.names(), ElementsAre("embed", "head", "norm"));
  EXPECT_THAT(ckpt.shard_files(), ElementsAre(f.shard1, f.shard2));
  EXPECT_EQ(ckpt.ShardOf("head"), f.shard2);
  EXPECT_EQ(ckpt.ShardOf("norm"), f.shard1);
  EXPECT_TRUE(at::equal(ckpt.Get("head"), f.head));
  EXPECT_TRUE(at::equal(ckpt.Get("norm"), f.norm));
  EXPECT_EQ(ckpt.parameter_count(), 8 + 2 + 6);
  EXPECT_EQ(ckpt.bytes_on_disk(), std::filesystem::file_size(f.path(f.shard1)) +
                                      std::filesystem::file_size(f.path(f.shard2)));
  EXPECT_EQ(ckpt.index_json().at("metadata").at("total_size"), 60);
  EXPECT_TRUE(ckpt.shard(f.shard2).Contains("head"));
  EXPECT_TRUE(ckpt.Contains("embed"));
  EXPECT_FALSE(ckpt.Contains("missing"));
}

TEST(CheckpointTest, TensorOutlivesCheckpoint) {
  ShardedFixture f;
  at::Tensor head;
  { head = Checkpoint::Open(f.dir.path()).Get("head"); }
  EXPECT_TRUE(at::equal(head, f.head));
}

TEST(CheckpointTest, AbsentTensorIsNamed) {
  ShardedFixture f;
  Checkpoint ckpt = Checkpoint::Open(f.dir.path());
  try {
    ckpt.Get("lm_head.weight");
    ADD_FAILURE() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("no tensor named 'lm_head.weight'"));
  }
  EXPECT_THROW(ckpt.shard("model-00009-of-00009.safetensors"), InputError);
}

TEST(CheckpointBadInput, IndexNamesMissingShard) {
  ShardedFixture f;
  std::filesystem::remove(f.path(f.shard2));
  EXPECT_THAT(OpenError(f.dir.path()),
              HasSubstr("model.safetensors.index.json names shard file "
                        "'model-00002-of-00002.safetensors' (for tensor 'head'), which does not "
                        "exist"));
}

TEST(CheckpointBadInput, TensorAbsentFromItsShard) {
  ShardedFixture f;
  f.WriteIndex(R"({"embed": "model-00001-of-00002.safetensors",
                   "norm": "model-00001-of-00002.safetensors",
                   "head": "model-00002-of-00002.safetensors",
                   "ghost": "model-00002-of-00002.safetensors"})");
  EXPECT_THAT(OpenError(f.dir.path()),
              HasSubstr("maps tensor 'ghost' to shard 'model-00002-of-00002.safetensors', which "
                        "does not contain it"));
}

TEST(CheckpointBadInput, ShardHoldsTensorTheIndexDoesNotList) {
  ShardedFixture f;
  f.WriteIndex(R"({"embed": "model-00001-of-00002.safetensors",
                   "head": "model-00002-of-00002.safetensors"})");
  EXPECT_THAT(OpenError(f.dir.path()),
              HasSubstr("shard 'model-00001-of-00002.safetensors' holds tensor 'norm', which "
                        "model.safetensors.index.json does not list"));
}

TEST(CheckpointBadInput, TensorInTwoShards) {
  ShardedFixture f;
  WriteSafetensors(f.path(f.shard2), {{"head", f.head}, {"norm", f.norm}});
  EXPECT_THAT(OpenError(f.dir.path()),
              HasSubstr("shard 'model-00002-of-00002.safetensors' holds tensor 'norm', which "
                        "model.safetensors.index.json maps to 'model-00001-of-00002.safetensors'"));
}

TEST(CheckpointBadInput, AllProblemsAreReportedTogether) {
  ShardedFixture f;
  f.WriteIndex(R"({"embed": "model-00001-of-00002.safetensors",
                   "ghost": "model-00002-of-00002.safetensors",
                   "lost": "model-00003-of-00003.safetensors"})");
  std::string message = OpenError(f.dir.path());
  EXPECT_THAT(message, AllOf(HasSubstr("4 problems"), HasSubstr("'model-00003-of-00003.safetensors'"),
                             HasSubstr("tensor 'ghost'"), HasSubstr("tensor 'norm'"),
                             HasSubstr("tensor 'head'")));
}

TEST(CheckpointBadInput, IndexNotJson) {
  ShardedFixture f;
  WriteFileText(f.path("model.safetensors.index.json"), R"({"weight_map": {"a": )");
  EXPECT_THAT(OpenError(f.dir.path()),
              AllOf(HasSubstr("model.safetensors.index.json: not valid JSON")));
}

TEST(CheckpointBadInput, IndexWithoutWeightMap) {
  ShardedFixture f;
  WriteFileText(f.path("model.safetensors.index.json"), R"({"metadata": {}})");
  EXPECT_THAT(OpenError(f.dir.path()), HasSubstr("expected 'weight_map' to be an object"));
}

TEST(CheckpointBadInput, WeightMapValueNotAFileName) {
  ShardedFixture f;
  f.WriteIndex(R"({"embed": 3})");
  EXPECT_THAT(OpenError(f.dir.path()),
              HasSubstr("weight_map entry for tensor 'embed' must be a file name, got number"));
}

TEST(CheckpointBadInput, ShardNameOutsideTheDirectory) {
  ShardedFixture f;
  f.WriteIndex(R"({"embed": "../elsewhere.safetensors"})");
  EXPECT_THAT(OpenError(f.dir.path()),
              HasSubstr("'../elsewhere.safetensors', which is not a file name inside the checkpoint"));
}

TEST(CheckpointBadInput, MalformedShardIsNamed) {
  ShardedFixture f;
  WriteFileText(f.path(f.shard2), "garbage");
  EXPECT_THAT(OpenError(f.dir.path()),
              AllOf(HasSubstr("model-00002-of-00002.safetensors"), HasSubstr("file is 7 bytes")));
}

TEST(CheckpointBadInput, ConfigMissing) {
  ShardedFixture f;
  std::filesystem::remove(f.path("config.json"));
  EXPECT_THAT(OpenError(f.dir.path()), AllOf(HasSubstr("config.json"), HasSubstr("file not found")));
}

TEST(CheckpointBadInput, ConfigNotJson) {
  ShardedFixture f;
  WriteFileText(f.path("config.json"), "{hidden_size: 8}");
  EXPECT_THAT(OpenError(f.dir.path()), AllOf(HasSubstr("config.json: not valid JSON")));
}

TEST(CheckpointBadInput, ConfigNotAnObject) {
  ShardedFixture f;
  WriteFileText(f.path("config.json"), "[1]");
  EXPECT_THAT(OpenError(f.dir.path()),
              AllOf(HasSubstr("config.json: expected a JSON object, got array")));
}

TEST(CheckpointBadInput, NoWeightFiles) {
  TempDir dir;
  WriteFileText(dir.path() + "/config.json", kConfig);
  EXPECT_THAT(OpenError(dir.path()),
              HasSubstr("neither model.safetensors.index.json nor model.safetensors is there"));
}

TEST(CheckpointBadInput, NotADirectory) {
  TempDir dir;
  EXPECT_THAT(OpenError(dir.path() + "/nope"), HasSubstr("not a directory"));
}

TEST(ReadJsonFileTest, ParsesAndNamesTheFileOnError) {
  TempDir dir;
  WriteFileText(dir.path() + "/ok.json", R"({"a": [1, 2]})");
  EXPECT_EQ(ReadJsonFile(dir.path() + "/ok.json").at("a").size(), 2u);
  WriteFileText(dir.path() + "/bad.json", "{");
  try {
    ReadJsonFile(dir.path() + "/bad.json");
    ADD_FAILURE() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("bad.json: not valid JSON"));
  }
  EXPECT_THROW(ReadJsonFile(dir.path() + "/absent.json"), InputError);
}

}  // namespace
}  // namespace parity::io
