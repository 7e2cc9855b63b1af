// Shared by the GGUF tests: the trained fixture converted to Llama and then to GGUF (each type made
// once per test binary), a greedy FP32 decode with Parity's forward, and rewriting a GGUF with
// planted faults (a tensor changed, everything else copied).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "harness/convert/hf_to_gguf.h"
#include "harness/convert/internlm2_to_llama.h"
#include "harness/forward/causal_lm.h"
#include "harness/io/checkpoint.h"
#include "harness/io/ggml_quants.h"
#include "harness/io/gguf.h"
#include "harness/io/gguf_tensor.h"
#include "harness/io/gguf_writer.h"
#include "test_util.h"

namespace parity {

// DIR/llama (the Llama conversion of cases/fixtures/internlm2-tiny) and DIR/llama-<type>.gguf.
class GgufFixture {
 public:
  static GgufFixture& Get() {
    static GgufFixture fixture;
    return fixture;
  }
  const std::string& llama() const { return llama_; }
  const std::string& dir() const { return dir_.path(); }
  // The GGUF of the Llama conversion at `type` (f32, f16, bf16, q8_0), made on first use.
  const std::string& Gguf(const std::string& type) {
    auto it = ggufs_.find(type);
    if (it != ggufs_.end()) return it->second;
    const std::string path = dir_.path() + "/llama-" + type + ".gguf";
    convert::ConvertHfToGguf(llama_, path, type);
    return ggufs_.emplace(type, path).first->second;
  }

 private:
  GgufFixture() : llama_(dir_.path() + "/llama") {
    convert::ConvertInternLM2ToLlama(TrainedFixtureDir(), llama_);
  }
  TempDir dir_;
  std::string llama_;
  std::map<std::string, std::string> ggufs_;
};

// A prompt of the fixture's vocabulary: BOS then ids of ordinary pieces.
inline std::vector<int64_t> FixturePrompt() { return {1, 300, 45, 901, 77, 512, 13, 260}; }

// Greedy FP32 decoding with Parity's forward on `checkpoint`: the chosen tokens and each step's
// logits [steps, V].
struct GreedyRun {
  std::vector<int64_t> tokens;
  at::Tensor logits;
};
inline GreedyRun ParityGreedy(const io::Checkpoint& checkpoint, const std::vector<int64_t>& prompt,
                              int64_t steps) {
  auto lm = forward::LoadCausalLM(checkpoint,
                                  forward::MakeNumerics(forward::Precision::kFP32, at::kCPU));
  forward::KVCache cache;
  GreedyRun run;
  std::vector<at::Tensor> rows;
  at::Tensor input = at::tensor(prompt, at::kLong).reshape({1, -1});
  for (int64_t step = 0; step < steps; ++step) {
    at::Tensor logits = lm->Forward(input, cache);
    at::Tensor last = logits[0][logits.size(1) - 1].to(at::kFloat);
    rows.push_back(last);
    const int64_t next = last.argmax().item<int64_t>();
    run.tokens.push_back(next);
    input = at::full({1, 1}, next, at::kLong);
  }
  run.logits = at::stack(rows);
  return run;
}

// Copies `src` to `dst`, replacing each tensor for which `change` returns a value (given its name
// and its FP32 values in GGUF layout, PyTorch shape); the replacement is stored in the tensor's own
// type. Metadata is copied as is.
inline void RewriteGguf(const std::string& src, const std::string& dst,
                        const std::function<std::optional<at::Tensor>(const std::string&,
                                                                      const at::Tensor&)>& change) {
  const io::GgufFile file = io::GgufFile::Open(src);
  io::GgufWriter writer;
  for (const auto& [key, value] : file.metadata()) writer.AddValue(key, value);
  for (const io::GgufTensorInfo& info : file.tensors()) {
    std::vector<uint8_t> bytes = file.ReadRaw(info);
    if (auto replaced = change(info.name, io::GgufTensorToTorch(file, info))) {
      at::Tensor values = replaced->to(at::kFloat).contiguous();
      io::QuantizeRow(*info.type, values.data_ptr<float>(), values.numel(), bytes.data());
    }
    writer.AddTensor(info.name, info.TorchShape(), *info.type, std::move(bytes));
  }
  writer.Write(dst);
}

// The planted fault of the issue: Q and K left in HF's row order (the converter's permutation
// undone on every layer).
inline std::string UnpermutedGguf(const std::string& good, const std::string& dst, int64_t heads,
                                  int64_t kv_heads) {
  RewriteGguf(good, dst, [&](const std::string& name, const at::Tensor& value) -> std::optional<at::Tensor> {
    if (name.find(".attn_q.weight") != std::string::npos) return io::UnpermuteLlamaQK(value, heads);
    if (name.find(".attn_k.weight") != std::string::npos) return io::UnpermuteLlamaQK(value, kv_heads);
    return std::nullopt;
  });
  return dst;
}

}  // namespace parity
