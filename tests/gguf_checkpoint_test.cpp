// A GGUF file as a checkpoint (model/gguf_checkpoint.h) and `convert hf-to-gguf`
// (convert/hf_to_gguf.h): metadata -> config, names -> roles, the Q/K permutation undone, and
// diff-weights telling quantization noise from planted faults (compare/quantization_check.h).
#include <set>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "gguf_fixture.h"
#include "harness/compare/config_diff.h"
#include "harness/compare/weight_diff.h"
#include "harness/core/error.h"
#include "harness/model/gguf_checkpoint.h"
#include "harness/model/gguf_model.h"
#include "harness/model/inspect.h"
#include "harness/session/model_store.h"

namespace parity {
namespace {

std::string Family(const std::string& name) {
  return TestDataPath("golden/families/" + name);
}

TEST(GgufCheckpoint, ReadsConfigAndTensorsOfAConvertedLlama) {
  GgufFixture& fixture = GgufFixture::Get();
  const io::Checkpoint gguf = model::OpenGgufCheckpoint(fixture.Gguf("f32"));
  EXPECT_EQ(gguf.format(), "gguf");
  const model::CheckpointSummary summary = model::SummarizeCheckpoint(gguf);
  EXPECT_TRUE(summary.table_agrees()) << summary.ToText();
  EXPECT_EQ(summary.config.arch, model::Architecture::kLlama);
  EXPECT_EQ(summary.config.num_kv_heads, 2);
  EXPECT_EQ(summary.config.rms_norm_eps, 1e-5);  // the FP32 value read at its decimal spelling
  EXPECT_EQ(summary.config.rope_theta, 1e6);
  const io::ExternalTensor* q = gguf.External("model.layers.1.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->source_name, "blk.1.attn_q.weight");
  EXPECT_EQ(q->stored_type, "F32");
  // Un-permuted on reading: equal to HF's q_proj (BF16 values, exactly representable in F32).
  const io::Checkpoint hf = io::Checkpoint::Open(fixture.llama());
  EXPECT_TRUE(gguf.Get("model.layers.1.self_attn.q_proj.weight")
                  .equal(hf.Get("model.layers.1.self_attn.q_proj.weight").to(at::kFloat)));
  EXPECT_TRUE(gguf.Get("model.layers.1.self_attn.k_proj.weight")
                  .equal(hf.Get("model.layers.1.self_attn.k_proj.weight").to(at::kFloat)));
}

TEST(GgufCheckpoint, ConfigDiffAgainstTheHfConfigNamesWhatGgufCannotHold) {
  GgufFixture& fixture = GgufFixture::Get();
  const compare::ConfigDiff diff = compare::DiffConfigPaths(fixture.llama(), fixture.Gguf("f32"));
  std::set<std::string> mismatched;
  for (const compare::FieldComparison& field : diff.fields) {
    if (field.verdict == compare::FieldVerdict::kMismatch) mismatched.insert(field.field);
  }
  // The fixture's dynamic rope scaling has no GGUF form (the converter leaves it out, as
  // convert_hf_to_gguf.py does); everything that shapes the network below 512 positions matches.
  EXPECT_EQ(mismatched, (std::set<std::string>{"rope_scaling"})) << diff.ToText();
}

TEST(GgufCheckpoint, ForwardOnTheF32GgufEqualsForwardOnTheCheckpoint) {
  GgufFixture& fixture = GgufFixture::Get();
  session::ModelStore store(fixture.dir() + "/cache");
  const auto gguf = store.Open(fixture.Gguf("f32"));
  const auto hf = store.Open(fixture.llama());
  const GreedyRun a = ParityGreedy(*hf->checkpoint, FixturePrompt(), 16);
  const GreedyRun b = ParityGreedy(*gguf->checkpoint, FixturePrompt(), 16);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_TRUE(a.logits.equal(b.logits)) << (a.logits - b.logits).abs().max().item<float>();
}

TEST(GgufCheckpoint, DiffWeightsF32IsExactAndQ8_0IsAsExpected) {
  GgufFixture& fixture = GgufFixture::Get();
  const compare::WeightDiffReport f32 = compare::DiffWeights(fixture.llama(), fixture.Gguf("f32"));
  EXPECT_TRUE(f32.consistent()) << compare::FormatWeightDiff(f32);
  for (const compare::WeightComparison& c : f32.compared) {
    ASSERT_TRUE(c.status == compare::WeightStatus::kBitwiseEqual || c.values_equal) << c.key;
  }
  for (const std::string type : {"q8_0", "f16", "bf16"}) {
    const compare::WeightDiffReport report = compare::DiffWeights(fixture.llama(), fixture.Gguf(type));
    EXPECT_TRUE(report.consistent()) << type << "\n" << compare::FormatWeightDiff(report);
    EXPECT_TRUE(report.GgufWrong().empty());
    EXPECT_EQ(report.compared.size(), 39u);  // 4 layers x 9 + embedding, norm, head
    int64_t quantized = 0;
    for (const compare::WeightComparison& c : report.compared) {
      if (c.b.shape.size() != 2) continue;
      ++quantized;
      EXPECT_EQ(c.b.stored_type, type == "q8_0" ? "Q8_0" : type == "f16" ? "F16" : "BF16");
      // Parity's own writer: exactly the reference quantization of A, so rms == expected.
      if (c.gguf) EXPECT_DOUBLE_EQ(c.gguf->rms, c.gguf->expected_rms) << c.key;
    }
    EXPECT_EQ(quantized, 30);
  }
}

// The fault of the issue: a GGUF whose Q and K were left in HF's row order. diff-weights names
// exactly the attn_q / attn_k tensors and says what is wrong with them.
TEST(GgufCheckpoint, DiffWeightsNamesQAndKLeftUnpermuted) {
  GgufFixture& fixture = GgufFixture::Get();
  for (const std::string type : {"f32", "q8_0"}) {
    const std::string bad = UnpermutedGguf(fixture.Gguf(type), fixture.dir() + "/unpermuted-" + type + ".gguf",
                                           8, 2);
    const compare::WeightDiffReport report = compare::DiffWeights(fixture.llama(), bad);
    EXPECT_FALSE(report.consistent());
    std::set<std::string> wrong;
    for (const compare::WeightComparison* c : report.GgufWrong()) {
      wrong.insert(c->b.name);
      EXPECT_EQ(c->gguf->finding, "rope_permutation_missing") << c->b.name << ": " << c->gguf->sentence;
    }
    std::set<std::string> expected;
    for (int layer = 0; layer < 4; ++layer) {
      expected.insert("blk." + std::to_string(layer) + ".attn_q.weight");
      expected.insert("blk." + std::to_string(layer) + ".attn_k.weight");
    }
    EXPECT_EQ(wrong, expected) << type << "\n" << compare::FormatWeightDiff(report);
    EXPECT_NE(report.GgufLine().find("8 WRONG: blk.0.attn_q.weight, blk.0.attn_k.weight"), std::string::npos)
        << report.GgufLine();
  }
}

TEST(GgufCheckpoint, DiffWeightsNamesSwappedAndUnexplainedTensors) {
  GgufFixture& fixture = GgufFixture::Get();
  const std::string bad = fixture.dir() + "/faults.gguf";
  const io::GgufFile good = io::GgufFile::Open(fixture.Gguf("q8_0"));
  const at::Tensor gate = io::GgufTensorToTorch(good, *good.FindTensor("blk.2.ffn_gate.weight"));
  const at::Tensor up = io::GgufTensorToTorch(good, *good.FindTensor("blk.2.ffn_up.weight"));
  RewriteGguf(fixture.Gguf("q8_0"), bad, [&](const std::string& name, const at::Tensor& value)
                                             -> std::optional<at::Tensor> {
    if (name == "blk.2.ffn_gate.weight") return up;
    if (name == "blk.2.ffn_up.weight") return gate;
    if (name == "blk.3.attn_v.weight") return value * 1.5;  // a scaled tensor: no hypothesis fits
    return std::nullopt;
  });
  const compare::WeightDiffReport report = compare::DiffWeights(fixture.llama(), bad);
  std::map<std::string, std::string> findings;
  for (const compare::WeightComparison* c : report.GgufWrong()) findings[c->b.name] = c->gguf->finding;
  EXPECT_EQ(findings, (std::map<std::string, std::string>{{"blk.2.ffn_gate.weight", "swapped"},
                                                          {"blk.2.ffn_up.weight", "swapped"},
                                                          {"blk.3.attn_v.weight", "unexplained"}}))
      << compare::FormatWeightDiff(report);
}

// Qwen2 (q/k/v biases) and Qwen3 (q_norm / k_norm, explicit head_dim) made by HF itself: converted
// to GGUF without the permutation, read back, the same network.
TEST(GgufCheckpoint, QwenFamiliesRoundTripWithoutPermutation) {
  TempDir dir;
  for (const std::string family : {"qwen2", "qwen3"}) {
    const std::string gguf = dir.path() + "/" + family + ".gguf";
    const convert::HfToGgufResult result = convert::ConvertHfToGguf(Family(family), gguf, "f32");
    EXPECT_EQ(result.gguf_architecture, family);
    EXPECT_EQ(result.tokenizer, "none");
    const io::GgufFile file = io::GgufFile::Open(gguf);
    EXPECT_EQ(file.FindTensor("blk.0.attn_q_norm.weight") != nullptr, family == "qwen3");
    EXPECT_EQ(file.FindTensor("blk.0.attn_q.bias") != nullptr, family == "qwen2");
    const compare::ConfigDiff config = compare::DiffConfigPaths(Family(family), gguf);
    EXPECT_TRUE(config.same_network()) << config.ToText();
    const compare::WeightDiffReport weights = compare::DiffWeights(Family(family), gguf);
    EXPECT_TRUE(weights.consistent()) << compare::FormatWeightDiff(weights);
    const io::Checkpoint hf = io::Checkpoint::Open(Family(family));
    const io::Checkpoint view = model::OpenGgufCheckpoint(gguf);
    const GreedyRun a = ParityGreedy(hf, {3, 14, 15, 92, 65}, 8);
    const GreedyRun b = ParityGreedy(view, {3, 14, 15, 92, 65}, 8);
    EXPECT_EQ(a.tokens, b.tokens) << family;
    EXPECT_TRUE(a.logits.equal(b.logits)) << family;
    // A Qwen GGUF given llama's permutation is named as such.
    const std::string permuted = dir.path() + "/" + family + "-permuted.gguf";
    const model::ModelConfig config_hf = model::LoadConfig(Family(family));
    RewriteGguf(gguf, permuted, [&](const std::string& name, const at::Tensor& value) -> std::optional<at::Tensor> {
      if (name == "blk.1.attn_q.weight") return io::PermuteLlamaQK(value, config_hf.num_heads);
      return std::nullopt;
    });
    const compare::WeightDiffReport report = compare::DiffWeights(Family(family), permuted);
    ASSERT_EQ(report.GgufWrong().size(), 1u) << compare::FormatWeightDiff(report);
    EXPECT_EQ(report.GgufWrong()[0]->gguf->finding, "rope_permutation_applied");
  }
}

// The CLI: a .gguf file wherever a checkpoint directory stands.
TEST(GgufCheckpoint, CliCompareDiffWeightsAndDiffConfigTakeGgufFiles) {
  GgufFixture& fixture = GgufFixture::Get();
  const std::string prompt = "--prompt-tokens 1,300,45,901,77,512,13,260";
  std::string log;
  const std::string good = ParityCli() + " compare " + fixture.llama() + " " + fixture.Gguf("f32") + " " +
                           prompt + " --dtypes fp32 --max-new-tokens 16 --out " + fixture.dir() + "/cmp-good";
  EXPECT_EQ(RunCommand(good, &log), 0) << good << "\n" << log;
  const std::string bad_gguf = UnpermutedGguf(fixture.Gguf("f32"), fixture.dir() + "/cli-unpermuted.gguf", 8, 2);
  const std::string bad = ParityCli() + " compare " + fixture.llama() + " " + bad_gguf + " " + prompt +
                          " --dtypes fp32 --max-new-tokens 16 --out " + fixture.dir() + "/cmp-bad";
  EXPECT_EQ(RunCommand(bad, &log), 1) << bad << "\n" << log;
  EXPECT_NE(log.find("real"), std::string::npos) << log;
  EXPECT_EQ(RunCommand(ParityCli() + " diff-weights " + fixture.llama() + " " + fixture.Gguf("q8_0"), &log), 0)
      << log;
  EXPECT_NE(log.find("GGUF: 39/39 tensors as expected"), std::string::npos) << log;
  EXPECT_EQ(RunCommand(ParityCli() + " diff-weights " + fixture.llama() + " " + bad_gguf, &log), 1) << log;
  EXPECT_NE(log.find("8 WRONG: blk.0.attn_q.weight, blk.0.attn_k.weight"), std::string::npos) << log;
  EXPECT_NE(log.find("Q/K rope permutation llama.cpp's converter applies for llama is missing"),
            std::string::npos) << log;
  EXPECT_EQ(RunCommand(ParityCli() + " inspect " + fixture.Gguf("q8_0"), &log), 0) << log;
  EXPECT_NE(log.find("as a checkpoint:"), std::string::npos) << log;
  EXPECT_NE(log.find("llama"), std::string::npos) << log;
  const std::string localize = ParityCli() + " localize " + fixture.llama() + " " + bad_gguf +
                               " --tokens 1,300,45,901,77,512,13,260 --max-new-tokens 4";
  const int localize_status = RunCommand(localize, &log);
  EXPECT_TRUE(localize_status == 0 || localize_status == 1) << localize << "\n" << log;
  EXPECT_NE(log.find("layer 0"), std::string::npos) << log;
  EXPECT_EQ(RunCommand(ParityCli() + " convert hf-to-gguf " + fixture.llama() + " " + fixture.dir() +
                           "/cli.gguf --type q8_0",
                       &log), 0) << log;
  EXPECT_EQ(ReadFileText(fixture.dir() + "/cli.gguf"), ReadFileText(fixture.Gguf("q8_0")));
  EXPECT_EQ(RunCommand(ParityCli() + " convert hf-to-gguf " + fixture.llama() + " " + fixture.dir() +
                           "/cli.gguf --type q4_k", &log), 2) << log;
}

// llama.cpp's internlm2 GGUFs split wqkv into attn_q/k/v and permute q and k as for llama: read
// as a Llama model, compared against the original InternLM2 checkpoint's packed wqkv part by part.
TEST(GgufCheckpoint, InternLM2GgufReadsAsLlamaAgainstThePackedOriginal) {
  GgufFixture& fixture = GgufFixture::Get();
  const io::GgufFile llama = io::GgufFile::Open(fixture.Gguf("q8_0"));
  io::GgufWriter writer;
  for (const auto& [key, value] : llama.metadata()) {
    if (key == "general.architecture") {
      writer.AddString(key, "internlm2");
    } else if (key.rfind("llama.", 0) == 0) {
      writer.AddValue("internlm2." + key.substr(6), value);
    } else {
      writer.AddValue(key, value);
    }
  }
  for (const io::GgufTensorInfo& info : llama.tensors()) {
    writer.AddTensor(info.name, info.TorchShape(), *info.type, llama.ReadRaw(info));
  }
  const std::string path = fixture.dir() + "/internlm2.gguf";
  writer.Write(path);
  const model::CheckpointSummary summary = model::SummarizeCheckpoint(model::OpenGgufCheckpoint(path));
  EXPECT_EQ(summary.config.arch, model::Architecture::kLlama);
  EXPECT_TRUE(summary.table_agrees()) << summary.ToText();
  const compare::WeightDiffReport report = compare::DiffWeights(TrainedFixtureDir(), path);
  EXPECT_TRUE(report.consistent()) << compare::FormatWeightDiff(report);
  EXPECT_EQ(report.compared.size(), 39u);  // wqkv compared as its q, k and v parts
}

TEST(GgufCheckpoint, BadMetadataIsNamed) {
  TempDir dir;
  GgufFixture& fixture = GgufFixture::Get();
  const io::GgufFile good = io::GgufFile::Open(fixture.Gguf("f32"));
  auto rewrite = [&](const std::string& path, const std::string& drop, const std::string& key,
                     io::GgufValue value) {
    io::GgufWriter writer;
    for (const auto& [k, v] : good.metadata()) {
      if (k == drop) continue;
      writer.AddValue(k, k == key ? value : v);
    }
    for (const io::GgufTensorInfo& info : good.tensors()) {
      writer.AddTensor(info.name, info.TorchShape(), *info.type, good.ReadRaw(info));
    }
    writer.Write(path);
    return path;
  };
  auto message = [](const std::string& path) {
    try {
      model::OpenGgufCheckpoint(path);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(rewrite(dir.path() + "/a.gguf", "llama.block_count", "", {})).find(
                "'llama.block_count' is missing"),
            std::string::npos);
  EXPECT_NE(message(rewrite(dir.path() + "/b.gguf", "", "general.architecture",
                            {io::GgufType::kString, io::GgufType::kU8, "mamba"}))
                .find("general.architecture 'mamba' is not one Parity reads"),
            std::string::npos);
  EXPECT_NE(message(rewrite(dir.path() + "/c.gguf", "", "llama.rope.dimension_count",
                            {io::GgufType::kU32, io::GgufType::kU8, 16}))
                .find("partial rotary"),
            std::string::npos);
  // A directory where a GGUF file is expected, and a family without a GGUF form.
  EXPECT_THROW(convert::ConvertHfToGguf(fixture.llama(), dir.path(), "f32"), InputError);
  EXPECT_THROW(convert::ConvertHfToGguf(TrainedFixtureDir(), dir.path() + "/x.gguf", "f32"), InputError);
  EXPECT_THROW(convert::ConvertHfToGguf(fixture.llama(), dir.path() + "/x.gguf", "q4_k"), InputError);
}

}  // namespace
}  // namespace parity
