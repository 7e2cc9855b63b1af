// The BPE model of an HF tokenizer.json ("model": {"type": "BPE", ...}): vocabulary, merges by rank,
// and the options Qwen2/Qwen3 and Llama-3 files use. Given one pre-tokenized word (already in the
// byte-level alphabet), it returns the token ids, merging exactly as HF's Rust `Word::merge_all`
// does: a min-heap of (rank, position), stale entries recognised by the id they would produce.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace parity::tokenizer {

class BpeModel {
 public:
  // Reads the "model" object of tokenizer.json. `where` names the file for error messages. Merges
  // may be "a b" strings (older files, Llama-3) or ["a", "b"] pairs (newer files, Qwen3); a merge
  // whose parts or result are not in the vocabulary is an error, as in the reference.
  static BpeModel FromJson(const nlohmann::json& model, const std::string& where);

  // Token ids for one word. With `ignore_merges`, a word that is itself in the vocabulary is one
  // token without merging (Llama-3: "   " or " 2023" as written in the vocabulary).
  std::vector<int64_t> Tokenize(const std::string& word) const;

  std::optional<int64_t> TokenId(const std::string& token) const;
  // The vocabulary string of `id` ("Ġthe"), or nullopt outside the vocabulary.
  const std::string* TokenString(int64_t id) const;
  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }  // max id + 1
  int64_t vocab_count() const { return static_cast<int64_t>(vocab_.size()); }       // entries
  bool ignore_merges() const { return ignore_merges_; }

 private:
  struct Merge {
    uint32_t rank;
    int64_t new_id;
  };
  static uint64_t PairKey(int64_t a, int64_t b) {
    return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b);
  }

  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;  // dense by id; "" where the id is unused
  std::vector<bool> id_used_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int64_t> unk_id_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
};

}  // namespace parity::tokenizer
