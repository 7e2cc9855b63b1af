// The planted-fault zoo: conversion faults planted in a Llama copy of a 4-layer FP32 fixture, each
// written to disk as a checkpoint of its own, must be named by diff-weights (the right tensor with
// the right explanation) or diff-config (the right field), and localized by localize to the right
// layer, block and first position; the clean conversion raises nothing.
//
// Expected first positions follow from the maths, not from observation: at position 0 attention
// reads one key, so its weights are 1 whatever q and k are and rotary is the identity; a fault that
// only changes q (rotated query heads), q.k with rotation (GGUF-permuted q/k) or the rotation itself
// (rope_theta) is therefore first seen at position 1. The embedding fault enters at the first
// position holding one of the exchanged tokens, and the LM-head fault at the last position, the
// only one where HF Llama computes logits.
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/compare/config_diff.h"
#include "harness/compare/weight_diff.h"
#include "harness/compare/weight_explain.h"
#include "harness/convert/internlm2_to_llama.h"
#include "harness/convert/random_fixture.h"
#include "harness/diagnose/localize.h"
#include "harness/diagnose/model_source.h"
#include "harness/io/checkpoint.h"
#include "harness/io/safetensors.h"
#include "tests/test_util.h"

namespace parity {
namespace {

namespace fs = std::filesystem;
using Tensors = std::map<std::string, at::Tensor>;

// Prompt ids in the fixture's 512-token vocabulary; token 5 is at position 5.
const std::vector<int64_t> kPrompt = {1, 17, 233, 90, 411, 5, 64, 300};
constexpr int64_t kStep = 2;  // two generated positions after the prompt: 10 positions in all

std::string Layer(int64_t layer, const std::string& rest) {
  return fmt::format("model.layers.{}.{}.weight", layer, rest);
}

void Swap(Tensors& t, const std::string& x, const std::string& y) {
  std::swap(t.at(x), t.at(y));
}

at::Tensor RotateHeads(const at::Tensor& w, int64_t head_dim) {
  return at::cat({w.slice(0, head_dim), w.slice(0, 0, head_dim)});
}

struct Fault {
  std::string name;
  std::function<void(Tensors&, nlohmann::json&)> plant;
  std::map<std::string, std::string> weights;  // diff-weights key -> explanation kind
  std::string config_field;                    // diff-config mismatch, "" for none
  int64_t layer = -1;                          // expected first departure
  std::string sub_block;
  int64_t position = 0;
};

std::vector<Fault> Zoo() {
  const int64_t d = 8;  // fixture head_dim: hidden 64 / 8 heads; 2 KV heads
  return {
      {"scaled MLP weight (layer 1 down_proj x 1.01)",
       [](Tensors& t, nlohmann::json&) { t[Layer(1, "mlp.down_proj")] *= 1.01; },
       {{"layer 1 down", "scale"}}, "", 1, "mlp", 0},
      {"rotated query heads (layer 2 q_proj by one head)",
       [d](Tensors& t, nlohmann::json&) {
         t[Layer(2, "self_attn.q_proj")] = RotateHeads(t[Layer(2, "self_attn.q_proj")], d);
       },
       {{"layer 2 q", "heads_rotated"}}, "", 2, "attention", 1},
      {"swapped gate/up (layer 0)",
       [](Tensors& t, nlohmann::json&) { Swap(t, Layer(0, "mlp.gate_proj"), Layer(0, "mlp.up_proj")); },
       {{"layer 0 gate", "swapped"}, {"layer 0 up", "swapped"}}, "", 0, "mlp", 0},
      {"swapped k/v (layer 3)",
       [](Tensors& t, nlohmann::json&) {
         Swap(t, Layer(3, "self_attn.k_proj"), Layer(3, "self_attn.v_proj"));
       },
       {{"layer 3 k", "swapped"}, {"layer 3 v", "swapped"}}, "", 3, "attention", 0},
      {"transposed o_proj (layer 1, square)",
       [](Tensors& t, nlohmann::json&) {
         t[Layer(1, "self_attn.o_proj")] = t[Layer(1, "self_attn.o_proj")].t().contiguous();
       },
       {{"layer 1 o", "transpose"}}, "", 1, "attention", 0},
      {"BF16-rounded o_proj (layer 2, FP32 checkpoint)",
       [](Tensors& t, nlohmann::json&) {
         t[Layer(2, "self_attn.o_proj")] =
             t[Layer(2, "self_attn.o_proj")].to(at::kBFloat16).to(at::kFloat);
       },
       {{"layer 2 o", "rounded_bf16"}}, "", 2, "attention", 0},
      {"scaled lm_head (x 1.5)",
       [](Tensors& t, nlohmann::json&) { t["lm_head.weight"] *= 1.5; },
       {{"lm_head", "scale"}}, "", -1, "logits", 9},
      {"swapped embedding rows 5 and 6",
       [](Tensors& t, nlohmann::json&) {
         at::Tensor e = t["model.embed_tokens.weight"].clone();
         e[5].copy_(t["model.embed_tokens.weight"][6]);
         e[6].copy_(t["model.embed_tokens.weight"][5]);
         t["model.embed_tokens.weight"] = e;
       },
       {{"embedding", "rows_exchanged"}}, "", -1, "embedding", 5},
      {"GGUF-permuted q/k (layer 1)",
       [](Tensors& t, nlohmann::json&) {
         t[Layer(1, "self_attn.q_proj")] = compare::GgufRopePermute(t[Layer(1, "self_attn.q_proj")], 8);
         t[Layer(1, "self_attn.k_proj")] = compare::GgufRopePermute(t[Layer(1, "self_attn.k_proj")], 2);
       },
       {{"layer 1 q", "gguf_rope_permutation"}, {"layer 1 k", "gguf_rope_permutation"}}, "", 1,
       "attention", 1},
      {"sign flip (layer 2 up_proj)",
       [](Tensors& t, nlohmann::json&) { t[Layer(2, "mlp.up_proj")] = -t[Layer(2, "mlp.up_proj")]; },
       {{"layer 2 up", "sign_flip"}}, "", 2, "mlp", 0},
      {"constant offset (layer 3 gate_proj + 0.01)",
       [](Tensors& t, nlohmann::json&) { t[Layer(3, "mlp.gate_proj")] += 0.01; },
       {{"layer 3 gate", "offset"}}, "", 3, "mlp", 0},
      {"rope_theta / 10",
       [](Tensors&, nlohmann::json& c) { c["rope_theta"] = c["rope_theta"].get<double>() / 10; },
       {}, "rope_theta", 0, "attention", 1},
      {"rms_norm_eps x 100",
       [](Tensors&, nlohmann::json& c) { c["rms_norm_eps"] = c["rms_norm_eps"].get<double>() * 100; },
       {}, "rms_norm_eps", 0, "attention", 0},
  };
}

class FaultZoo : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    convert::FixtureOptions options;
    options.seed = 21;
    options.num_layers = 4;
    options.dtype = "float32";
    convert::MakeFixture(dir_->path() + "/original", options);
    convert::ConvertInternLM2ToLlama(dir_->path() + "/original", Clean());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string Clean() { return dir_->path() + "/clean"; }

  // A copy of the clean conversion with `fault` planted: every non-weight file copied, the config
  // rewritten, all tensors in one model.safetensors.
  static std::string Plant(const Fault& fault, const std::string& name) {
    const std::string out = dir_->path() + "/" + name;
    fs::create_directories(out);
    io::Checkpoint clean = io::Checkpoint::Open(Clean());
    Tensors tensors;
    for (const std::string& n : clean.names()) tensors[n] = clean.Get(n).clone();
    nlohmann::json config = nlohmann::json::parse(ReadFileText(Clean() + "/config.json"));
    fault.plant(tensors, config);
    for (const auto& entry : fs::directory_iterator(Clean())) {
      const std::string file = entry.path().filename().string();
      if (file.find(".safetensors") != std::string::npos || file == "config.json") continue;
      fs::copy_file(entry.path(), fs::path(out) / file, fs::copy_options::overwrite_existing);
    }
    WriteFileText(out + "/config.json", config.dump(2));
    std::vector<io::NamedTensor> named;
    for (const auto& [n, t] : tensors) named.push_back({n, t.contiguous()});
    io::WriteSafetensors(out + "/model.safetensors", io::InPythonWriteOrder(named),
                         {{"format", "pt"}});
    return out;
  }

  // Token text from the fixture's tokenizer.
  static std::function<std::string(int64_t)> TokenText() {
    diagnose::PromptSpec spec;
    spec.token_ids = "1";
    return diagnose::ResolvePrompt(spec, {Clean()}).token_text;
  }

  static diagnose::LocalizeResult Localize(const std::string& b) {
    diagnose::LocalizeOptions options;
    options.precision = forward::Precision::kFP32;
    options.step = kStep;
    options.token_text = TokenText();
    return diagnose::Localize(diagnose::CheckpointSource(Clean()), diagnose::CheckpointSource(b),
                              kPrompt, options);
  }

  static TempDir* dir_;
};
TempDir* FaultZoo::dir_ = nullptr;

TEST_F(FaultZoo, CleanConversionRaisesNothing) {
  const std::string clean = Plant({"clean", [](Tensors&, nlohmann::json&) {}}, "clean-copy");
  const compare::WeightDiffReport weights = compare::DiffWeights(Clean(), clean);
  EXPECT_TRUE(weights.identical()) << compare::FormatWeightDiff(weights);
  const compare::ConfigDiff config = compare::DiffConfigPaths(Clean(), clean);
  EXPECT_EQ(config.Count(compare::FieldVerdict::kMismatch), 0) << config.ToText();
  // Against the InternLM2 original too: every tensor bitwise equal, no explanation needed.
  const compare::WeightDiffReport original = compare::DiffWeights(dir_->path() + "/original", clean);
  EXPECT_TRUE(original.identical()) << compare::FormatWeightDiff(original);
  const diagnose::LocalizeResult r = Localize(clean);
  EXPECT_NE(r.first_departure.kind, "real") << diagnose::FormatLocalize(r);
  EXPECT_EQ(r.fp64_first_part.position, -1);
  EXPECT_EQ(r.positions.size(), kPrompt.size() + kStep);
}

TEST_F(FaultZoo, EveryFaultIsNamedAndLocalized) {
  std::string table =
      "| fault | diff-weights / diff-config | localize (FP32): first departure |\n|---|---|---|\n";
  int index = 0;
  for (const Fault& fault : Zoo()) {
    SCOPED_TRACE(fault.name);
    const std::string dir = Plant(fault, fmt::format("fault{}", index++));
    std::string named;
    // diff-weights: exactly the planted tensors differ, each with the right explanation.
    const compare::WeightDiffReport report = compare::DiffWeights(Clean(), dir);
    std::map<std::string, std::string> seen;
    for (const compare::WeightComparison& c : report.compared) {
      if (c.status == compare::WeightStatus::kBitwiseEqual) continue;
      ASSERT_TRUE(c.explanation.has_value()) << c.key;
      seen[c.key] = c.explanation->kind;
      named += fmt::format("{}{}: {}", named.empty() ? "" : "; ", c.key, c.explanation->sentence);
    }
    EXPECT_EQ(seen, fault.weights) << compare::FormatWeightDiff(report);
    // diff-config: the planted field, and only it, is a mismatch.
    const compare::ConfigDiff config = compare::DiffConfigPaths(Clean(), dir);
    std::vector<std::string> mismatched;
    for (const compare::FieldComparison& f : config.fields) {
      if (f.verdict == compare::FieldVerdict::kMismatch) mismatched.push_back(f.field);
    }
    EXPECT_EQ(mismatched, fault.config_field.empty() ? std::vector<std::string>{}
                                                     : std::vector<std::string>{fault.config_field});
    if (!fault.config_field.empty()) named += fault.config_field + " differs (diff-config)";
    // localize: real, at the right layer, block and first position.
    const diagnose::LocalizeResult r = Localize(dir);
    const std::string text = diagnose::FormatLocalize(r);
    ASSERT_EQ(r.first_departure.kind, "real") << text;
    const diagnose::PointError& p = r.points.at(r.first_departure.index);
    EXPECT_EQ(p.layer, fault.layer) << text;
    EXPECT_EQ(p.sub_block, fault.sub_block) << text;
    EXPECT_EQ(r.position, fault.position) << text;
    // The FP64 runs part first exactly there (nothing earlier in position or depth).
    EXPECT_EQ(r.fp64_first_part.position, fault.position) << text;
    EXPECT_EQ(r.fp64_first_part.point.name, p.name) << text;
    EXPECT_EQ(r.position_token, r.tokens.at(fault.position));
    EXPECT_EQ(r.position_text, TokenText()(r.position_token));  // "" for BOS, a control token
    EXPECT_EQ(r.fp64_first_part.token_text, r.position_text);
    table += fmt::format("| {} | {} | {} at position {} (token {} \"{}\") |\n", fault.name, named,
                         p.name, r.position, r.position_token, r.position_text);
  }
  std::cout << table;
}

}  // namespace
}  // namespace parity
