// The engine log-prob importers (io/trace_import.h) on hand-written samples of the shapes the
// engines document (reports/TRACES.md "Importing" cites them): vLLM's RequestOutput (SampleLogprobs
// = list[dict[int, Logprob]]), SGLang's /generate meta_info ([logprob, token_id, text] triples),
// OpenAI completions (token strings -> log-probs) and chat completions (content[].top_logprobs).
// Each must give the same top-k trace; malformed input must name the file, the response, the step
// and the field.
#include "harness/io/trace_import.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "harness/io/trace.h"
#include "tests/test_util.h"

namespace parity::io {
namespace {

using ::testing::HasSubstr;

// Two steps: top-2 at step 0 = (5: -0.1, 7: -2.5), step 1 = (6: -0.2, 9: -1.9); prompt [1, 2].
const char* kVllm = R"({
  "prompt": "hi", "prompt_token_ids": [1, 2],
  "outputs": [{"index": 0, "text": "ab", "token_ids": [5, 6],
    "logprobs": [
      {"7": {"logprob": -2.5, "rank": 2, "decoded_token": "c"},
       "5": {"logprob": -0.1, "rank": 1, "decoded_token": "a"}},
      {"6": {"logprob": -0.2, "rank": 1, "decoded_token": "b"},
       "9": {"logprob": -1.9, "rank": 2, "decoded_token": "d"}}]}]})";

const char* kSglang = R"({"text": "ab", "meta_info": {
  "prompt_tokens": 2, "completion_tokens": 2,
  "input_token_logprobs": [[null, 1, null], [-3.0, 2, null]],
  "output_token_logprobs": [[-0.1, 5, "a"], [-0.2, 6, "b"]],
  "output_top_logprobs": [[[-0.1, 5, "a"], [-2.5, 7, "c"]], [[-0.2, 6, "b"], [-1.9, 9, "d"]]]}})";

// Completions with vLLM's return_tokens_as_token_ids for one step and tokenizer strings for the rest.
const char* kOpenAICompletions = R"({"id": "cmpl-1", "object": "text_completion", "model": "tiny",
  "choices": [{"index": 0, "text": "ab", "finish_reason": "length",
    "logprobs": {"text_offset": [0, 1], "token_logprobs": [-0.1, -0.2],
                 "tokens": ["token_id:5", "b"],
                 "top_logprobs": [{"token_id:5": -0.1, "token_id:7": -2.5}, {"b": -0.2, "d": -1.9}]}}]})";

const char* kOpenAIChat = R"({"object": "chat.completion", "model": "tiny",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "ab"},
    "logprobs": {"content": [
      {"token": "a", "logprob": -0.1, "bytes": [97],
       "top_logprobs": [{"token": "a", "logprob": -0.1, "bytes": [97]}, {"token": "c", "logprob": -2.5}]},
      {"token": "b", "logprob": -0.2,
       "top_logprobs": [{"token": "d", "logprob": -1.9}, {"token": "b", "logprob": -0.2}]}]}}]})";

ImportOptions Options(ImportFormat format) {
  ImportOptions options;
  options.format = format;
  options.vocab_size = 16;
  options.token_id = [](const std::string& token) -> std::optional<int64_t> {
    if (token == "a") return 5;
    if (token == "b") return 6;
    if (token == "c") return 7;
    if (token == "d") return 9;
    return std::nullopt;
  };
  return options;
}

void ExpectSample(const Trace& trace) {
  EXPECT_FALSE(trace.full_logits);
  EXPECT_EQ(trace.mode, "free");
  ASSERT_EQ(trace.top_k, 2);
  ASSERT_EQ(trace.prompts.size(), 1u);
  const TracePrompt& p = trace.prompts[0];
  EXPECT_EQ(p.prompt_tokens, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(p.tokens, (std::vector<int64_t>{5, 6}));
  EXPECT_TRUE(at::equal(p.topk_ids, at::tensor({5, 7, 6, 9}, at::kLong).view({2, 2})));
  EXPECT_TRUE(at::allclose(p.topk_logprobs,
                           at::tensor({-0.1f, -2.5f, -0.2f, -1.9f}).view({2, 2}), 0, 0));
  ValidateTrace(trace, "test");
}

TEST(TraceImport, Vllm) { ExpectSample(ImportTrace(kVllm, "v.json", Options(ImportFormat::kVllm))); }

TEST(TraceImport, Sglang) {
  ExpectSample(ImportTrace(kSglang, "s.json", Options(ImportFormat::kSglang)));
}

TEST(TraceImport, OpenAICompletionsNeedsPromptIds) {
  ImportOptions options = Options(ImportFormat::kOpenAI);
  try {
    ImportTrace(kOpenAICompletions, "o.json", options);
    FAIL() << "no prompt ids";
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("o.json: response 0, choices[0]"));
    EXPECT_THAT(e.what(), HasSubstr("prompt's token ids"));
  }
  options.prompt_tokens = {{1, 2}};
  Trace trace = ImportTrace(kOpenAICompletions, "o.json", options);
  ExpectSample(trace);
  EXPECT_EQ(trace.producer.model, "tiny");
  EXPECT_EQ(trace.producer.engine, "openai");
}

TEST(TraceImport, OpenAIChat) {
  ImportOptions options = Options(ImportFormat::kOpenAI);
  options.prompt_tokens = {{1, 2}};
  ExpectSample(ImportTrace(kOpenAIChat, "c.json", options));
}

TEST(TraceImport, JsonLinesAndArraysAreSeveralPrompts) {
  const std::string one = nlohmann::json::parse(kVllm).dump();
  Trace lines = ImportTrace(one + "\n" + one + "\n", "v.jsonl", Options(ImportFormat::kVllm));
  EXPECT_EQ(lines.prompts.size(), 2u);
  Trace array = ImportTrace("[" + one + "," + one + "]", "v.json", Options(ImportFormat::kVllm));
  EXPECT_EQ(array.prompts.size(), 2u);
  EXPECT_EQ(array.prompts[1].name, "p1");
}

TEST(TraceImport, VllmSampledTokenOutsideTopKIsDropped) {
  // logprobs=1 and a sampled token outside the top-1: the dict has two entries at step 0; K is the
  // fewest listed (1), and the extra entry goes.
  const char* text = R"({"prompt_token_ids": [1], "outputs": [{"token_ids": [7, 6],
    "logprobs": [{"5": {"logprob": -0.1, "rank": 1}, "7": {"logprob": -2.5, "rank": 4}},
                 {"6": {"logprob": -0.2, "rank": 1}}]}]})";
  Trace trace = ImportTrace(text, "v.json", Options(ImportFormat::kVllm));
  EXPECT_EQ(trace.top_k, 1);
  EXPECT_EQ(trace.prompts[0].topk_ids[0][0].item<int64_t>(), 5);
  EXPECT_EQ(trace.prompts[0].tokens[0], 7);
}

TEST(TraceImport, RoundTripsThroughTheTraceFormat) {
  TempDir dir;
  Trace trace = ImportTrace(kSglang, "s.json", Options(ImportFormat::kSglang));
  WriteTrace(dir.path() + "/t", trace);
  ExpectSample(ReadTrace(dir.path() + "/t"));
}

TEST(TraceImport, BadInputNamesTheField) {
  auto error = [](const std::string& text, ImportFormat format) {
    try {
      ImportTrace(text, "bad.json", Options(format));
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_THAT(error(R"({"prompt_token_ids": [1]})", ImportFormat::kVllm),
              HasSubstr("bad.json: response 0: missing field 'outputs'"));
  EXPECT_THAT(error(R"({"prompt_token_ids": [1], "outputs": [{"token_ids": [5], "logprobs": null}]})",
                    ImportFormat::kVllm),
              HasSubstr("SamplingParams(logprobs=k)"));
  EXPECT_THAT(error(R"({"prompt_token_ids": [1], "outputs": [{"token_ids": [5],
                        "logprobs": [{"x": -1.0}]}]})", ImportFormat::kVllm),
              HasSubstr("logprobs[0]: key 'x': expected a token id"));
  EXPECT_THAT(error(R"({"meta_info": {"prompt_tokens": 1, "input_token_logprobs": [[null, 1, null]],
                        "output_token_logprobs": [[-0.1, 5, null]], "output_top_logprobs": [null]}})",
                    ImportFormat::kSglang),
              HasSubstr("output_top_logprobs[0]: expected a list"));
  EXPECT_THAT(error(R"({"choices": [{"prompt_token_ids": [1], "logprobs": {"tokens": ["zzz"],
                        "top_logprobs": [{"zzz": -0.1}]}}]})", ImportFormat::kOpenAI),
              HasSubstr("\"zzz\" is not one token"));
  EXPECT_THAT(error("not json\n", ImportFormat::kVllm), HasSubstr("neither one JSON value"));
  // A token id beyond the vocabulary is caught by the trace's validation.
  Trace big = ImportTrace(R"({"prompt_token_ids": [1], "outputs": [{"token_ids": [99],
                              "logprobs": [{"99": -0.1}]}]})", "v.json", Options(ImportFormat::kVllm));
  EXPECT_THROW(ValidateTrace(big, "v.json"), InputError);
}

}  // namespace
}  // namespace parity::io
