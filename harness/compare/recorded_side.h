// A recorded side: a logit trace (reports/TRACES.md) or a llama.cpp KL-divergence base file standing
// where a checkpoint can, as side A or B of `compare` / `run`. Detected by path (IsRecordedPath): a
// directory holding trace.json, a trace.json file, or a file starting with llama.cpp's "_logits_"
// magic. A recorded side replays its stream; it never runs a forward pass.
//
// A KLD-base file reads as a teacher-forced trace with full logits: one prompt per chunk, the first
// n_ctx/2 + 1 tokens as the prompt, the rest as the stream, and per scored position the stored
// (uint16-quantized, 16-nat-floored) log-probs as its logits (softmax of log-probs is the
// distribution itself; the floor and the quantization stay in it and are named in the side's
// description).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/compare/run_result.h"
#include "harness/forward/numerics.h"
#include "harness/io/trace.h"

namespace parity::compare {

// True when `path` is a trace directory, a trace.json file or a KLD-base file (see above).
bool IsRecordedPath(const std::string& path);

class RecordedSide {
 public:
  // Reads and validates the trace or KLD-base file at `path`. Throws InputError naming the file.
  static RecordedSide Open(const std::string& path);

  const std::string& path() const { return path_; }
  const io::Trace& trace() const { return trace_; }
  bool full_logits() const { return trace_.full_logits; }
  bool teacher_forced() const { return trace_.mode == "teacher_forced"; }
  // "trace" or "llama.cpp-kld-base".
  const std::string& format() const { return format_; }

  // The recorded prompt whose token ids are `prompt_tokens`; null when none is.
  const io::TracePrompt* Find(const std::vector<int64_t>& prompt_tokens) const;
  // Its precision from producer.dtype ("bf16", "bfloat16", "torch.bfloat16", "float32", ...); null
  // when the trace does not say or says something else.
  std::optional<forward::Precision> precision() const;
  // The precision as written in outputs: PrecisionName when known, else producer.dtype, else
  // "unknown".
  std::string precision_text() const;
  // One line: "trace of hf-transformers 5.17.0, bf16 on cuda (NVIDIA H200), full logits, free".
  std::string Describe() const;
  // summary.json's models[label] entry: architecture "trace", the producer and content in config.
  ModelInfo Info() const;

 private:
  std::string path_;
  std::string format_;
  io::Trace trace_;
};

// Converts a llama.cpp KLD-base file into the trace described above (exposed for tests).
io::Trace TraceFromKldBase(const std::string& path);

}  // namespace parity::compare
