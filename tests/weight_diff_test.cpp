// diff-weights: fixture vs its conversion is bitwise equal; one flipped bit, a changed shape, a
// missing tensor, an unknown tensor and a dtype change are each reported by name, with statistics
// checked against values computed here, and the exit code says so.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "harness/compare/weight_diff.h"
#include "harness/convert/internlm2_to_llama.h"
#include "harness/convert/random_fixture.h"
#include "harness/io/checkpoint.h"
#include "harness/io/safetensors.h"
#include "test_util.h"

namespace parity {
namespace {

namespace fs = std::filesystem;
using compare::WeightStatus;

struct Pair {
  TempDir root;
  std::string internlm2 = root.path() + "/internlm2";
  std::string llama = root.path() + "/llama";
  Pair() {
    convert::FixtureOptions options;
    options.seed = 11;
    convert::MakeFixture(internlm2, options);
    convert::ConvertInternLM2ToLlama(internlm2, llama);
  }
};
const Pair& Shared() {
  static const auto* pair = new Pair();
  return *pair;
}

// A copy of the converted checkpoint in which `edit` rewrites the shard holding `tensor_name`; the
// index is updated to the tensors the shard then holds.
std::string EditedCopy(const TempDir& dir, const std::string& tensor_name,
                       const std::function<void(std::vector<io::NamedTensor>&)>& edit) {
  const std::string copy = dir.path() + "/edited";
  fs::copy(Shared().llama, copy, fs::copy_options::recursive);
  const io::Checkpoint checkpoint = io::Checkpoint::Open(copy);
  const std::string shard = checkpoint.ShardOf(tensor_name);
  std::vector<io::NamedTensor> tensors;
  for (const auto& info : checkpoint.shard(shard).tensors()) {
    tensors.push_back({info.name, checkpoint.Get(info.name).clone()});
  }
  edit(tensors);
  nlohmann::json index = checkpoint.index_json();
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end();) {
    it = it.value() == shard ? index["weight_map"].erase(it) : std::next(it);
  }
  for (const auto& t : tensors) index["weight_map"][t.name] = shard;
  int64_t total_size = 0;
  for (const std::string& name : checkpoint.names()) {
    if (checkpoint.ShardOf(name) != shard) total_size += checkpoint.Info(name).nbytes();
  }
  for (const auto& t : tensors) total_size += t.tensor.numel() * t.tensor.element_size();
  index["metadata"]["total_size"] = total_size;
  io::WriteSafetensors(copy + "/" + shard, tensors);
  WriteFileText(copy + "/model.safetensors.index.json", index.dump(2));
  return copy;
}

const compare::WeightComparison* Find(const compare::WeightDiffReport& report, const std::string& b_name) {
  for (const auto& c : report.compared) {
    if (c.b.name == b_name) return &c;
  }
  return nullptr;
}

TEST(WeightDiffTest, FixtureAndItsConversionAreBitwiseEqualTensorByTensor) {
  const auto report = compare::DiffWeights(Shared().internlm2, Shared().llama);
  EXPECT_TRUE(report.identical()) << compare::FormatWeightDiff(report);
  EXPECT_EQ(report.compared.size(), 21u);  // 3 global + 2 layers x (2 norms + q, k, v, o + 3 MLP)
  EXPECT_EQ(report.Count(WeightStatus::kBitwiseEqual), 21);
  EXPECT_EQ(report.arch_a, "internlm2");
  EXPECT_EQ(report.arch_b, "llama");
  const auto* q = Find(report, "model.layers.1.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->a.name, "model.layers.1.attention.wqkv.weight [q]");
  EXPECT_EQ(q->a.shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(report.compared.front().key, "embedding");
  EXPECT_EQ(report.SummaryLine(),
            "21/21 tensors bitwise equal; 0 differ, 0 dtype differences, 0 shape mismatches, "
            "0 missing, 0 unexpected");
  // Either direction, and a checkpoint against itself (no split: wqkv against wqkv).
  EXPECT_TRUE(compare::DiffWeights(Shared().llama, Shared().internlm2).identical());
  const auto self = compare::DiffWeights(Shared().internlm2, Shared().internlm2);
  EXPECT_TRUE(self.identical());
  EXPECT_EQ(self.compared.size(), 17u);
}

TEST(WeightDiffTest, OneFlippedBitIsReportedWithItsTensorAndStatistics) {
  TempDir dir;
  const std::string name = "model.layers.1.self_attn.k_proj.weight";
  const int64_t element = 37;
  const std::string edited = EditedCopy(dir, name, [&](std::vector<io::NamedTensor>& tensors) {
    for (auto& t : tensors) {
      if (t.name != name) continue;
      auto* bytes = static_cast<uint8_t*>(t.tensor.data_ptr());
      bytes[element * 2] ^= 0x01;  // lowest mantissa bit of element 37 (BF16, little endian)
    }
  });
  const auto report = compare::DiffWeights(Shared().internlm2, edited);
  EXPECT_FALSE(report.identical());
  EXPECT_EQ(report.Count(WeightStatus::kValuesDiffer), 1);
  EXPECT_EQ(report.Count(WeightStatus::kBitwiseEqual), 20);
  const auto* k = Find(report, name);
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->status, WeightStatus::kValuesDiffer);
  EXPECT_EQ(k->a.name, "model.layers.1.attention.wqkv.weight [k]");
  EXPECT_EQ(k->differing_elements, 1);
  // Expected statistics from the two tensors, computed here element-wise.
  const at::Tensor a = io::Checkpoint::Open(Shared().llama).Get(name).to(at::kDouble).reshape({-1});
  const at::Tensor b = io::Checkpoint::Open(edited).Get(name).to(at::kDouble).reshape({-1});
  const double diff = std::abs(a[element].item<double>() - b[element].item<double>());
  ASSERT_GT(diff, 0.0);
  double max_abs_a = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) max_abs_a = std::max(max_abs_a, std::abs(a[i].item<double>()));
  EXPECT_EQ(k->max_abs_diff, diff);
  EXPECT_EQ(k->max_abs_a, max_abs_a);
  EXPECT_DOUBLE_EQ(k->relative_error, diff / max_abs_a);
  EXPECT_DOUBLE_EQ(k->rms_diff, diff / std::sqrt(static_cast<double>(a.numel())));

  std::string output;
  EXPECT_EQ(RunCommand(ParityCli() + " diff-weights '" + Shared().internlm2 + "' '" + edited + "'", &output), 1);
  EXPECT_NE(output.find("DIFFER"), std::string::npos) << output;
  EXPECT_NE(output.find(name), std::string::npos) << output;
  EXPECT_NE(output.find("1 of 1024 elements differ"), std::string::npos) << output;
  EXPECT_NE(output.find("20/21 tensors bitwise equal; 1 differ"), std::string::npos) << output;
  EXPECT_EQ(RunCommand(ParityCli() + " diff-weights --json '" + Shared().internlm2 + "' '" + edited + "'", &output), 1);
  const nlohmann::json json = nlohmann::json::parse(output);
  EXPECT_FALSE(json.at("identical").get<bool>());
  EXPECT_EQ(json.at("counts").at("values_differ"), 1);
}

TEST(WeightDiffTest, ShapeMismatchIsReportedWithBothShapes) {
  TempDir dir;
  const std::string name = "model.layers.0.self_attn.o_proj.weight";
  const std::string edited = EditedCopy(dir, name, [&](std::vector<io::NamedTensor>& tensors) {
    for (auto& t : tensors) {
      if (t.name == name) t.tensor = t.tensor.narrow(1, 0, 32).contiguous();
    }
  });
  const auto report = compare::DiffWeights(Shared().internlm2, edited);
  ASSERT_EQ(report.Count(WeightStatus::kShapeMismatch), 1);
  const auto* o = Find(report, name);
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->b.shape, (std::vector<int64_t>{64, 32}));
  const std::string text = compare::FormatWeightDiff(report);
  EXPECT_NE(text.find("SHAPE"), std::string::npos) << text;
  EXPECT_NE(text.find("shape [64, 64] vs [64, 32]"), std::string::npos) << text;
}

TEST(WeightDiffTest, MissingAndUnknownTensorsAreListedNotDropped) {
  TempDir dir;
  const std::string removed = "model.layers.1.mlp.up_proj.weight";
  const std::string unknown = "model.layers.1.self_attn.rotary_emb.inv_freq";
  const std::string edited = EditedCopy(dir, removed, [&](std::vector<io::NamedTensor>& tensors) {
    tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                                 [&](const io::NamedTensor& t) { return t.name == removed; }),
                  tensors.end());
    tensors.push_back({unknown, at::ones({4}, at::kFloat)});
  });
  const auto report = compare::DiffWeights(Shared().internlm2, edited);
  EXPECT_FALSE(report.identical());
  ASSERT_EQ(report.missing.size(), 1u);
  EXPECT_EQ(report.missing[0].side.name, "model.layers.1.feed_forward.w3.weight");
  EXPECT_NE(report.missing[0].reason.find("expected " + removed), std::string::npos)
      << report.missing[0].reason;
  ASSERT_EQ(report.unexpected.size(), 1u);
  EXPECT_EQ(report.unexpected[0].side.name, unknown);
  EXPECT_EQ(report.unexpected[0].reason, "not in the llama tensor table");
  EXPECT_EQ(report.Count(WeightStatus::kBitwiseEqual), 20);
  std::string output;
  EXPECT_EQ(RunCommand(ParityCli() + " diff-weights '" + Shared().internlm2 + "' '" + edited + "'", &output), 1);
  EXPECT_NE(output.find("MISSING"), std::string::npos) << output;
  EXPECT_NE(output.find("UNEXPECTED"), std::string::npos) << output;
  EXPECT_NE(output.find("1 missing, 1 unexpected"), std::string::npos) << output;
}

TEST(WeightDiffTest, DtypeDifferenceIsComparedAfterUpcastAndStillFails) {
  TempDir dir;
  const std::string name = "model.norm.weight";
  const std::string edited = EditedCopy(dir, name, [&](std::vector<io::NamedTensor>& tensors) {
    for (auto& t : tensors) {
      if (t.name == name) t.tensor = t.tensor.to(at::kFloat);
    }
  });
  const auto report = compare::DiffWeights(Shared().internlm2, edited);
  const auto* norm = Find(report, name);
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->status, WeightStatus::kDtypeDiffers);
  EXPECT_TRUE(norm->values_equal);  // BF16 -> F32 is exact
  EXPECT_EQ(norm->a.dtype, "BF16");
  EXPECT_EQ(norm->b.dtype, "F32");
  EXPECT_FALSE(report.identical());
  EXPECT_NE(compare::FormatWeightDiff(report).find("BF16 vs F32: values equal after upcast"),
            std::string::npos);
}

}  // namespace
}  // namespace parity
