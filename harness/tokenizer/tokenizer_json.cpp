#include "harness/tokenizer/tokenizer_json.h"

#include <algorithm>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/tokenizer/bpe_model.h"
#include "harness/tokenizer/pattern.h"
#include "harness/tokenizer/unicode.h"

namespace parity::tokenizer {
namespace {

// GPT-2's word regex, which the ByteLevel pre-tokenizer applies when "use_regex" is true.
constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct AddedToken {
  std::string content;  // as declared
  std::string match;    // what is searched for: the content, normalized when "normalized" is true
  int64_t id = 0;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// A piece of the input: text still to tokenize, or an added token already resolved to its id.
struct Segment {
  std::string text;
  std::optional<int64_t> added_id;
};

struct PreTokenizerStep {
  enum class Kind { kSplit, kByteLevel } kind = Kind::kSplit;
  std::optional<Pattern> pattern;  // kSplit
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;  // kByteLevel
  bool use_regex = true;
};

bool BoolField(const nlohmann::json& object, const char* key, bool fallback) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw InputError(fmt::format("'{}' must be true or false", key));
  return it->get<bool>();
}

// An integer id (get<int64_t> of a float such as 1e300 would be undefined behaviour).
int64_t IdField(const nlohmann::json& value, const std::string& what) {
  if (!value.is_number_integer()) {
    throw InputError(fmt::format("{} must be an integer, got {}", what,
                                 value.is_number() ? value.dump() : value.type_name()));
  }
  return value.get<int64_t>();
}

class TokenizerJson : public Backend {
 public:
  TokenizerJson(const nlohmann::json& file, const std::string& path);

  std::vector<int64_t> Encode(const std::string& text) const override;
  std::string Decode(const std::vector<int64_t>& ids) const override;
  std::string TokenText(int64_t id) const override {
    // Ids past the tokenizer (a model vocabulary padded beyond it, e.g. Qwen's 151936) show as such.
    if (!added_by_id_.count(id) && model_.TokenString(id) == nullptr) return fmt::format("<id {}>", id);
    return Decode({id});
  }
  std::string Piece(int64_t id) const override;
  std::optional<int64_t> PieceId(const std::string& piece) const override;
  std::vector<int64_t> SpecialPrefix() const override { return prefix_; }
  std::vector<int64_t> SpecialSuffix() const override { return suffix_; }
  int64_t vocab_size() const override;
  std::string kind() const override { return "tokenizer.json (byte-level BPE)"; }

 private:
  void ReadAddedTokens(const nlohmann::json& list);
  void ReadNormalizer(const nlohmann::json& normalizer);
  void ReadPreTokenizer(const nlohmann::json& pre_tokenizer);
  void ReadDecoder(const nlohmann::json& decoder);
  void ReadPostProcessor(const nlohmann::json& post_processor);

  std::string Normalized(const std::string& text) const;
  // Splits `text` around the added tokens in `tokens` (HF's AddedVocabulary::find_matches).
  std::vector<Segment> SplitAdded(const std::string& text,
                                  const std::vector<const AddedToken*>& tokens) const;
  std::vector<std::string> PreTokenize(const std::string& text) const;

  std::string path_;
  BpeModel model_;
  std::vector<AddedToken> added_;
  std::vector<const AddedToken*> raw_added_;         // matched on the raw text
  std::vector<const AddedToken*> normalized_added_;  // matched after normalization
  std::map<int64_t, const AddedToken*> added_by_id_;
  std::vector<NormalForm> normal_forms_;
  std::vector<PreTokenizerStep> pre_tokenizer_;
  bool byte_level_decoder_ = false;
  std::vector<int64_t> prefix_;
  std::vector<int64_t> suffix_;
  // The reference's word and whitespace checks around added tokens (Rust regex `\s`/`\w` are
  // Unicode-aware, as PCRE2's are with UCP; `\z` because PCRE2's `$` also matches before a final
  // newline).
  Pattern leading_space_ = Pattern::Regex(R"(^\s*)", "added-token whitespace");
  Pattern trailing_space_ = Pattern::Regex(R"(\s*\z)", "added-token whitespace");
  Pattern word_at_start_ = Pattern::Regex(R"(^\w)", "added-token word boundary");
  Pattern word_at_end_ = Pattern::Regex(R"(\w\z)", "added-token word boundary");
};

TokenizerJson::TokenizerJson(const nlohmann::json& file, const std::string& path) : path_(path) {
  if (!file.is_object() || !file.contains("model")) {
    throw InputError(fmt::format("{}: not a tokenizer.json (no \"model\" object)", path));
  }
  model_ = BpeModel::FromJson(file["model"], path);
  auto section = [&](const char* key, auto read) {
    try {
      static const nlohmann::json null_json;
      auto it = file.find(key);
      read(it == file.end() ? null_json : *it);
    } catch (const InputError& e) {
      throw InputError(fmt::format("{}: {}: {}", path, key, e.what()));
    } catch (const nlohmann::json::exception& e) {
      throw InputError(fmt::format("{}: {}: {}", path, key, e.what()));
    }
  };
  section("normalizer", [&](const nlohmann::json& j) { ReadNormalizer(j); });
  section("added_tokens", [&](const nlohmann::json& j) { ReadAddedTokens(j); });
  section("pre_tokenizer", [&](const nlohmann::json& j) { ReadPreTokenizer(j); });
  section("decoder", [&](const nlohmann::json& j) { ReadDecoder(j); });
  section("post_processor", [&](const nlohmann::json& j) { ReadPostProcessor(j); });
}

// Ids are assigned as HF's AddedVocabulary::add_tokens assigns them when it loads a file, which is
// not always the "id" written there: a token whose content is already in the model vocabulary takes
// that id, the others take consecutive ids from the vocabulary's size on, in file order; a repeated
// content keeps its first id and takes the later entry's options.
void TokenizerJson::ReadAddedTokens(const nlohmann::json& list) {
  if (list.is_null()) return;
  if (!list.is_array()) throw InputError("must be a list");
  added_.reserve(list.size());  // pointers into added_ stay valid
  std::map<std::string, size_t> by_content;
  int64_t next_id = model_.vocab_count();
  for (const auto& entry : list) {
    AddedToken token;
    token.content = entry.at("content").get<std::string>();
    const int64_t declared_id = IdField(entry.at("id"), "added token id");
    token.special = BoolField(entry, "special", false);
    token.lstrip = BoolField(entry, "lstrip", false);
    token.rstrip = BoolField(entry, "rstrip", false);
    token.single_word = BoolField(entry, "single_word", false);
    token.normalized = BoolField(entry, "normalized", !token.special);
    if (token.content.empty()) continue;  // the reference ignores it
    token.match = token.normalized ? Normalized(token.content) : token.content;
    auto existing = by_content.find(token.content);
    if (existing != by_content.end()) {
      token.id = added_[existing->second].id;
      added_[existing->second] = std::move(token);
      continue;
    }
    token.id = model_.TokenId(token.content).value_or(next_id);
    if (token.id == next_id) ++next_id;
    if (token.id != declared_id) {
      spdlog::warn("{}: added token '{}' is declared with id {} but gets id {}, as HF tokenizers "
                   "assigns it ({})",
                   path_, token.content, declared_id, token.id,
                   model_.TokenId(token.content) ? "it is in the model vocabulary"
                                                   : "ids follow the vocabulary in file order");
    }
    by_content[token.content] = added_.size();
    added_.push_back(std::move(token));
  }
  for (const AddedToken& token : added_) {
    (token.normalized ? normalized_added_ : raw_added_).push_back(&token);
    added_by_id_[token.id] = &token;
  }
}

void TokenizerJson::ReadNormalizer(const nlohmann::json& normalizer) {
  if (normalizer.is_null()) return;
  const std::string type = normalizer.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const auto& step : normalizer.at("normalizers")) ReadNormalizer(step);
  } else if (type == "NFC") {
    normal_forms_.push_back(NormalForm::kNfc);
  } else if (type == "NFD") {
    normal_forms_.push_back(NormalForm::kNfd);
  } else if (type == "NFKC") {
    normal_forms_.push_back(NormalForm::kNfkc);
  } else if (type == "NFKD") {
    normal_forms_.push_back(NormalForm::kNfkd);
  } else {
    throw InputError(fmt::format(
        "normalizer type '{}' is not supported (Parity reads NFC, NFD, NFKC, NFKD and Sequence)",
        type));
  }
}

void TokenizerJson::ReadPreTokenizer(const nlohmann::json& pre_tokenizer) {
  if (pre_tokenizer.is_null()) return;
  const std::string type = pre_tokenizer.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const auto& step : pre_tokenizer.at("pretokenizers")) ReadPreTokenizer(step);
  } else if (type == "Split") {
    PreTokenizerStep step;
    step.kind = PreTokenizerStep::Kind::kSplit;
    const nlohmann::json& pattern = pre_tokenizer.at("pattern");
    if (pattern.contains("Regex")) {
      step.pattern = Pattern::Regex(pattern["Regex"].get<std::string>(), path_ + ": pre_tokenizer");
    } else if (pattern.contains("String")) {
      step.pattern = Pattern::Literal(pattern["String"].get<std::string>(), path_ + ": pre_tokenizer");
    } else {
      throw InputError("Split.pattern must be {\"Regex\": ...} or {\"String\": ...}");
    }
    step.behavior = ParseSplitBehavior(pre_tokenizer.at("behavior").get<std::string>(),
                                       path_ + ": pre_tokenizer");
    step.invert = BoolField(pre_tokenizer, "invert", false);
    pre_tokenizer_.push_back(std::move(step));
  } else if (type == "ByteLevel") {
    PreTokenizerStep step;
    step.kind = PreTokenizerStep::Kind::kByteLevel;
    step.add_prefix_space = BoolField(pre_tokenizer, "add_prefix_space", true);
    step.use_regex = BoolField(pre_tokenizer, "use_regex", true);
    if (step.use_regex) step.pattern = Pattern::Regex(kGpt2Regex, "GPT-2 word regex");
    pre_tokenizer_.push_back(std::move(step));
  } else {
    throw InputError(fmt::format(
        "pre_tokenizer type '{}' is not supported (Parity reads Split, ByteLevel and Sequence)",
        type));
  }
}

void TokenizerJson::ReadDecoder(const nlohmann::json& decoder) {
  if (decoder.is_null()) return;
  const std::string type = decoder.at("type").get<std::string>();
  if (type != "ByteLevel") {
    throw InputError(fmt::format("decoder type '{}' is not supported (Parity reads ByteLevel)", type));
  }
  byte_level_decoder_ = true;
}

void TokenizerJson::ReadPostProcessor(const nlohmann::json& post_processor) {
  if (post_processor.is_null()) return;
  const std::string type = post_processor.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const auto& step : post_processor.at("processors")) ReadPostProcessor(step);
  } else if (type == "ByteLevel") {
    // Trims offsets only; ids are unchanged.
  } else if (type == "TemplateProcessing") {
    bool after_text = false;
    for (const auto& piece : post_processor.at("single")) {
      if (piece.contains("Sequence")) {
        after_text = true;
        continue;
      }
      const std::string name = piece.at("SpecialToken").at("id").get<std::string>();
      const nlohmann::json& special = post_processor.at("special_tokens").at(name);
      for (const auto& id : special.at("ids")) {
        (after_text ? suffix_ : prefix_).push_back(IdField(id, "special_tokens." + name + ".ids"));
      }
    }
  } else {
    throw InputError(fmt::format(
        "post_processor type '{}' is not supported (Parity reads TemplateProcessing, ByteLevel and "
        "Sequence)",
        type));
  }
}

std::string TokenizerJson::Normalized(const std::string& text) const {
  std::string out = text;
  for (NormalForm form : normal_forms_) out = Normalize(out, form);
  return out;
}

std::vector<Segment> TokenizerJson::SplitAdded(const std::string& text,
                                               const std::vector<const AddedToken*>& tokens) const {
  std::vector<Segment> segments;
  if (tokens.empty() || text.empty()) {
    segments.push_back({text, std::nullopt});
    return segments;
  }
  // Next occurrence of each token at or after the search position (recomputed when passed).
  std::vector<size_t> next(tokens.size(), 0);
  std::vector<bool> known(tokens.size(), false);
  size_t search_from = 0;  // where the automaton continues: the end of the last match found
  size_t emitted = 0;      // text before this offset is already in `segments`
  while (search_from < text.size()) {
    size_t start = std::string::npos;
    const AddedToken* found = nullptr;
    for (size_t t = 0; t < tokens.size(); ++t) {
      if (!known[t] || (next[t] != std::string::npos && next[t] < search_from)) {
        next[t] = text.find(tokens[t]->match, search_from);
        known[t] = true;
      }
      if (next[t] == std::string::npos) continue;
      if (next[t] < start || (next[t] == start && tokens[t]->match.size() > found->match.size())) {
        start = next[t];
        found = tokens[t];
      }
    }
    if (found == nullptr) break;
    size_t stop = start + found->match.size();
    search_from = stop;
    if (found->single_word) {
      bool space_before = start == 0 || !word_at_end_.Matches(text.substr(0, start));
      bool space_after = stop == text.size() || !word_at_start_.Matches(text.substr(stop));
      if (!space_before || !space_after) continue;
    }
    if (found->lstrip) {
      std::string before = text.substr(0, start);
      for (const Span& span : trailing_space_.Find(before)) {
        if (span.is_match) start = std::max(span.begin, emitted);
      }
    }
    if (found->rstrip) {
      for (const Span& span : leading_space_.Find(text.substr(stop))) {
        if (span.is_match && span.begin == 0) stop += span.end;
      }
    }
    if (start > emitted) segments.push_back({text.substr(emitted, start - emitted), std::nullopt});
    segments.push_back({text.substr(start, stop - start), found->id});
    emitted = stop;
  }
  if (emitted < text.size()) segments.push_back({text.substr(emitted), std::nullopt});
  return segments;
}

std::vector<std::string> TokenizerJson::PreTokenize(const std::string& text) const {
  std::vector<std::string> pieces{text};
  for (const PreTokenizerStep& step : pre_tokenizer_) {
    std::vector<std::string> next;
    for (std::string& piece : pieces) {
      if (step.kind == PreTokenizerStep::Kind::kByteLevel) {
        if (step.add_prefix_space && piece.rfind(' ', 0) != 0) piece.insert(0, " ");
        std::vector<std::pair<size_t, size_t>> ranges{{0, piece.size()}};
        if (step.use_regex) ranges = Split(piece, *step.pattern, SplitBehavior::kIsolated, false);
        for (auto [begin, end] : ranges) {
          next.push_back(ByteLevelAlphabet::Get().Encode(piece.substr(begin, end - begin)));
        }
      } else {
        for (auto [begin, end] : Split(piece, *step.pattern, step.behavior, step.invert)) {
          next.push_back(piece.substr(begin, end - begin));
        }
      }
    }
    pieces = std::move(next);
  }
  return pieces;
}

std::vector<int64_t> TokenizerJson::Encode(const std::string& text) const {
  if (!IsValidUtf8(text)) throw InputError("text to tokenize is not valid UTF-8");
  std::vector<int64_t> ids;
  for (const Segment& raw : SplitAdded(text, raw_added_)) {
    if (raw.added_id) {
      ids.push_back(*raw.added_id);
      continue;
    }
    for (const Segment& segment : SplitAdded(Normalized(raw.text), normalized_added_)) {
      if (segment.added_id) {
        ids.push_back(*segment.added_id);
        continue;
      }
      if (segment.text.empty()) continue;  // the reference drops empty pieces
      for (const std::string& word : PreTokenize(segment.text)) {
        std::vector<int64_t> word_ids = model_.Tokenize(word);
        ids.insert(ids.end(), word_ids.begin(), word_ids.end());
      }
    }
  }
  return ids;
}

std::string TokenizerJson::Decode(const std::vector<int64_t>& ids) const {
  std::vector<std::string> tokens;
  for (int64_t id : ids) {
    auto added = added_by_id_.find(id);
    if (added != added_by_id_.end()) {
      tokens.push_back(added->second->content);
    } else if (const std::string* token = model_.TokenString(id)) {
      tokens.push_back(*token);
    }  // unknown ids contribute nothing, as in the reference
  }
  std::string out;
  if (!byte_level_decoder_) {
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return Utf8Lossy(out);
  }
  std::string bytes;
  for (const std::string& token : tokens) {
    out += ByteLevelAlphabet::Get().Decode(token, bytes) ? bytes : token;
  }
  return Utf8Lossy(out);
}

std::string TokenizerJson::Piece(int64_t id) const {
  auto added = added_by_id_.find(id);
  if (added != added_by_id_.end()) return added->second->content;
  if (const std::string* token = model_.TokenString(id)) return *token;
  return fmt::format("<id {}>", id);
}

std::optional<int64_t> TokenizerJson::PieceId(const std::string& piece) const {
  for (const AddedToken& token : added_) {
    if (token.content == piece) return token.id;
  }
  return model_.TokenId(piece);
}

int64_t TokenizerJson::vocab_size() const {
  int64_t size = model_.vocab_size();
  for (const AddedToken& token : added_) size = std::max(size, token.id + 1);
  return size;
}

}  // namespace

std::unique_ptr<Backend> LoadTokenizerJson(const std::string& path) {
  nlohmann::json file = io::ReadJsonFile(path);
  return std::make_unique<TokenizerJson>(file, path);
}

}  // namespace parity::tokenizer
