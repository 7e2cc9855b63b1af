#include "harness/convert/hf_to_gguf.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/convert/spm_model_bytes.h"
#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/io/ggml_quants.h"
#include "harness/io/gguf_tensor.h"
#include "harness/io/gguf_writer.h"
#include "harness/model/arch.h"
#include "harness/model/gguf_model.h"
#include "harness/model/inspect.h"

namespace parity::convert {
namespace {

namespace fs = std::filesystem;
using model::Role;

constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5;

// llama_ftype of a whole-file type (llama.h): what general.file_type says.
uint32_t FileType(const io::GgmlTypeInfo& type) {
  switch (type.id) {
    case 0: return 0;    // ALL_F32
    case 1: return 1;    // MOSTLY_F16
    case 8: return 7;    // MOSTLY_Q8_0
    case 30: return 32;  // MOSTLY_BF16
  }
  return 0;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot read", path));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

nlohmann::json ReadOptionalJson(const fs::path& path) {
  std::error_code ec;
  return fs::exists(path, ec) ? io::ReadJsonFile(path.string()) : nlohmann::json::object();
}

struct Vocabulary {
  std::vector<std::string> tokens;
  std::vector<float> scores;  // SentencePiece only
  std::vector<int32_t> types;
  std::vector<std::string> merges;  // BPE only
  int64_t unknown_id = -1;
};

// tokenizer_config.json's added_tokens_decoder {"id": {"content", "special"}} over the vocabulary.
void ApplyAddedTokens(const nlohmann::json& tokenizer_config, Vocabulary& vocab, bool with_scores) {
  auto added = tokenizer_config.find("added_tokens_decoder");
  if (added == tokenizer_config.end() || !added->is_object()) return;
  for (const auto& [key, token] : added->items()) {
    const int64_t id = std::strtoll(key.c_str(), nullptr, 10);
    if (id < 0 || id >= static_cast<int64_t>(vocab.tokens.size()) || !token.is_object()) continue;
    vocab.tokens[id] = token.value("content", vocab.tokens[id]);
    vocab.types[id] = token.value("special", false) ? kControl : kUserDefined;
    if (with_scores) vocab.scores[id] = -1000.0f;
  }
}

Vocabulary SentencePieceVocabulary(const fs::path& model_path, const nlohmann::json& tokenizer_config,
                                   int64_t vocab_size) {
  const std::vector<PieceEntry> pieces =
      ModelPieceEntries(ReadBytes(model_path.string()), model_path.string());
  if (static_cast<int64_t>(pieces.size()) > vocab_size) {
    throw InputError(fmt::format("{}: {} pieces, more than the config's vocab_size {}",
                                 model_path.string(), pieces.size(), vocab_size));
  }
  Vocabulary vocab;
  for (int64_t id = 0; id < vocab_size; ++id) {
    if (id < static_cast<int64_t>(pieces.size())) {
      vocab.tokens.push_back(pieces[id].piece);
      vocab.scores.push_back(pieces[id].score);
      vocab.types.push_back(pieces[id].type);
    } else {
      vocab.tokens.push_back(fmt::format("[PAD{}]", id));
      vocab.scores.push_back(-1000.0f);
      vocab.types.push_back(kUnused);
    }
  }
  ApplyAddedTokens(tokenizer_config, vocab, /*with_scores=*/true);
  for (int64_t id = 0; id < vocab_size; ++id) {
    if (vocab.types[id] == kUnknown) {
      vocab.unknown_id = id;
      break;
    }
  }
  return vocab;
}

Vocabulary BpeVocabulary(const fs::path& json_path, int64_t vocab_size) {
  const nlohmann::json tokenizer = io::ReadJsonFile(json_path.string());
  const nlohmann::json* model = tokenizer.contains("model") ? &tokenizer["model"] : nullptr;
  if (model == nullptr || model->value("type", "") != "BPE" || !model->contains("vocab") ||
      !(*model)["vocab"].is_object()) {
    throw InputError(fmt::format("{}: expected a BPE model with a vocab object (model.type \"BPE\")",
                                 json_path.string()));
  }
  // As the script's get_vocab_base: {**vocab, **added_vocab} reversed, so an added token whose text
  // is also a vocabulary piece keeps only its added id (the piece's id becomes "[PAD<id>]"; llama.cpp
  // refuses two ids with one text).
  std::map<std::string, std::pair<int64_t, int32_t>> by_text;  // text -> (id, type)
  for (const auto& [piece, id] : (*model)["vocab"].items()) by_text[piece] = {id.get<int64_t>(), kNormal};
  if (tokenizer.contains("added_tokens") && tokenizer["added_tokens"].is_array()) {
    for (const nlohmann::json& token : tokenizer["added_tokens"]) {
      by_text[token.value("content", "")] = {token.value("id", int64_t{-1}),
                                              token.value("special", false) ? kControl : kUserDefined};
    }
  }
  Vocabulary vocab;
  vocab.tokens.assign(vocab_size, "");
  vocab.types.assign(vocab_size, kUnused);
  std::vector<bool> present(vocab_size, false);
  for (const auto& [text, entry] : by_text) {
    const auto [id, type] = entry;
    if (id < 0 || id >= vocab_size) {
      throw InputError(fmt::format("{}: token '{}' has id {}, outside the config's vocab_size {}",
                                   json_path.string(), text, id, vocab_size));
    }
    vocab.tokens[id] = text;
    vocab.types[id] = type;
    present[id] = true;
  }
  for (int64_t id = 0; id < vocab_size; ++id) {
    if (!present[id]) vocab.tokens[id] = fmt::format("[PAD{}]", id);
  }
  if (model->contains("merges") && (*model)["merges"].is_array()) {
    for (const nlohmann::json& merge : (*model)["merges"]) {
      if (merge.is_string()) {
        vocab.merges.push_back(merge.get<std::string>());
      } else if (merge.is_array() && merge.size() == 2) {
        vocab.merges.push_back(merge[0].get<std::string>() + " " + merge[1].get<std::string>());
      }
    }
  }
  return vocab;
}

// The tokenizer metadata; returns what was written ("llama (SentencePiece)", ...).
std::string WriteVocabulary(const fs::path& src, const model::ModelConfig& config,
                            io::GgufWriter& writer, std::vector<std::string>& notes) {
  const nlohmann::json tokenizer_config = ReadOptionalJson(src / "tokenizer_config.json");
  std::error_code ec;
  Vocabulary vocab;
  std::string kind;
  if (fs::exists(src / "tokenizer.model", ec)) {
    vocab = SentencePieceVocabulary(src / "tokenizer.model", tokenizer_config, config.vocab_size);
    writer.AddString("tokenizer.ggml.model", "llama");
    writer.AddString("tokenizer.ggml.pre", "default");
    kind = "llama (SentencePiece)";
  } else if (fs::exists(src / "tokenizer.json", ec)) {
    vocab = BpeVocabulary(src / "tokenizer.json", config.vocab_size);
    const std::string family = model::ArchitectureName(config.arch);
    const std::string pre = family == "llama" ? "llama-bpe" : "qwen2";
    writer.AddString("tokenizer.ggml.model", "gpt2");
    writer.AddString("tokenizer.ggml.pre", pre);
    kind = fmt::format("gpt2 (byte-level BPE, pre-tokenizer {})", pre);
  } else {
    notes.push_back("no tokenizer.model or tokenizer.json: no vocabulary written (tokenizer.ggml.model "
                    "\"none\"); Parity reads such a file, but llama.cpp as node-llama-cpp 3.22.1 drives it "
                    "aborts on it (GGML_ASSERT \"Tokenizer not initialized\" in llama-vocab.cpp)");
    writer.AddString("tokenizer.ggml.model", "none");
    return "none";
  }
  writer.AddStringArray("tokenizer.ggml.tokens", vocab.tokens);
  if (!vocab.scores.empty()) writer.AddF32Array("tokenizer.ggml.scores", vocab.scores);
  writer.AddI32Array("tokenizer.ggml.token_type", vocab.types);
  if (!vocab.merges.empty()) writer.AddStringArray("tokenizer.ggml.merges", vocab.merges);
  if (config.bos_token_id >= 0) writer.AddU32("tokenizer.ggml.bos_token_id", config.bos_token_id);
  if (!config.eos_token_ids.empty()) {
    writer.AddU32("tokenizer.ggml.eos_token_id", config.eos_token_ids.front());
  }
  if (vocab.unknown_id >= 0) writer.AddU32("tokenizer.ggml.unknown_token_id", vocab.unknown_id);
  if (config.pad_token_id >= 0) writer.AddU32("tokenizer.ggml.padding_token_id", config.pad_token_id);
  for (const char* key : {"add_bos_token", "add_eos_token"}) {
    auto it = tokenizer_config.find(key);
    if (it != tokenizer_config.end() && it->is_boolean()) {
      writer.AddBool(fmt::format("tokenizer.ggml.{}", key), it->get<bool>());
    }
  }
  return kind;
}

// The tensor in GGUF layout (Q/K permuted where the family needs it), FP32, contiguous.
at::Tensor GgufLayout(const io::Checkpoint& checkpoint, const model::ExpectedTensor& expected,
                      const model::ModelConfig& config) {
  at::Tensor value = checkpoint.Get(expected.name).to(at::kFloat).contiguous();
  if (!model::SpecOf(config.arch).gguf.permuted_qk) return value;
  if (expected.role == Role::kQ || expected.role == Role::kQBias) {
    return io::PermuteLlamaQK(value, config.num_heads);
  }
  if (expected.role == Role::kK || expected.role == Role::kKBias) {
    return io::PermuteLlamaQK(value, config.num_kv_heads);
  }
  return value;
}

}  // namespace

HfToGgufResult ConvertHfToGguf(const std::string& src, const std::string& dst,
                               const std::string& type_name) {
  const io::GgmlTypeInfo* type = io::FindGgmlTypeByName(type_name);
  if (type == nullptr || !io::Quantizable(*type)) {
    throw InputError(fmt::format("convert hf-to-gguf: --type '{}': expected f32, f16, bf16 or q8_0",
                                 type_name));
  }
  std::error_code ec;
  if (fs::is_directory(dst, ec)) {
    throw InputError(fmt::format("convert hf-to-gguf: DST '{}' is a directory (expected a file "
                                 "name such as model.gguf)", dst));
  }
  const io::Checkpoint checkpoint = io::Checkpoint::Open(src);
  const model::CheckpointSummary summary = model::SummarizeCheckpoint(checkpoint);
  if (!summary.missing.empty() || !summary.shape_mismatches.empty()) {
    throw InputError(fmt::format("{}: the tensors disagree with config.json ({} missing, {} wrong "
                                 "shape; see `parity inspect {}`)",
                                 src, summary.missing.size(), summary.shape_mismatches.size(), src));
  }
  const model::ModelConfig& config = summary.config;
  const model::ArchSpec& spec = model::SpecOf(config.arch);
  if (spec.gguf.architectures.empty()) {
    throw InputError(fmt::format(
        "{}: Parity writes GGUF for {} checkpoints, not {}{}", src,
        "llama, qwen2 and qwen3", model::ArchitectureName(config.arch),
        config.arch == model::Architecture::kInternLM2
            ? " (convert it with `parity convert internlm2-to-llama` first)" : ""));
  }
  HfToGgufResult result;
  result.src = src;
  result.dst = dst;
  result.gguf_architecture = spec.gguf.architectures.front();
  result.type = type->name;

  io::GgufWriter writer;
  std::string rope_note;
  model::WriteGgufHyperParameters(config, writer, &rope_note);
  if (!rope_note.empty()) result.notes.push_back(rope_note);
  writer.AddString("general.name", fs::path(src).lexically_normal().filename().string());
  writer.AddU32("general.file_type", FileType(*type));
  writer.AddU32("general.quantization_version", 2);
  result.tokenizer = WriteVocabulary(src, config, writer, result.notes);

  const io::GgmlTypeInfo& f32 = *io::FindGgmlType(0);
  const io::GgmlTypeInfo& f16 = *io::FindGgmlType(1);
  std::vector<std::string> fell_back;
  for (const model::ExpectedTensor& expected : model::ExpectedTensors(config)) {
    if (!checkpoint.Contains(expected.name)) continue;  // optional and absent (SummarizeCheckpoint)
    if (expected.role == Role::kLmHead && config.tie_word_embeddings) {
      result.notes.push_back(fmt::format("{} left out: the embeddings are tied (llama.cpp reads "
                                         "token_embd for the LM head)", expected.name));
      continue;
    }
    const auto name = model::GgufTensorName(expected.role, expected.layer);
    if (!name) {
      throw InputError(fmt::format("{}: tensor '{}' ({}) has no GGUF name", src, expected.name,
                                   model::RoleName(expected.role)));
    }
    const at::Tensor value = GgufLayout(checkpoint, expected, config);
    const io::GgmlTypeInfo* tensor_type = value.dim() == 1 ? &f32 : type;
    if (value.size(-1) % tensor_type->block_size != 0) {
      fell_back.push_back(*name);
      tensor_type = &f16;
    }
    std::vector<uint8_t> bytes(static_cast<size_t>(value.numel() / tensor_type->block_size *
                                                   tensor_type->type_size));
    io::QuantizeRow(*tensor_type, value.data_ptr<float>(), value.numel(), bytes.data());
    writer.AddTensor(*name, value.sizes().vec(), *tensor_type, std::move(bytes));
    ++result.tensors_by_type[tensor_type->name];
    ++result.tensors;
  }
  if (!fell_back.empty()) {
    result.notes.push_back(fmt::format("{} tensor(s) whose rows are not a multiple of {} written as "
                                       "F16, as convert_hf_to_gguf.py does: {}",
                                       fell_back.size(), type->block_size, fmt::join(fell_back, ", ")));
  }
  std::vector<std::string> skipped;
  for (const std::string& name : summary.unexpected) skipped.push_back(name);
  if (!skipped.empty()) {
    result.notes.push_back(fmt::format("not in the {} table, not written: {}",
                                       model::ArchitectureName(config.arch), fmt::join(skipped, ", ")));
  }
  writer.Write(dst);
  result.bytes = fs::file_size(dst, ec);
  return result;
}

nlohmann::json HfToGgufResultToJson(const HfToGgufResult& result) {
  return {{"command", "convert hf-to-gguf"},
          {"src", result.src},
          {"dst", result.dst},
          {"gguf_architecture", result.gguf_architecture},
          {"type", result.type},
          {"tokenizer", result.tokenizer},
          {"tensors", result.tensors},
          {"tensors_by_type", result.tensors_by_type},
          {"bytes", result.bytes},
          {"notes", result.notes}};
}

std::string FormatHfToGgufResult(const HfToGgufResult& result) {
  std::vector<std::string> types;
  for (const auto& [name, count] : result.tensors_by_type) types.push_back(fmt::format("{} {}", count, name));
  std::string text = fmt::format("{} -> {}: GGUF v3, {} ({}), {} tensors ({}), {} bytes; vocabulary {}\n",
                                 result.src, result.dst, result.gguf_architecture, result.type,
                                 result.tensors, fmt::join(types, ", "), result.bytes,
                                 result.tokenizer);
  for (const std::string& note : result.notes) text += "  note: " + note + "\n";
  return text;
}

}  // namespace parity::convert
