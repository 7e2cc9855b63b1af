// UTF-8 and Unicode helpers for the tokenizer.json path: normalization forms (utf8proc, Unicode 15),
// GPT-2's bytes_to_unicode table used by byte-level BPE, and the lossy UTF-8 decoding HF's byte-level
// decoder applies (Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes U+FFFD).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace parity::tokenizer {

// Unicode normalization forms, as tokenizer.json's normalizer names them ("NFC", "NFD", ...).
enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };

// Normalizes valid UTF-8 text. Throws InputError when the text is not valid UTF-8.
std::string Normalize(const std::string& text, NormalForm form);

// Byte offsets where each UTF-8 character of `text` starts, plus text.size() at the end.
// `text` must be valid UTF-8 (it comes from the caller's std::string after validation).
std::vector<size_t> CharBoundaries(const std::string& text);

// Appends the UTF-8 encoding of code point `cp` to `out`.
void AppendUtf8(uint32_t cp, std::string& out);

// True when `text` is well-formed UTF-8.
bool IsValidUtf8(const std::string& text);

// Decodes bytes as UTF-8, replacing each maximal invalid subsequence with U+FFFD exactly as Rust's
// String::from_utf8_lossy does (HF's ByteLevel decoder ends with it).
std::string Utf8Lossy(const std::string& bytes);

// GPT-2's reversible map from the 256 byte values to printable code points: printable Latin-1 bytes
// ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) map to themselves, the other 68 to U+0100, U+0101, ... in byte
// order. Byte-level BPE vocabularies are written in these characters (space = 'Ġ' U+0120).
class ByteLevelAlphabet {
 public:
  static const ByteLevelAlphabet& Get();
  // Each byte of `bytes` as its UTF-8 encoded character ("Hi there" -> "HiĠthere").
  std::string Encode(const std::string& bytes) const;
  // The inverse for a token string; false when some character is outside the alphabet (then `out`
  // is unspecified and HF's decoder keeps the token's own bytes).
  bool Decode(const std::string& token, std::string& out) const;

 private:
  ByteLevelAlphabet();
  uint32_t byte_to_cp_[256];
  std::string byte_to_utf8_[256];
  std::vector<int> cp_to_byte_;  // indexed by code point < 512; -1 outside the alphabet
};

}  // namespace parity::tokenizer
