// The real llama.cpp as a peer (issue 12): the trained fixture converted to Llama, then to GGUF by
// `convert hf-to-gguf`, run greedily in llama.cpp through node-llama-cpp's prebuilt CPU libraries
// (scripts/llama_cpp/run_gguf.sh, writing a Parity trace), against Parity's own forward on the HF
// checkpoint at FP32. Needs `scripts/setup.sh` (npm); skipped, saying so, without it.
#include <cmath>
#include <filesystem>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include "gguf_fixture.h"
#include "harness/io/safetensors.h"
#include "harness/io/trace.h"
#include "harness/model/gguf_checkpoint.h"

namespace parity {
namespace {

constexpr int64_t kSteps = 64;

std::string RunGguf() { return std::string(PARITY_SOURCE_DIR) + "/scripts/llama_cpp/run_gguf.sh"; }

bool PeerInstalled() {
  return std::filesystem::exists(std::string(PARITY_SOURCE_DIR) +
                                 "/scripts/llama_cpp/node_modules/node-llama-cpp/package.json");
}

io::Trace LlamaCpp(const std::string& gguf, const std::string& out) {
  std::string log;
  const std::string command =
      fmt::format("'{}' '{}' --prompt-tokens {} --max-new-tokens {} --out '{}'", RunGguf(), gguf,
                  fmt::join(FixturePrompt(), ","), kSteps, out);
  EXPECT_EQ(RunCommand(command, &log), 0) << command << "\n" << log;
  return io::ReadTrace(out);
}

// Per-step KL(p_a || p_b) in FP64 over the full vocabulary.
std::vector<double> StepKl(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor la = at::log_softmax(a.to(at::kDouble), -1);
  const at::Tensor lb = at::log_softmax(b.to(at::kDouble), -1);
  const at::Tensor kl = (la.exp() * (la - lb)).sum(-1);
  return std::vector<double>(kl.data_ptr<double>(), kl.data_ptr<double>() + kl.numel());
}

class LlamaCppPeer : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!PeerInstalled()) {
      GTEST_SKIP() << "node-llama-cpp is not installed (scripts/setup.sh installs it from npm)";
    }
  }
};

TEST_F(LlamaCppPeer, F32GgufGivesParitysGreedyTokens) {
  GgufFixture& fixture = GgufFixture::Get();
  const GreedyRun parity = ParityGreedy(io::Checkpoint::Open(fixture.llama()), FixturePrompt(), kSteps);
  const io::Trace trace = LlamaCpp(fixture.Gguf("f32"), fixture.dir() + "/trace-f32");
  ASSERT_EQ(trace.prompts.size(), 1u);
  EXPECT_EQ(trace.producer.engine, "llama.cpp");
  EXPECT_EQ(trace.prompts[0].prompt_tokens, FixturePrompt());
  EXPECT_EQ(trace.prompts[0].tokens, parity.tokens) << "llama.cpp: " << fmt::format("{}", fmt::join(trace.prompts[0].tokens, ","))
                                                    << "\nParity:    " << fmt::format("{}", fmt::join(parity.tokens, ","));
  const at::Tensor diff = (trace.prompts[0].logits - parity.logits).abs();
  const std::vector<double> kl = StepKl(parity.logits, trace.prompts[0].logits);
  const double max_kl = *std::max_element(kl.begin(), kl.end());
  const double max_diff = diff.max().item<double>();
  std::cout << fmt::format("llama.cpp F32 vs Parity FP32 over {} steps: max |logit diff| {:.3g} "
                           "(logits up to {:.3g}), max KL {:.3g}\n",
                           kSteps, max_diff, parity.logits.abs().max().item<double>(), max_kl);
  // Different kernels, same FP32 function: agreement at FP32 rounding level (the logits are O(10)).
  EXPECT_LT(max_diff, 1e-3);
  EXPECT_LT(max_kl, 1e-8);
}

// Q8_0: llama.cpp's logits differ from the FP32 reference by what the quantization makes, measured
// by Parity's own forward on the same file's dequantized weights. llama.cpp also rounds the
// activations to Q8_0 for its dot products: a second rounding of the same width, which can double or
// triple the variance of the logit error; a factor 8 on the KL leaves room for that and nothing
// else (a wrong tensor is off by 100x and more, see below).
TEST_F(LlamaCppPeer, Q8_0GgufIsQuantizationNoiseOnly) {
  GgufFixture& fixture = GgufFixture::Get();
  const GreedyRun parity = ParityGreedy(io::Checkpoint::Open(fixture.llama()), FixturePrompt(), kSteps);
  const GreedyRun dequantized =
      ParityGreedy(model::OpenGgufCheckpoint(fixture.Gguf("q8_0")), FixturePrompt(), kSteps);
  const io::Trace trace = LlamaCpp(fixture.Gguf("q8_0"), fixture.dir() + "/trace-q8");
  const std::vector<int64_t>& tokens = trace.prompts[0].tokens;
  int64_t same = 0;
  while (same < kSteps && tokens[same] == parity.tokens[same] && dequantized.tokens[same] == parity.tokens[same]) {
    ++same;
  }
  ASSERT_GE(same, 1);
  const std::vector<double> kl_llama = StepKl(parity.logits.narrow(0, 0, same), trace.prompts[0].logits.narrow(0, 0, same));
  const std::vector<double> kl_parity = StepKl(parity.logits.narrow(0, 0, same), dequantized.logits.narrow(0, 0, same));
  const double max_llama = *std::max_element(kl_llama.begin(), kl_llama.end());
  const double max_parity = *std::max_element(kl_parity.begin(), kl_parity.end());
  std::cout << fmt::format("Q8_0 GGUF vs Parity FP32 on the HF weights, over the {} of {} steps where all "
                           "three chose the same tokens: max KL llama.cpp {:.3g}, Parity's forward on the "
                           "dequantized Q8_0 weights {:.3g}\n",
                           same, kSteps, max_llama, max_parity);
  EXPECT_EQ(same, kSteps);
  EXPECT_LT(max_llama, 8 * max_parity);  // measured 3.4x here
  EXPECT_GT(max_llama, 1e3 * 5.47e-12);  // not F32: the file really is quantized
}

TEST_F(LlamaCppPeer, UnpermutedGgufDivergesInLlamaCpp) {
  GgufFixture& fixture = GgufFixture::Get();
  const GreedyRun parity = ParityGreedy(io::Checkpoint::Open(fixture.llama()), FixturePrompt(), kSteps);
  const std::string bad = UnpermutedGguf(fixture.Gguf("f32"), fixture.dir() + "/peer-unpermuted.gguf", 8, 2);
  const io::Trace trace = LlamaCpp(bad, fixture.dir() + "/trace-bad");
  const std::vector<double> kl = StepKl(parity.logits.narrow(0, 0, 1), trace.prompts[0].logits.narrow(0, 0, 1));
  std::cout << fmt::format("llama.cpp on the un-permuted GGUF: KL at step 0 {:.3g}\n", kl[0]);
  EXPECT_GT(kl[0], 1e-3);  // wrong from the first step, far beyond FP32 noise
}

// A NeoX-rope family with q/k norms and a byte-level BPE vocabulary: HF's random Qwen3 (made by
// transformers itself) with its vocabulary widened to a small tokenizer.json's 967 ids (the new
// embedding and LM head rows deterministic, small), converted to GGUF (no permutation, gpt2
// tokenizer metadata, pre-tokenizer "qwen2"), run in llama.cpp against Parity's forward.
TEST_F(LlamaCppPeer, Qwen3WithABpeVocabularyGivesParitysTokens) {
  TempDir dir;
  const std::string src = TestDataPath("golden/families/qwen3");
  const io::Checkpoint original = io::Checkpoint::Open(src);
  nlohmann::json config = original.config_json();
  const int64_t vocab = 967, old_vocab = config["vocab_size"].get<int64_t>();
  config["vocab_size"] = vocab;
  std::vector<io::NamedTensor> tensors;
  for (const std::string& name : original.names()) {
    at::Tensor value = original.Get(name).clone();
    if (name == "model.embed_tokens.weight" || name == "lm_head.weight") {
      const int64_t extra = vocab - old_vocab;
      at::Tensor rows = at::sin(at::arange(extra * value.size(1), at::kFloat)).reshape({extra, -1}) * 0.02;
      value = at::cat({value, rows.to(value.scalar_type())});
    }
    tensors.push_back({name, value});
  }
  const std::string hf = dir.path() + "/qwen3-bpe";
  std::filesystem::create_directories(hf);
  io::WriteSafetensors(hf + "/model.safetensors", tensors);
  WriteFileText(hf + "/config.json", config.dump(2));
  WriteFileText(hf + "/tokenizer.json", ReadFileText(TestDataPath("tokenizers/gpt2_style/tokenizer.json")));
  const convert::HfToGgufResult result = convert::ConvertHfToGguf(hf, dir.path() + "/qwen3.gguf", "f32");
  EXPECT_EQ(result.tokenizer, "gpt2 (byte-level BPE, pre-tokenizer qwen2)");
  const std::vector<int64_t> prompt = {126, 92, 126, 245, 182, 56};
  const GreedyRun parity = ParityGreedy(io::Checkpoint::Open(hf), prompt, 32);
  std::string log;
  const std::string command = fmt::format("'{}' '{}' --prompt-tokens {} --max-new-tokens 32 --out '{}'",
                                          RunGguf(), dir.path() + "/qwen3.gguf", fmt::join(prompt, ","),
                                          dir.path() + "/trace");
  ASSERT_EQ(RunCommand(command, &log), 0) << command << "\n" << log;
  const io::Trace trace = io::ReadTrace(dir.path() + "/trace");
  EXPECT_EQ(trace.prompts[0].tokens, parity.tokens);
  const std::vector<double> kl = StepKl(parity.logits, trace.prompts[0].logits);
  const double max_kl = *std::max_element(kl.begin(), kl.end());
  std::cout << fmt::format("llama.cpp F32 vs Parity FP32, Qwen3 with a BPE vocabulary, 32 steps: max "
                           "|logit diff| {:.3g}, max KL {:.3g}\n",
                           (trace.prompts[0].logits - parity.logits).abs().max().item<double>(), max_kl);
  EXPECT_LT(max_kl, 1e-8);
}

}  // namespace
}  // namespace parity
