// What the Tokenizer facade (tokenizer.h) needs from a tokenizer implementation. Two exist:
// SentencePiece through its shim (sentencepiece_backend.cpp, for `tokenizer.model`) and HF's
// byte-level BPE (tokenizer_json.cpp, for `tokenizer.json`). Both split out the checkpoint's added
// tokens themselves; neither adds BOS (the facade does, as each format says).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace parity::tokenizer {

class Backend {
 public:
  virtual ~Backend() = default;
  // Ids of `text` without BOS/EOS or any template; added tokens written literally become their ids.
  virtual std::vector<int64_t> Encode(const std::string& text) const = 0;
  // Text of `ids`, added tokens written literally; always valid UTF-8.
  virtual std::string Decode(const std::vector<int64_t>& ids) const = 0;
  // The text one token contributes to a decoded stream (" the", "\n"); valid UTF-8 (a token holding
  // part of a character shows U+FFFD).
  virtual std::string TokenText(int64_t id) const = 0;
  // The vocabulary's own spelling of the token ("Ġthe", "▁the", "<0x0A>", "<|im_start|>").
  virtual std::string Piece(int64_t id) const = 0;
  // The id of an added token or a vocabulary piece spelled exactly `piece`.
  virtual std::optional<int64_t> PieceId(const std::string& piece) const = 0;
  // Ids the format adds around a text when asked to add special tokens (SentencePiece: none here,
  // the facade adds BOS from the configs; tokenizer.json: its post-processor's template).
  virtual std::vector<int64_t> SpecialPrefix() const = 0;
  virtual std::vector<int64_t> SpecialSuffix() const = 0;
  // Number of ids: the model vocabulary plus added tokens above it.
  virtual int64_t vocab_size() const = 0;
  // "sentencepiece" or "tokenizer.json (byte-level BPE)": printed by `parity tokenize`.
  virtual std::string kind() const = 0;
};

}  // namespace parity::tokenizer
