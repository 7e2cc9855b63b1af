// Logit traces: what one engine produced for a set of prompts (token ids, per-step FP32 logits or
// top-k log-probabilities), in the directory format of reports/TRACES.md: trace.json for the
// description, trace.safetensors for the arrays.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <nlohmann/json.hpp>

namespace parity::io {

// Who produced a trace, and how.
struct TraceProducer {
  std::string engine;          // "hf-transformers", "vllm", "llama.cpp", "parity", ...
  std::string engine_version;  // "5.17.0"
  std::string model;           // path or name of the weights
  std::string dtype;           // compute precision, e.g. "bf16"
  std::string device;          // e.g. "cuda (NVIDIA H200)", "cpu"
  nlohmann::json settings = nlohmann::json::object();  // free-form, engine specific
};

struct TracePrompt {
  std::string name;                  // "p0"
  std::optional<std::string> text;   // absent for token-only prompts
  std::vector<int64_t> prompt_tokens;  // [P]
  std::vector<int64_t> tokens;       // [T]: the token appended after each step
  at::Tensor logits;                 // F32 [T, V] when the content is "logits"
  at::Tensor topk_ids;               // I64 [T, K] when the content is "topk", most likely first
  at::Tensor topk_logprobs;          // F32 [T, K]
};

struct Trace {
  TraceProducer producer;
  int64_t vocab_size = 0;            // V
  bool full_logits = true;           // content "logits"; false: "topk"
  int64_t top_k = 0;                 // K when !full_logits
  std::string mode = "free";         // "free" or "teacher_forced"
  std::vector<TracePrompt> prompts;
};

// Writes DIR/trace.json and DIR/trace.safetensors atomically (creating DIR). Validates first, as
// ReadTrace does, so that a written trace always reads back; throws InputError naming the problem.
void WriteTrace(const std::string& dir, const Trace& trace);

// The checks WriteTrace and ReadTrace make (see reports/TRACES.md); `where` names the trace in
// messages. Throws InputError.
void ValidateTrace(const Trace& trace, const std::string& where);

// Reads and validates a trace directory (see reports/TRACES.md). Throws InputError naming the file
// and the key or tensor that is wrong.
Trace ReadTrace(const std::string& dir);

}  // namespace parity::io
