// Logit traces (reports/TRACES.md): write and read back both contents, and every malformed trace is
// an InputError naming the file and the key or tensor.
#include "harness/io/trace.h"

#include <filesystem>
#include <functional>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/io/safetensors.h"
#include "tests/test_util.h"

namespace parity::io {
namespace {

using ::testing::HasSubstr;

Trace SampleTrace(bool full_logits) {
  Trace trace;
  trace.producer = {"hf-transformers", "5.17.0", "tiny", "bf16", "cpu", {{"seed", 0}}};
  trace.vocab_size = 11;
  trace.full_logits = full_logits;
  trace.top_k = full_logits ? 0 : 3;
  at::manual_seed(7);
  for (int i = 0; i < 2; ++i) {
    TracePrompt p;
    p.name = "p" + std::to_string(i);
    if (i == 0) p.text = "who are you";
    p.prompt_tokens = {1, 5, 7};
    p.tokens = i == 0 ? std::vector<int64_t>{3, 4, 2, 10} : std::vector<int64_t>{9};
    const int64_t steps = static_cast<int64_t>(p.tokens.size());
    at::Tensor logits = at::randn({steps, 11}, at::kFloat);
    if (full_logits) {
      p.logits = logits;
    } else {
      auto [values, ids] = at::log_softmax(logits, -1).topk(3, -1);
      p.topk_ids = ids;
      p.topk_logprobs = values;
    }
    trace.prompts.push_back(p);
  }
  return trace;
}

TEST(Trace, LogitsRoundTrip) {
  TempDir dir;
  Trace written = SampleTrace(true);
  WriteTrace(dir.path() + "/t", written);
  Trace read = ReadTrace(dir.path() + "/t");
  EXPECT_EQ(read.producer.engine, "hf-transformers");
  EXPECT_EQ(read.producer.settings["seed"], 0);
  EXPECT_TRUE(read.full_logits);
  ASSERT_EQ(read.prompts.size(), 2u);
  EXPECT_EQ(read.prompts[0].text, "who are you");
  EXPECT_FALSE(read.prompts[1].text.has_value());
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(read.prompts[i].prompt_tokens, written.prompts[i].prompt_tokens);
    EXPECT_EQ(read.prompts[i].tokens, written.prompts[i].tokens);
    EXPECT_TRUE(at::equal(read.prompts[i].logits, written.prompts[i].logits));
  }
  nlohmann::json description = ReadJsonFile(dir.path() + "/t/trace.json");
  EXPECT_EQ(description["content"], "logits");
  EXPECT_EQ(description["prompts"][0]["steps"], 4);
}

TEST(Trace, TopkRoundTrip) {
  TempDir dir;
  Trace written = SampleTrace(false);
  WriteTrace(dir.path(), written);
  Trace read = ReadTrace(dir.path());
  EXPECT_FALSE(read.full_logits);
  EXPECT_EQ(read.top_k, 3);
  EXPECT_TRUE(at::equal(read.prompts[0].topk_ids, written.prompts[0].topk_ids));
  EXPECT_TRUE(at::equal(read.prompts[1].topk_logprobs, written.prompts[1].topk_logprobs));
  EXPECT_FALSE(read.prompts[0].logits.defined());
}

TEST(Trace, WriterRefusesInconsistentTraces) {
  TempDir dir;
  Trace bad = SampleTrace(true);
  bad.prompts[0].logits = at::zeros({3, 11});  // 4 steps
  EXPECT_THAT([&] { WriteTrace(dir.path(), bad); },
              ::testing::ThrowsMessage<InputError>(
                  HasSubstr("tensor 'p0.logits': expected F32 [4, 11], got F32 [3, 11]")));
  bad = SampleTrace(true);
  bad.prompts[1].tokens = {11};
  EXPECT_THAT([&] { WriteTrace(dir.path(), bad); },
              ::testing::ThrowsMessage<InputError>(HasSubstr("id 11 at index 0 is outside [0, 11)")));
}

class TraceErrors : public ::testing::Test {
 protected:
  void SetUp() override { WriteTrace(dir_.path(), SampleTrace(true)); }
  std::string ReadError() {
    try {
      ReadTrace(dir_.path());
    } catch (const InputError& e) {
      return e.what();
    }
    return "no error";
  }
  void EditJson(const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = ReadJsonFile(dir_.path() + "/trace.json");
    edit(j);
    WriteFileText(dir_.path() + "/trace.json", j.dump());
  }
  TempDir dir_;
};

TEST_F(TraceErrors, DescriptionErrorsNameTheKey) {
  EditJson([](nlohmann::json& j) { j["version"] = 2; });
  EXPECT_THAT(ReadError(), HasSubstr("trace.json: 'version' must be 1"));
  EditJson([](nlohmann::json& j) { j["version"] = 1; j["content"] = "probs"; });
  EXPECT_THAT(ReadError(), HasSubstr("'content' is 'probs'"));
  EditJson([](nlohmann::json& j) { j["content"] = "logits"; j["prompts"][0]["steps"] = 5; });
  EXPECT_THAT(ReadError(), HasSubstr("says 3 prompt tokens and 5 steps"));
  EditJson([](nlohmann::json& j) { j["prompts"][0]["steps"] = 4; j["content"] = "topk"; j["top_k"] = 3; });
  EXPECT_THAT(ReadError(), HasSubstr("tensor 'p0.topk_ids' is missing"));
}

TEST_F(TraceErrors, ArrayErrorsNameTheTensor) {
  SafetensorsFile arrays = SafetensorsFile::Open(dir_.path() + "/trace.safetensors");
  std::vector<NamedTensor> tensors;
  for (const TensorInfo& info : arrays.tensors()) tensors.push_back({info.name, arrays.Get(info.name).clone()});
  tensors.push_back({"p2.logits", at::zeros({1, 11})});
  WriteSafetensors(dir_.path() + "/trace.safetensors", tensors);
  EXPECT_THAT(ReadError(), HasSubstr("unexpected tensor 'p2.logits'"));
  tensors.pop_back();
  for (NamedTensor& t : tensors) {
    if (t.name == "p1.logits") t.tensor = at::zeros({1, 12});
  }
  WriteSafetensors(dir_.path() + "/trace.safetensors", tensors);
  EXPECT_THAT(ReadError(), HasSubstr("tensor 'p1.logits': expected F32 [1, 11], got F32 [1, 12]"));
  std::filesystem::remove(dir_.path() + "/trace.json");
  EXPECT_THAT(ReadError(), HasSubstr("trace.json: missing"));
}

// scripts/hf_trace.py's writer (its --self-test trace, no transformers needed) read by Parity's
// reader: exactly representable logits ((i + prompt) % 17 - 8) / 4 and their argmax as tokens.
TEST(Trace, ReaderNamesMalformedJsonFields) {
  TempDir dir;
  WriteTrace(dir.path(), SampleTrace(true));
  const nlohmann::json good = ReadJsonFile(dir.path() + "/trace.json");
  auto error_with = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = good;
    edit(j);
    WriteFileText(dir.path() + "/trace.json", j.dump());
    try {
      ReadTrace(dir.path());
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_THAT(error_with([](nlohmann::json& j) { j = nlohmann::json::array({1}); }),
              HasSubstr("'format' must be \"parity-trace\""));
  EXPECT_THAT(error_with([](nlohmann::json& j) { j.erase("producer"); }),
              HasSubstr("trace.json: 'producer' must be an object"));
  EXPECT_THAT(error_with([](nlohmann::json& j) { j["producer"]["dtype"] = 3; }),
              HasSubstr("'dtype' must be a string"));
  EXPECT_THAT(error_with([](nlohmann::json& j) { j["vocab_size"] = "11"; }),
              HasSubstr("'vocab_size' must be an integer"));
  EXPECT_THAT(error_with([](nlohmann::json& j) { j["prompts"] = 3; }),
              HasSubstr("'prompts' must be an array"));
  EXPECT_THAT(error_with([](nlohmann::json& j) { j["prompts"][1]["steps"] = "x"; }),
              HasSubstr("'steps' must be an integer"));
}

TEST(TraceInterop, PythonWriterReadsBack) {
  if (RunCommand("/usr/bin/python3 -c 'import torch, numpy'") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 with torch and numpy (Debian python3-torch) is not installed";
  }
  TempDir dir;
  std::string output;
  ASSERT_EQ(RunCommand("/usr/bin/python3 '" + std::string(PARITY_SOURCE_DIR) +
                           "/scripts/hf_trace.py' --self-test '" + dir.path() + "/t'",
                       &output),
            0)
      << output;
  Trace trace = ReadTrace(dir.path() + "/t");
  EXPECT_EQ(trace.producer.engine, "hf_trace.py --self-test");
  EXPECT_EQ(trace.vocab_size, 13);
  ASSERT_EQ(trace.prompts.size(), 2u);
  for (int64_t p = 0; p < 2; ++p) {
    const TracePrompt& prompt = trace.prompts[p];
    EXPECT_EQ(prompt.prompt_tokens.size(), size_t(p + 2));
    at::Tensor index = at::arange(prompt.logits.numel(), at::kDouble).reshape(prompt.logits.sizes());
    at::Tensor expected = ((index + p).remainder(17) - 8).div(4).to(at::kFloat);
    EXPECT_TRUE(at::equal(prompt.logits, expected)) << "prompt " << p;
    at::Tensor argmax = prompt.logits.argmax(-1);
    EXPECT_EQ(prompt.tokens, std::vector<int64_t>(argmax.data_ptr<int64_t>(),
                                                  argmax.data_ptr<int64_t>() + argmax.numel()));
  }
  EXPECT_EQ(trace.prompts[0].text, "who are you");
}

}  // namespace
}  // namespace parity::io
