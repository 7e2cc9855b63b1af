// Importers: top-k log-prob JSON as serving engines return it, turned into a top-k trace
// (reports/TRACES.md, "Importing"), so Parity can compare a model against a vLLM / SGLang / OpenAI-
// compatible server's output. The shapes read (reports/TRACES.md cites where each is defined):
//
//   vllm    a RequestOutput as JSON: {"prompt": str?, "prompt_token_ids": [int],
//           "outputs": [{"token_ids": [int], "logprobs": [ {"<id>": {"logprob": f, "rank": int?,
//           "decoded_token": str?} | f, ...} per step ]}]} (vllm/logprobs.py: SampleLogprobs =
//           list[dict[int, Logprob]]; the dict holds the top-k and the sampled token).
//   sglang  a /generate response: {"text": str?, "output_ids": [int]?, "meta_info":
//           {"input_token_logprobs": [[lp|null, id, text|null], ...]?,
//            "output_token_logprobs": [[lp, id, text|null], ...],
//            "output_top_logprobs": [[[lp, id, text|null], ...] | null, ...]}} (return_logprob,
//           top_logprobs_num; input ids only with logprob_start_len = 0).
//   openai  a completions response {"choices": [{"logprobs": {"tokens": [str], "token_logprobs":
//           [f], "top_logprobs": [{str: f}]}}]} or a chat completions one {"choices": [{"logprobs":
//           {"content": [{"token": str, "logprob": f, "top_logprobs": [{"token": str, "logprob":
//           f}]}]}}]}; token strings are "token_id:N" (vLLM's return_tokens_as_token_ids) or are
//           mapped to ids through the tokenizer (ImportOptions::token_id).
// A file holds one response, a JSON array of them, or one per line (JSONL); a response's choices /
// outputs beyond the first are further prompts. Every error names the file, the response, the step
// and the field.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "harness/io/trace.h"

namespace parity::io {

enum class ImportFormat { kVllm, kSglang, kOpenAI };
// "vllm", "sglang", "openai"; throws InputError otherwise.
ImportFormat ParseImportFormat(const std::string& text);
const char* ImportFormatName(ImportFormat format);

struct ImportOptions {
  ImportFormat format = ImportFormat::kVllm;
  int64_t vocab_size = 0;  // V of the trace (the model's vocabulary), > 0
  // Per prompt (in file order): its token ids, when the file does not carry them (OpenAI, SGLang
  // without input logprobs); an empty entry means "from the file". Fewer entries than prompts: the
  // rest come from the file.
  std::vector<std::vector<int64_t>> prompt_tokens;
  std::vector<std::optional<std::string>> prompt_texts;  // optional, for the trace's "text"
  // Token string -> id for OpenAI-style token strings; null: only "token_id:N" is accepted.
  std::function<std::optional<int64_t>(const std::string&)> token_id;
  int64_t top_k = 0;  // K; 0: the fewest ids listed at any step
  TraceProducer producer;  // engine defaults to the format name
};

// Parses `text` (the file's contents; `source` names it in errors) into a top-k, free-mode trace.
Trace ImportTrace(const std::string& text, const std::string& source, const ImportOptions& options);

}  // namespace parity::io
