#include "harness/tokenizer/sentencepiece_backend.h"

#include <dlfcn.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/core/atomic_file.h"
#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "parity_build_paths.h"

namespace parity::tokenizer {
namespace {

// The C interface of libparity_spm.so (shim/spm_shim.cpp).
struct SpmApi {
  void* (*load)(const char*, char**);
  void (*free_processor)(void*);
  void (*free_buffer)(void*);
  int (*encode)(void*, const char*, size_t, int**);
  char* (*decode)(void*, const int*, int);
  char* (*id_to_piece)(void*, int);
  int (*piece_to_id)(void*, const char*);
  int (*vocab_size)(void*);
  int (*unk_id)(void*);
  int (*is_byte)(void*, int);
  int (*is_control)(void*, int);
  int (*train)(const char*, const char*, size_t, char**, size_t*, char**);
};

std::string ShimCandidateBesideExecutable() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : (exe.parent_path() / "libparity_spm.so").string();
}

template <typename Fn>
void Bind(void* library, const char* name, Fn*& fn) {
  fn = reinterpret_cast<Fn*>(::dlsym(library, name));
  if (fn == nullptr) throw std::runtime_error(fmt::format("libparity_spm.so lacks {}", name));
}

// Loads the shim once per process, into a link-map namespace of its own (see spm_shim.cpp for why).
// Looks at $PARITY_SPM_SHIM, the build directory, then beside the running executable.
const SpmApi& Spm() {
  static std::once_flag once;
  static SpmApi api;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("PARITY_SPM_SHIM")) candidates.push_back(env);
    candidates.push_back(PARITY_SPM_SHIM);
    candidates.push_back(ShimCandidateBesideExecutable());
    void* library = nullptr;
    std::string errors;
    for (const auto& path : candidates) {
      if (path.empty()) continue;
      library = ::dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (library != nullptr) break;
      errors += fmt::format("\n  {}: {}", path, ::dlerror());
    }
    if (library == nullptr) {
      throw std::runtime_error("cannot load the SentencePiece shim libparity_spm.so:" + errors);
    }
    Bind(library, "parity_spm_load", api.load);
    Bind(library, "parity_spm_free", api.free_processor);
    Bind(library, "parity_spm_free_buffer", api.free_buffer);
    Bind(library, "parity_spm_encode", api.encode);
    Bind(library, "parity_spm_decode", api.decode);
    Bind(library, "parity_spm_id_to_piece", api.id_to_piece);
    Bind(library, "parity_spm_piece_to_id", api.piece_to_id);
    Bind(library, "parity_spm_vocab_size", api.vocab_size);
    Bind(library, "parity_spm_unk_id", api.unk_id);
    Bind(library, "parity_spm_is_byte", api.is_byte);
    Bind(library, "parity_spm_is_control", api.is_control);
    Bind(library, "parity_spm_train", api.train);
  });
  return api;
}

// Takes ownership of a malloc'd string from the shim.
std::string TakeString(char* text) {
  std::string out(text);
  Spm().free_buffer(text);
  return out;
}

nlohmann::json ReadIfExists(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) return nlohmann::json::object();
  return io::ReadJsonFile(path.string());
}

class SentencePieceBackend : public Backend {
 public:
  ~SentencePieceBackend() override {
    if (processor != nullptr) Spm().free_processor(processor);
  }

  std::vector<int64_t> Encode(const std::string& text) const override;
  std::string Decode(const std::vector<int64_t>& ids) const override;
  std::string TokenText(int64_t id) const override;
  std::string Piece(int64_t id) const override;
  std::optional<int64_t> PieceId(const std::string& piece) const override;
  // BOS comes from the checkpoint's configs, which the facade reads.
  std::vector<int64_t> SpecialPrefix() const override { return {}; }
  std::vector<int64_t> SpecialSuffix() const override { return {}; }
  int64_t vocab_size() const override { return Spm().vocab_size(processor); }
  std::string kind() const override { return "sentencepiece (tokenizer.model)"; }

  void* processor = nullptr;
  std::string path;
  // Added tokens the checkpoint declares ("<|im_start|>" -> 92543), longest first when splitting.
  std::map<std::string, int64_t> added_by_text;
  std::map<int64_t, std::string> added_by_id;

 private:
  std::vector<int64_t> EncodePlain(const std::string& text) const {
    int* ids = nullptr;
    int count = Spm().encode(processor, text.data(), text.size(), &ids);
    std::vector<int64_t> out(ids, ids + count);
    Spm().free_buffer(ids);
    return out;
  }

  std::string DecodePlain(const std::vector<int>& ids) const {
    return TakeString(Spm().decode(processor, ids.data(), static_cast<int>(ids.size())));
  }

  // The earliest added token in text[from..], longest on ties; npos when none.
  std::pair<size_t, const std::string*> FindAdded(const std::string& text, size_t from) const {
    size_t best = std::string::npos;
    const std::string* best_token = nullptr;
    for (const auto& [token, id] : added_by_text) {
      size_t at = text.find(token, from);
      if (at == std::string::npos) continue;
      if (at < best || (at == best && token.size() > best_token->size())) {
        best = at;
        best_token = &token;
      }
    }
    return {best, best_token};
  }
};

// Text between added tokens is encoded piece by piece, as HF's slow tokenizers do: the added tokens
// split the text first, then each segment goes through SentencePiece on its own.
std::vector<int64_t> SentencePieceBackend::Encode(const std::string& text) const {
  std::vector<int64_t> ids;
  size_t from = 0;
  while (from < text.size()) {
    auto [at, token] = FindAdded(text, from);
    size_t segment_end = at == std::string::npos ? text.size() : at;
    if (segment_end > from) {
      auto segment = EncodePlain(text.substr(from, segment_end - from));
      ids.insert(ids.end(), segment.begin(), segment.end());
    }
    if (token == nullptr) break;
    ids.push_back(added_by_text.at(*token));
    from = at + token->size();
  }
  return ids;
}

std::string SentencePieceBackend::Decode(const std::vector<int64_t>& ids) const {
  std::string text;
  std::vector<int> run;
  auto flush = [&] {
    if (!run.empty()) text += DecodePlain(run);
    run.clear();
  };
  for (int64_t id : ids) {
    auto added = added_by_id.find(id);
    if (added != added_by_id.end()) {
      flush();
      text += added->second;
    } else if (id >= 0 && id < vocab_size()) {
      run.push_back(static_cast<int>(id));
    }
  }
  flush();
  return text;
}

std::string SentencePieceBackend::TokenText(int64_t id) const {
  auto added = added_by_id.find(id);
  if (added != added_by_id.end()) return added->second;
  if (id < 0 || id >= vocab_size()) return fmt::format("<id {}>", id);
  int token = static_cast<int>(id);
  if (Spm().is_control(processor, token)) return "";
  std::string piece = TakeString(Spm().id_to_piece(processor, token));
  if (Spm().is_byte(processor, token) && piece.size() == 6) {  // "<0x0A>"
    return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
  }
  // SentencePiece writes spaces as U+2581 (LOWER ONE EIGHTH BLOCK, bytes E2 96 81).
  std::string out;
  for (size_t i = 0; i < piece.size(); ++i) {
    if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {
      out += ' ';
      i += 2;
    } else {
      out += piece[i];
    }
  }
  return out;
}

std::string SentencePieceBackend::Piece(int64_t id) const {
  auto added = added_by_id.find(id);
  if (added != added_by_id.end()) return added->second;
  if (id < 0 || id >= vocab_size()) return fmt::format("<id {}>", id);
  return TakeString(Spm().id_to_piece(processor, static_cast<int>(id)));
}

std::optional<int64_t> SentencePieceBackend::PieceId(const std::string& piece) const {
  auto added = added_by_text.find(piece);
  if (added != added_by_text.end()) return added->second;
  int id = Spm().piece_to_id(processor, piece.c_str());
  // SentencePiece answers unk_id for unknown pieces; only "<unk>" itself may map there.
  if (id == Spm().unk_id(processor) && Piece(id) != piece) return std::nullopt;
  return id;
}

}  // namespace

std::unique_ptr<Backend> LoadSentencePiece(const std::string& dir) {
  namespace fs = std::filesystem;
  fs::path root(dir);
  auto backend = std::make_unique<SentencePieceBackend>();
  SentencePieceBackend& impl = *backend;
  impl.path = (root / "tokenizer.model").string();
  char* error = nullptr;
  impl.processor = Spm().load(impl.path.c_str(), &error);
  if (impl.processor == nullptr) {
    throw InputError(fmt::format("{}: not a SentencePiece model: {}", impl.path, TakeString(error)));
  }

  // Added tokens, as HF's tokenizer files declare them.
  auto add = [&](const std::string& text, int64_t id) {
    impl.added_by_text[text] = id;
    impl.added_by_id[id] = text;
  };
  nlohmann::json tokenizer_config = ReadIfExists(root / "tokenizer_config.json");
  if (tokenizer_config.contains("added_tokens_decoder")) {
    for (const auto& [id_text, entry] : tokenizer_config["added_tokens_decoder"].items()) {
      if (entry.contains("content") && entry["content"].is_string()) {
        add(entry["content"].get<std::string>(), std::stoll(id_text));
      }
    }
  }
  // Held in a variable: iterating items() of a temporary would dangle.
  const nlohmann::json added_tokens = ReadIfExists(root / "added_tokens.json");
  for (const auto& [text, id] : added_tokens.items()) {
    if (id.is_number_integer()) add(text, id.get<int64_t>());
  }
  // Special tokens of the SentencePiece model itself (<s>, </s>) are handled by it; drop them here so
  // that a literal "<s>" in user text is not turned into BOS.
  for (auto it = impl.added_by_text.begin(); it != impl.added_by_text.end();) {
    if (it->first == "<s>" || it->first == "</s>" || it->first == "<unk>") {
      impl.added_by_id.erase(it->second);
      it = impl.added_by_text.erase(it);
    } else {
      ++it;
    }
  }
  return backend;
}

void TrainSentencePiece(const std::string& corpus_path, const std::string& model_path,
                        int64_t vocab_size, const std::vector<std::string>& user_defined_symbols) {
  std::ifstream in(corpus_path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: corpus file not found", corpus_path));
  std::string corpus((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string symbols;
  for (const auto& s : user_defined_symbols) symbols += (symbols.empty() ? "" : ",") + s;
  // One thread and fixed settings: the same corpus gives the same bytes. Byte fallback and kept
  // whitespace so that newlines (where divergences tend to start) survive encode/decode.
  std::string arguments = fmt::format(
      "--model_type=bpe --vocab_size={} --num_threads=1 --character_coverage=1.0 "
      "--byte_fallback=true --remove_extra_whitespaces=false --allow_whitespace_only_pieces=true "
      "--split_digits=true --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 "
      "--normalization_rule_name=identity --minloglevel=2 --shuffle_input_sentence=false "
      "--input_sentence_size=0",
      vocab_size);
  if (!symbols.empty()) arguments += " --user_defined_symbols=" + symbols;
  char* model = nullptr;
  size_t model_size = 0;
  char* error = nullptr;
  if (Spm().train(arguments.c_str(), corpus.data(), corpus.size(), &model, &model_size, &error)) {
    throw InputError(fmt::format("training a SentencePiece model on {} failed: {}", corpus_path,
                                 TakeString(error)));
  }
  std::string serialized(model, model_size);
  Spm().free_buffer(model);
  WriteFileAtomic(model_path, serialized);
}

}  // namespace parity::tokenizer
