#include "harness/tokenizer/bpe_model.h"

#include <queue>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/core/error.h"
#include "harness/tokenizer/unicode.h"

namespace parity::tokenizer {
namespace {

// Unused ids tolerated below the largest vocabulary id (see FromJson).
constexpr int64_t kMaxUnusedIds = 65536;

std::string OptionalString(const nlohmann::json& model, const char* key) {
  auto it = model.find(key);
  if (it == model.end() || it->is_null()) return "";
  if (!it->is_string()) throw InputError(fmt::format("model.{} must be a string or null", key));
  return it->get<std::string>();
}

bool OptionalBool(const nlohmann::json& model, const char* key) {
  auto it = model.find(key);
  if (it == model.end() || it->is_null()) return false;
  if (!it->is_boolean()) throw InputError(fmt::format("model.{} must be true or false", key));
  return it->get<bool>();
}

// One symbol of a word being merged: a token id and its neighbours (-1 at the ends); a symbol merged
// into its left neighbour gets length 0.
struct Symbol {
  int64_t id;
  int64_t prev;
  int64_t next;
  size_t length;
};

struct QueuedMerge {
  uint32_t rank;
  size_t position;
  int64_t new_id;
  // std::priority_queue pops the largest: invert so that the lowest rank, then the leftmost
  // position, comes first (HF's Merge ordering).
  bool operator<(const QueuedMerge& other) const {
    if (rank != other.rank) return rank > other.rank;
    return position > other.position;
  }
};

}  // namespace

BpeModel BpeModel::FromJson(const nlohmann::json& model, const std::string& where) {
  BpeModel bpe;
  try {
    if (!model.is_object() || model.value("type", "") != "BPE") {
      throw InputError("model.type must be \"BPE\" (Parity reads byte-level BPE tokenizer.json)");
    }
    if (model.contains("dropout") && !model["dropout"].is_null() &&
        model["dropout"].get<double>() != 0.0) {
      throw InputError("model.dropout is set: BPE dropout is random, Parity needs determinism");
    }
    const nlohmann::json& vocab = model.at("vocab");
    if (!vocab.is_object()) throw InputError("model.vocab must be an object {token: id}");
    int64_t max_id = -1;
    for (const auto& [token, id] : vocab.items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0) {
        throw InputError(fmt::format("model.vocab['{}'] must be a non-negative integer", token));
      }
      bpe.vocab_[token] = id.get<int64_t>();
      max_id = std::max(max_id, id.get<int64_t>());
    }
    // Ids index a dense table (id_to_token_): tokenizer.json files number their entries 0..N-1, and
    // an id far past the entry count would allocate (or overflow) for nothing.
    const int64_t max_allowed = static_cast<int64_t>(vocab.size()) + kMaxUnusedIds;
    if (max_id >= max_allowed) {
      throw InputError(fmt::format("model.vocab: id {} is too large for {} entries (ids must be "
                                   "below {}: the entries plus {} unused ids)",
                                   max_id, vocab.size(), max_allowed, kMaxUnusedIds));
    }
    bpe.id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
    bpe.id_used_.assign(static_cast<size_t>(max_id + 1), false);
    for (const auto& [token, id] : bpe.vocab_) {
      bpe.id_to_token_[static_cast<size_t>(id)] = token;
      bpe.id_used_[static_cast<size_t>(id)] = true;
    }

    bpe.continuing_subword_prefix_ = OptionalString(model, "continuing_subword_prefix");
    bpe.end_of_word_suffix_ = OptionalString(model, "end_of_word_suffix");
    bpe.fuse_unk_ = OptionalBool(model, "fuse_unk");
    bpe.byte_fallback_ = OptionalBool(model, "byte_fallback");
    bpe.ignore_merges_ = OptionalBool(model, "ignore_merges");
    std::string unk = OptionalString(model, "unk_token");
    if (!unk.empty()) {
      auto it = bpe.vocab_.find(unk);
      if (it == bpe.vocab_.end()) {
        throw InputError(fmt::format("model.unk_token '{}' is not in the vocabulary", unk));
      }
      bpe.unk_id_ = it->second;
    }

    const nlohmann::json& merges = model.at("merges");
    if (!merges.is_array()) throw InputError("model.merges must be a list");
    const size_t prefix_length = bpe.continuing_subword_prefix_.size();
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const nlohmann::json& entry = merges[rank];
      std::string a, b;
      if (entry.is_string()) {
        const std::string& text = entry.get_ref<const std::string&>();
        size_t space = text.find(' ');
        if (space == std::string::npos) {
          throw InputError(fmt::format("model.merges[{}] '{}' is not \"a b\"", rank, text));
        }
        a = text.substr(0, space);
        b = text.substr(space + 1);
      } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() &&
                 entry[1].is_string()) {
        a = entry[0].get<std::string>();
        b = entry[1].get<std::string>();
      } else {
        throw InputError(fmt::format("model.merges[{}] must be \"a b\" or [\"a\", \"b\"]", rank));
      }
      auto a_id = bpe.vocab_.find(a), b_id = bpe.vocab_.find(b);
      if (a_id == bpe.vocab_.end() || b_id == bpe.vocab_.end()) {
        throw InputError(fmt::format("model.merges[{}]: '{}' is not in the vocabulary", rank,
                                     a_id == bpe.vocab_.end() ? a : b));
      }
      std::string merged = a + b.substr(std::min(prefix_length, b.size()));
      auto new_id = bpe.vocab_.find(merged);
      if (new_id == bpe.vocab_.end()) {
        throw InputError(
            fmt::format("model.merges[{}]: the merged token '{}' is not in the vocabulary", rank,
                        merged));
      }
      // Later duplicates overwrite earlier ones, as the reference's map insertion does.
      bpe.merges_[PairKey(a_id->second, b_id->second)] = {static_cast<uint32_t>(rank),
                                                           new_id->second};
    }
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: {}", where, e.what()));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: model: {}", where, e.what()));
  }
  return bpe;
}

std::vector<int64_t> BpeModel::Tokenize(const std::string& word) const {
  if (word.empty()) return {};
  if (ignore_merges_) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) return {it->second};
  }
  // 1. One symbol per character (with the subword prefix/suffix where configured), falling back to
  //    <0xXX> byte tokens or the unknown token for characters outside the vocabulary.
  std::vector<Symbol> symbols;
  auto add = [&](int64_t id, size_t length) {
    int64_t index = static_cast<int64_t>(symbols.size());
    if (!symbols.empty()) symbols.back().next = index;
    symbols.push_back({id, index - 1, -1, length});
  };
  std::optional<std::pair<int64_t, size_t>> pending_unk;
  std::vector<size_t> starts = CharBoundaries(word);
  for (size_t c = 0; c + 1 < starts.size(); ++c) {
    std::string piece = word.substr(starts[c], starts[c + 1] - starts[c]);
    const size_t length = piece.size();
    if (c > 0) piece = continuing_subword_prefix_ + piece;
    if (c + 2 == starts.size()) piece += end_of_word_suffix_;
    auto it = vocab_.find(piece);
    if (it != vocab_.end()) {
      if (pending_unk) add(pending_unk->first, pending_unk->second);
      pending_unk.reset();
      add(it->second, length);
      continue;
    }
    if (byte_fallback_) {
      std::vector<int64_t> bytes;
      for (unsigned char b : piece) {
        auto byte_token = vocab_.find(fmt::format("<0x{:02X}>", b));
        if (byte_token == vocab_.end()) break;
        bytes.push_back(byte_token->second);
      }
      if (bytes.size() == piece.size()) {
        for (int64_t id : bytes) add(id, 1);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk && fuse_unk_) {
        pending_unk->second += length;
      } else {
        if (pending_unk) add(pending_unk->first, pending_unk->second);
        pending_unk = std::make_pair(*unk_id_, length);
      }
    }
    // No unknown token and no byte fallback: the reference drops the character.
  }
  if (pending_unk) add(pending_unk->first, pending_unk->second);

  // 2. Merge by rank (see the header comment).
  std::priority_queue<QueuedMerge> queue;
  auto merge_of = [&](int64_t a, int64_t b) -> const Merge* {
    auto it = merges_.find(PairKey(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Merge* m = merge_of(symbols[i].id, symbols[i + 1].id)) {
      queue.push({m->rank, i, m->new_id});
    }
  }
  while (!queue.empty()) {
    QueuedMerge top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.position];
    if (left.length == 0 || left.next == -1) continue;
    const size_t right_index = static_cast<size_t>(left.next);
    Symbol right = symbols[right_index];
    const Merge* current = merge_of(left.id, right.id);
    if (current == nullptr || current->new_id != top.new_id) continue;  // stale entry
    left.id = top.new_id;
    left.length += right.length;
    left.next = right.next;
    symbols[right_index].length = 0;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.position;
    if (left.prev >= 0) {
      const Symbol& before = symbols[static_cast<size_t>(left.prev)];
      if (const Merge* m = merge_of(before.id, left.id)) {
        queue.push({m->rank, static_cast<size_t>(left.prev), m->new_id});
      }
    }
    if (left.next >= 0) {
      const Symbol& after = symbols[static_cast<size_t>(left.next)];
      if (const Merge* m = merge_of(left.id, after.id)) {
        queue.push({m->rank, top.position, m->new_id});
      }
    }
  }
  std::vector<int64_t> ids;
  for (const Symbol& s : symbols) {
    if (s.length != 0) ids.push_back(s.id);
  }
  return ids;
}

std::optional<int64_t> BpeModel::TokenId(const std::string& token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::TokenString(int64_t id) const {
  if (id < 0 || id >= vocab_size() || !id_used_[static_cast<size_t>(id)]) return nullptr;
  return &id_to_token_[static_cast<size_t>(id)];
}

}  // namespace parity::tokenizer
