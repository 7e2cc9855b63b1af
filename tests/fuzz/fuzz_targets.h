// What each libFuzzer harness does with one input, shared by the harnesses (tests/fuzz/fuzz_*.cpp,
// clang + libFuzzer) and by the normal suite's replay of the kept inputs
// (fuzz_regression_test.cpp), so that a kept input replays exactly what found the defect. Each
// target writes the input where its parser reads it (under `scratch`, a directory private to the
// caller), runs the parser and what uses its result, and returns; the parser's InputError
// propagates (the caller accepts it). Any other exception, or a broken round-trip invariant
// (FuzzInvariant), is a defect.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/compare/case.h"
#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/io/gguf.h"
#include "harness/io/gguf_tensor.h"
#include "harness/io/kld_base.h"
#include "harness/io/safetensors.h"
#include "harness/io/trace.h"
#include "harness/io/trace_import.h"
#include "harness/model/config.h"
#include "harness/model/gguf_model.h"
#include "harness/tokenizer/tokenizer_json.h"

namespace parity::fuzz {

// A property that must hold for every accepted input failed (not an InputError: a finding).
class FuzzInvariant : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

inline void WriteInput(const std::string& path, const std::string& bytes) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) throw std::runtime_error("cannot write " + path);
  if (!bytes.empty()) std::fwrite(bytes.data(), 1, bytes.size(), file);
  std::fclose(file);
}

inline std::string ReadBytes(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) throw std::runtime_error("cannot read " + path);
  std::string bytes;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), file)) > 0;) bytes.append(buffer, n);
  std::fclose(file);
  return bytes;
}

// A whole safetensors file (length, JSON header, data area): Open, then Get of every tensor.
inline void TargetSafetensors(const std::string& input, const std::string& scratch) {
  const std::string path = scratch + "/input.safetensors";
  WriteInput(path, input);
  io::SafetensorsFile file = io::SafetensorsFile::Open(path);
  for (const io::TensorInfo& info : file.tensors()) {
    (void)file.Get(info.name).numel();
    (void)file.Bytes(info.name);
  }
}

// model.safetensors.index.json beside a valid config.json and two valid shards: Checkpoint::Open
// (shard names, weight_map, tensors in the named shard, duplicates) and every tensor.
inline void TargetIndex(const std::string& input, const std::string& scratch) {
  const std::string dir = scratch + "/checkpoint";
  if (!std::filesystem::exists(dir + "/config.json")) {
    std::filesystem::create_directories(dir);
    WriteInput(dir + "/config.json", R"({"model_type": "llama", "hidden_size": 8})");
    io::WriteSafetensors(dir + "/model-00001-of-00002.safetensors",
                         {{"a.weight", at::ones({2, 3})}, {"b.weight", at::zeros({4})}});
    io::WriteSafetensors(dir + "/model-00002-of-00002.safetensors",
                         {{"c.weight", at::ones({1}, at::kBFloat16)}});
  }
  WriteInput(dir + "/model.safetensors.index.json", input);
  io::Checkpoint checkpoint = io::Checkpoint::Open(dir);
  for (const std::string& name : checkpoint.names()) {
    (void)checkpoint.ShardOf(name);
    (void)checkpoint.Get(name).numel();
  }
  (void)checkpoint.parameter_count();
}

// config.json through model::ParseConfig (every architecture's fields, defaults, rope scaling,
// Validate). Input that is not JSON at all is skipped (the JSON library is not under test).
inline void TargetConfig(const std::string& input, const std::string&) {
  nlohmann::json json = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return;
  (void)model::CountParameters(model::ParseConfig(json, "fuzz/config.json"));
}

// A case file through compare::ParseCase (models, prompts, pairs, dtypes, thresholds, drift gates).
inline void TargetCase(const std::string& input, const std::string&) {
  nlohmann::ordered_json json =
      nlohmann::ordered_json::parse(input, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return;
  (void)compare::ParseCase(json, "fuzz/case.json").pairs.size();
}

// A GGUF file: header, metadata, tensor infos (GgufFile::Open), the inspect summary, every tensor
// dequantized (Open's checks bound each tensor by the file's size, so all are small here), and what
// it says as a checkpoint (tensor roles, the metadata's config.json).
inline void TargetGguf(const std::string& input, const std::string& scratch) {
  const std::string path = scratch + "/input.gguf";
  WriteInput(path, input);
  io::GgufFile file = io::GgufFile::Open(path);
  (void)io::GgufSummaryText(file).size();
  for (const io::GgufTensorInfo& tensor : file.tensors()) {
    if (file.FindTensor(tensor.name) != &tensor) throw FuzzInvariant("FindTensor: wrong tensor");
    if (!tensor.type->dequantizable) continue;
    at::Tensor values = io::GgufTensorToTorch(file, tensor);
    if (values.numel() != tensor.n_elements) throw FuzzInvariant("dequantized element count");
  }
  // The file as a checkpoint: tensor names to roles, the metadata as a config.json, parsed.
  for (const io::GgufTensorInfo& tensor : file.tensors())
    (void)model::ParseGgufTensorName(tensor.name);
  (void)model::ParseConfig(model::GgufConfigJson(file), path);
}

// A trace directory: the input up to its first NUL byte is trace.json, the rest trace.safetensors
// (no NUL: no arrays file). A trace that reads must write back and read back to the same ids.
inline void TargetTrace(const std::string& input, const std::string& scratch) {
  const std::string dir = scratch + "/trace";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const size_t split = input.find('\0');
  WriteInput(dir + "/trace.json", input.substr(0, split));
  if (split != std::string::npos) WriteInput(dir + "/trace.safetensors", input.substr(split + 1));
  io::Trace trace = io::ReadTrace(dir);
  try {
    io::WriteTrace(scratch + "/trace_copy", trace);
    io::Trace copy = io::ReadTrace(scratch + "/trace_copy");
    if (copy.prompts.size() != trace.prompts.size())
      throw FuzzInvariant("trace round trip: prompts");
    for (size_t i = 0; i < copy.prompts.size(); ++i) {
      if (copy.prompts[i].tokens != trace.prompts[i].tokens ||
          copy.prompts[i].prompt_tokens != trace.prompts[i].prompt_tokens) {
        throw FuzzInvariant("trace round trip: token ids differ");
      }
    }
  } catch (const InputError& e) {
    throw FuzzInvariant(std::string("a trace that reads does not write and read back: ") +
                        e.what());
  }
}

// A llama.cpp KL-divergence base file: Read, its summary, every record's log-probs, a comparison
// with fixed logits, and Write, which must give back the input byte for byte.
inline void TargetKldBase(const std::string& input, const std::string& scratch) {
  const std::string path = scratch + "/input.kld";
  WriteInput(path, input);
  io::KldBaseFile base = io::KldBaseFile::Read(path);
  (void)io::SummarizeBase(base);
  (void)io::CompareWithBase(base, [&](int64_t chunk, int64_t position) {
    std::vector<float> row(static_cast<size_t>(base.n_vocab));
    for (size_t i = 0; i < row.size(); ++i)
      row[i] = 0.25f * static_cast<float>((i + chunk + position) % 7);
    return row;
  });
  base.Write(scratch + "/copy.kld");
  if (ReadBytes(scratch + "/copy.kld") != input)
    throw FuzzInvariant("KLD base: Write(Read(x)) != x");
}

// tokenizer.json through LoadTokenizerJson (model, added tokens, normalizer, pre-tokenizer with
// its regexes, decoder, post-processor), then a short text with an added token written literally
// encoded, decoded, and a few ids looked up.
inline void TargetTokenizerJson(const std::string& input, const std::string& scratch) {
  const std::string path = scratch + "/tokenizer.json";
  WriteInput(path, input);
  std::unique_ptr<tokenizer::Backend> backend = tokenizer::LoadTokenizerJson(path);
  const std::vector<int64_t> ids =
      backend->Encode("Hello, world!  It's 2024\n\t<|im_start|>user ünïcode 你好 <|endoftext|>");
  (void)backend->Decode(ids);
  for (int64_t id : {int64_t{0}, int64_t{1}, backend->vocab_size() - 1, backend->vocab_size()}) {
    (void)backend->TokenText(id);
    (void)backend->Piece(id);
  }
  (void)backend->PieceId("<|im_start|>");
}

// Engine log-prob JSON through io::ImportTrace (vLLM RequestOutput, SGLang /generate, OpenAI
// completions and chat; JSON or JSON lines), the first input byte choosing the format, then the
// writer's validation of the trace it returns. Token strings "t<id>" map to <id>, others are unknown.
inline void TargetTraceImport(const std::string& input, const std::string&) {
  if (input.empty()) return;
  io::ImportOptions options;
  options.format = static_cast<io::ImportFormat>(static_cast<unsigned char>(input[0]) % 3);
  options.vocab_size = 4096;
  options.token_id = [](const std::string& token) -> std::optional<int64_t> {
    if (token.size() < 2 || token.size() > 6 || token[0] != 't') return std::nullopt;
    if (token.find_first_not_of("0123456789", 1) != std::string::npos) return std::nullopt;
    return std::stoll(token.substr(1));
  };
  io::Trace trace = io::ImportTrace(input.substr(1), "fuzz/import.json", options);
  io::ValidateTrace(trace, "fuzz/import.json");
}

// Every target by harness name (the fuzz_<name>.cpp files and
// tests/fuzz/{corpus,regressions}/<name>).
inline const std::map<std::string, std::function<void(const std::string&, const std::string&)>>&
Targets() {
  static const std::map<std::string, std::function<void(const std::string&, const std::string&)>>
      targets = {{"fuzz_safetensors", TargetSafetensors},
                 {"fuzz_index", TargetIndex},
                 {"fuzz_config", TargetConfig},
                 {"fuzz_case", TargetCase},
                 {"fuzz_gguf", TargetGguf},
                 {"fuzz_trace", TargetTrace},
                 {"fuzz_trace_import", TargetTraceImport},
                 {"fuzz_kld_base", TargetKldBase},
                 {"fuzz_tokenizer_json", TargetTokenizerJson}};
  return targets;
}

}  // namespace parity::fuzz
