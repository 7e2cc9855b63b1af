// convert internlm2-to-llama: the q/k/v split against an independent per-head reference, every other
// tensor bit for bit, shards / index / config / tokenizer files as convert2llama writes them, the
// refusals, and the Python safetensors layout of the files written.
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "harness/convert/converted_config.h"
#include "harness/convert/internlm2_to_llama.h"
#include "harness/convert/python_safetensors.h"
#include "harness/convert/qkv_split.h"
#include "harness/convert/random_fixture.h"
#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/io/safetensors.h"
#include "harness/model/arch.h"
#include "harness/model/config.h"
#include "test_util.h"

namespace parity {
namespace {

namespace fs = std::filesystem;
using model::Architecture;
using model::Role;

// One fixture and its conversion for the whole file (a fixture costs a tokenizer training).
struct Converted {
  TempDir root;
  std::string src = root.path() + "/internlm2";
  std::string dst = root.path() + "/llama";
  convert::ConversionResult result;
  Converted() {
    convert::FixtureOptions options;
    options.seed = 3;
    convert::MakeFixture(src, options);
    result = convert::ConvertInternLM2ToLlama(src, dst);
  }
};
const Converted& Shared() {
  static const auto* converted = new Converted();
  return *converted;
}

bool BitwiseEqual(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const at::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

// The reference split, head by head (independent of SplitPackedQkv's reshape): query head h lives in
// KV block h / G at position h % G; block b's K head follows its G query heads, then its V head.
convert::SplitQkv ReferenceSplit(const at::Tensor& wqkv, int64_t heads, int64_t kv_heads,
                                 int64_t head_dim) {
  const int64_t group = heads / kv_heads;
  std::vector<at::Tensor> q, k, v;
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t block = h / group, position = h % group;
    q.push_back(wqkv.narrow(0, (block * (group + 2) + position) * head_dim, head_dim));
  }
  for (int64_t b = 0; b < kv_heads; ++b) {
    k.push_back(wqkv.narrow(0, (b * (group + 2) + group) * head_dim, head_dim));
    v.push_back(wqkv.narrow(0, (b * (group + 2) + group + 1) * head_dim, head_dim));
  }
  return {at::cat(q), at::cat(k), at::cat(v)};
}

TEST(QkvSplitTest, MatchesThePerHeadReferenceAndRejectsWrongShapes) {
  const int64_t heads = 8, kv_heads = 2, head_dim = 3, hidden = 5;
  const at::Tensor wqkv =
      at::arange(kv_heads * (heads / kv_heads + 2) * head_dim * hidden, at::kFloat)
          .reshape({-1, hidden});
  const convert::QkvLayout layout{kv_heads, heads / kv_heads, head_dim};
  const auto split = convert::SplitPackedQkv(wqkv, layout, "w");
  const auto reference = ReferenceSplit(wqkv, heads, kv_heads, head_dim);
  EXPECT_TRUE(at::equal(split.q, reference.q));
  EXPECT_TRUE(at::equal(split.k, reference.k));
  EXPECT_TRUE(at::equal(split.v, reference.v));
  EXPECT_EQ(split.q.sizes(), (at::IntArrayRef{heads * head_dim, hidden}));
  EXPECT_EQ(split.k.sizes(), (at::IntArrayRef{kv_heads * head_dim, hidden}));
  // Row 0 of K is row G * d of the packed matrix (block 0 after its 4 query heads).
  EXPECT_EQ(split.k[0][0].item<float>(), 4 * head_dim * hidden);
  try {
    convert::SplitPackedQkv(wqkv.narrow(0, 0, 30), layout, "model.layers.0.attention.wqkv.weight");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'model.layers.0.attention.wqkv.weight': expected 36 rows"),
              std::string::npos)
        << e.what();
  }
}

TEST(PythonSafetensorsTest, OrdersByDtypeAlignmentDescendingThenName) {
  std::vector<io::NamedTensor> tensors = {
      {"b", at::zeros({2}, at::kFloat)},    {"a", at::zeros({2}, at::kBFloat16)},
      {"c", at::zeros({2}, at::kFloat)},    {"z", at::zeros({2}, at::kLong)},
      {"m", at::zeros({2}, at::kByte)},     {"B", at::zeros({2}, at::kBFloat16)},
      {"d", at::zeros({2}, at::kDouble)}};
  convert::SortLikePythonSafetensors(tensors);
  std::string order;
  for (const auto& t : tensors) order += t.name;
  // The reference Dtype enum: ... U8 < BF16 < F32 < F64 < I64; names bytewise ("B" < "a").
  EXPECT_EQ(order, "zdbcBam");
}

TEST(ConvertTest, SplitsWqkvPerKvGroupAndKeepsEveryOtherTensorBitForBit) {
  const Converted& c = Shared();
  const io::Checkpoint src = io::Checkpoint::Open(c.src);
  const io::Checkpoint dst = io::Checkpoint::Open(c.dst);
  const model::ModelConfig config = model::ParseConfig(src.config_json(), c.src);
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    const std::string wqkv_name = model::TensorName(Architecture::kInternLM2, Role::kQkv, layer);
    const auto reference = ReferenceSplit(src.Get(wqkv_name), 8, 2, 8);
    EXPECT_TRUE(BitwiseEqual(dst.Get(model::TensorName(Architecture::kLlama, Role::kQ, layer)), reference.q));
    EXPECT_TRUE(BitwiseEqual(dst.Get(model::TensorName(Architecture::kLlama, Role::kK, layer)), reference.k));
    EXPECT_TRUE(BitwiseEqual(dst.Get(model::TensorName(Architecture::kLlama, Role::kV, layer)), reference.v));
  }
  int64_t renamed = 0;
  for (const std::string& name : src.names()) {
    const auto parsed = model::ParseTensorName(Architecture::kInternLM2, name);
    ASSERT_TRUE(parsed) << name;
    if (parsed->role == Role::kQkv) continue;
    const std::string llama_name = model::TensorName(Architecture::kLlama, parsed->role, parsed->layer);
    ASSERT_TRUE(dst.Contains(llama_name)) << llama_name;
    EXPECT_TRUE(BitwiseEqual(src.Get(name), dst.Get(llama_name))) << name;
    EXPECT_EQ(dst.Info(llama_name).dtype, io::DType::kBF16);
    EXPECT_EQ(dst.ShardOf(llama_name), src.ShardOf(name)) << "the tensor moved to another shard";
    ++renamed;
  }
  EXPECT_EQ(renamed, 3 + 6 * config.num_layers);
  // Every Llama tensor, nothing else.
  const model::ModelConfig llama = model::ParseConfig(dst.config_json(), c.dst);
  EXPECT_EQ(dst.names().size(), model::ExpectedTensors(llama).size());
  EXPECT_EQ(c.result.tensors_in, 3 + 7 * config.num_layers);
  EXPECT_EQ(c.result.tensors_out, 3 + 9 * config.num_layers);
  EXPECT_EQ(c.result.qkv_split, config.num_layers);
  EXPECT_TRUE(c.result.passed_through.empty());
}

TEST(ConvertTest, WritesShardsAsPythonSafetensorsDoes) {
  const Converted& c = Shared();
  for (const char* shard : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
    const std::string bytes = ReadFileText(c.dst + "/" + shard);
    uint64_t header_length = 0;
    std::memcpy(&header_length, bytes.data(), 8);
    ASSERT_EQ(header_length % 8, 0u);
    const std::string header = bytes.substr(8, header_length);
    EXPECT_EQ(header.rfind("{\"__metadata__\":{\"format\":\"pt\"},", 0), 0u) << header;
    // Single dtype: entries by name, data laid out in the same order.
    const io::SafetensorsFile file = io::SafetensorsFile::Open(c.dst + "/" + shard);
    std::vector<std::string> by_offset;
    for (const auto& info : file.tensors()) by_offset.push_back(info.name);
    std::vector<std::string> sorted = by_offset;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(by_offset, sorted);
    size_t last = 0;
    for (const std::string& name : sorted) {
      const size_t at = header.find("\"" + name + "\":{\"dtype\":\"BF16\",\"shape\":[");
      ASSERT_NE(at, std::string::npos) << name;
      EXPECT_GT(at, last) << name;
      last = at;
    }
  }
}

TEST(ConvertTest, RewritesTheIndexAsTheScriptDoes) {
  const Converted& c = Shared();
  const std::string text = ReadFileText(c.dst + "/model.safetensors.index.json");
  EXPECT_NE(text.back(), '\n') << "json.dump writes no trailing newline";
  EXPECT_LT(text.find("\"metadata\""), text.find("\"weight_map\""));
  const nlohmann::json index = nlohmann::json::parse(text);
  const nlohmann::json source = io::ReadJsonFile(c.src + "/model.safetensors.index.json");
  EXPECT_EQ(index.at("metadata"), source.at("metadata")) << "total_size is left as it was";
  const io::Checkpoint dst = io::Checkpoint::Open(c.dst);
  EXPECT_EQ(index.at("weight_map").size(), dst.names().size());
  for (const std::string& name : dst.names()) EXPECT_EQ(index.at("weight_map").at(name), dst.ShardOf(name));
  // Within a shard the names follow the sorted source names, q/k/v in that order.
  EXPECT_LT(text.find("layers.0.self_attn.q_proj"), text.find("layers.0.self_attn.k_proj"));
  EXPECT_LT(text.find("layers.0.self_attn.k_proj"), text.find("layers.0.self_attn.v_proj"));
}

TEST(ConvertTest, ConfigHasTheFieldsTheScriptSets) {
  const Converted& c = Shared();
  const std::string text = ReadFileText(c.dst + "/config.json");
  const nlohmann::json config = nlohmann::json::parse(text);
  const nlohmann::json source = io::ReadJsonFile(c.src + "/config.json");
  EXPECT_EQ(config.at("architectures"), nlohmann::json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(config.at("model_type"), "llama");
  EXPECT_EQ(config.at("attention_bias"), false);
  for (const char* dropped : {"auto_map", "attn_implementation", "bias", "tokenizer_class"}) {
    EXPECT_FALSE(config.contains(dropped)) << dropped;
  }
  for (const char* kept : {"rope_theta", "rope_scaling", "rms_norm_eps", "bos_token_id", "eos_token_id",
                           "pad_token_id", "hidden_size", "num_key_value_heads", "torch_dtype",
                           "max_position_embeddings", "vocab_size", "tie_word_embeddings"}) {
    EXPECT_EQ(config.at(kept), source.at(kept)) << kept;
  }
  EXPECT_EQ(config.at("attention_dropout"), 0.0);
  EXPECT_EQ(config.at("mlp_bias"), false);
  EXPECT_EQ(config.at("pretraining_tp"), 1);
  EXPECT_EQ(config.at("transformers_version"), "4.41.0");
  // save_pretrained: sorted keys, two-space indent, trailing newline.
  EXPECT_EQ(text.rfind("{\n  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n  \"attention_bias\"", 0), 0u);
  EXPECT_EQ(text.back(), '\n');
  const model::ModelConfig llama = model::ParseConfig(config, c.dst + "/config.json");
  EXPECT_EQ(llama.arch, Architecture::kLlama);
  EXPECT_EQ(llama.rope_scaling.type, model::RopeScaling::Type::kDynamic);
}

TEST(ConvertTest, ConfigEditAppliesInternLM2DefaultsAndDropsPretrainedConfigDefaults) {
  nlohmann::json source = {{"model_type", "internlm2"}, {"bias", false}, {"hidden_size", 16},
                           {"num_attention_heads", 2},  {"output_attentions", false},
                           {"return_dict", false},      {"some_extra_field", 3}};
  const nlohmann::json config = convert::LlamaConfigFromInternLM2(source, "c.json");
  EXPECT_EQ(config.at("rms_norm_eps"), 1e-6);                  // InternLM2Config default
  EXPECT_EQ(config.at("rope_theta"), 10000);
  EXPECT_EQ(config.at("pad_token_id"), 0);
  EXPECT_EQ(config.at("num_key_value_heads"), 2);              // = heads
  EXPECT_EQ(config.at("tie_word_embeddings"), false);          // differs from the base default
  EXPECT_FALSE(config.contains("output_attentions"));          // equals the base default: dropped
  EXPECT_EQ(config.at("return_dict"), false);                  // differs: kept
  EXPECT_EQ(config.at("some_extra_field"), 3);
  EXPECT_TRUE(config.at("rope_scaling").is_null());
}

TEST(ConvertTest, CopiesTheTokenizerAndLeavesOutWhatTheScriptDoesNotCopy) {
  const Converted& c = Shared();
  EXPECT_EQ(ReadFileText(c.dst + "/tokenizer.model"), ReadFileText(c.src + "/tokenizer.model"));
  const nlohmann::json tokenizer_config = io::ReadJsonFile(c.dst + "/tokenizer_config.json");
  EXPECT_FALSE(tokenizer_config.contains("auto_map"));
  EXPECT_EQ(tokenizer_config.at("tokenizer_class"), "LlamaTokenizer");
  EXPECT_EQ(tokenizer_config.at("added_tokens_decoder"),
            io::ReadJsonFile(c.src + "/tokenizer_config.json").at("added_tokens_decoder"));
  EXPECT_EQ(io::ReadJsonFile(c.dst + "/special_tokens_map.json"),
            io::ReadJsonFile(c.src + "/special_tokens_map.json"));
  EXPECT_FALSE(fs::exists(c.dst + "/generation_config.json"));
  EXPECT_EQ(c.result.files_not_copied, std::vector<std::string>{"generation_config.json"});
}

// A copy of the shared fixture with config.json edited by `edit`.
std::string FixtureWithConfig(const TempDir& dir, const std::function<void(nlohmann::json&)>& edit) {
  const std::string copy = dir.path() + "/src";
  fs::copy(Shared().src, copy, fs::copy_options::recursive);
  nlohmann::json config = io::ReadJsonFile(copy + "/config.json");
  edit(config);
  WriteFileText(copy + "/config.json", config.dump(2));
  return copy;
}

TEST(ConvertTest, RefusesBiasTrueNamingTheFieldAndWritesNothing) {
  TempDir dir;
  const std::string src = FixtureWithConfig(dir, [](nlohmann::json& c) { c["bias"] = true; });
  try {
    convert::ConvertInternLM2ToLlama(src, dir.path() + "/out");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("field 'bias' is true"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.path() + "/out"));
  // Absent means true for InternLM2Config, so the script refuses that as well.
  TempDir other;
  const std::string absent = FixtureWithConfig(other, [](nlohmann::json& c) { c.erase("bias"); });
  std::string output;
  EXPECT_EQ(RunCommand(ParityCli() + " convert internlm2-to-llama '" + absent + "' '" +
                           other.path() + "/out'",
                       &output),
            2);
  EXPECT_NE(output.find("field 'bias' is true"), std::string::npos) << output;
  EXPECT_NE(output.find("the field is absent"), std::string::npos) << output;
}

TEST(ConvertTest, RefusesALlamaCheckpointAndConvertingInPlace) {
  const Converted& c = Shared();
  TempDir dir;
  EXPECT_THROW(convert::ConvertInternLM2ToLlama(c.dst, dir.path() + "/again"), InputError);
  EXPECT_THROW(convert::ConvertInternLM2ToLlama(c.src, c.src), InputError);
}

TEST(ConvertCliTest, ConvertThenDiffWeightsReportsEveryTensorBitwiseEqual) {
  const Converted& c = Shared();
  TempDir dir;
  std::string output;
  ASSERT_EQ(RunCommand(ParityCli() + " convert internlm2-to-llama '" + c.src + "' '" + dir.path() +
                           "/llama' --json",
                       &output),
            0)
      << output;
  const nlohmann::json result = nlohmann::json::parse(output);
  EXPECT_EQ(result.at("tensors_out"), 21);
  // The CLI's output is byte-identical to the library's.
  for (const auto& entry : fs::directory_iterator(c.dst)) {
    const std::string name = entry.path().filename().string();
    EXPECT_EQ(ReadFileText(entry.path().string()), ReadFileText(dir.path() + "/llama/" + name)) << name;
  }
  ASSERT_EQ(RunCommand(ParityCli() + " diff-weights '" + c.src + "' '" + dir.path() + "/llama'", &output), 0)
      << output;
  EXPECT_NE(output.find("21/21 tensors bitwise equal; 0 differ"), std::string::npos) << output;
}

}  // namespace
}  // namespace parity
