// Splitting text by a pattern, as HF tokenizers' pre-tokenizers do. Regular expressions go through
// PCRE2 (UTF + UCP: \s, \w and \d are Unicode-aware, \p{L}/\p{N} classes, lookahead such as
// `\s+(?!\S)`), which matches what the reference's Oniguruma does on the patterns byte-level BPE
// tokenizers ship (checked against npm `tokenizers` by tests/tokenizer_json_test.cpp).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace parity::tokenizer {

// One piece of a split: [begin, end) byte offsets and whether it was a match of the pattern.
struct Span {
  size_t begin = 0;
  size_t end = 0;
  bool is_match = false;
};

// A compiled pattern: a PCRE2 regex or a literal string. Immutable; safe to share between threads
// (match data is allocated per call).
class Pattern {
 public:
  // Throws InputError naming `where` (e.g. "tokenizer.json pre_tokenizer") when the regex does not
  // compile, with PCRE2's message and the offset.
  static Pattern Regex(const std::string& regex, const std::string& where);
  static Pattern Literal(const std::string& text, const std::string& where);

  // The whole of `text` as consecutive spans: the non-empty matches, left to right, and the gaps
  // between them. `text` must be valid UTF-8.
  std::vector<Span> Find(const std::string& text) const;
  // True when the pattern matches `text` somewhere (used for the added tokens' word checks).
  bool Matches(const std::string& text) const;

 private:
  struct Compiled;
  std::shared_ptr<const Compiled> compiled_;  // null for a literal
  std::string literal_;
};

// How a split treats the matches (HF's SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Parses "Removed", "Isolated", ...; throws InputError naming `where` for anything else.
SplitBehavior ParseSplitBehavior(const std::string& name, const std::string& where);

// Splits `text` into pieces (byte ranges) by `pattern` with `behavior`; `invert` swaps which spans
// count as matches. Empty pieces are dropped, as the reference drops them.
std::vector<std::pair<size_t, size_t>> Split(const std::string& text, const Pattern& pattern,
                                             SplitBehavior behavior, bool invert);

}  // namespace parity::tokenizer
