#include "harness/tokenizer/pattern.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>

#include <fmt/format.h>

#include "harness/core/error.h"
#include "harness/tokenizer/unicode.h"

namespace parity::tokenizer {

struct Pattern::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() { pcre2_code_free(code); }
};

Pattern Pattern::Regex(const std::string& regex, const std::string& where) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(),
                    PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    throw InputError(fmt::format("{}: regex /{}/ does not compile at offset {}: {}", where, regex,
                                 error_offset, reinterpret_cast<const char*>(message)));
  }
  // JIT is an optimisation only; the interpreter gives the same matches when it is unavailable.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  auto compiled = std::make_shared<Compiled>();
  compiled->code = code;
  Pattern pattern;
  pattern.compiled_ = std::move(compiled);
  return pattern;
}

Pattern Pattern::Literal(const std::string& text, const std::string& where) {
  if (text.empty()) throw InputError(fmt::format("{}: empty split pattern", where));
  Pattern pattern;
  pattern.literal_ = text;
  return pattern;
}

std::vector<Span> Pattern::Find(const std::string& text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  if (compiled_ == nullptr) {
    for (size_t at = text.find(literal_); at != std::string::npos;
         at = text.find(literal_, at + literal_.size())) {
      matches.emplace_back(at, at + literal_.size());
    }
  } else {
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
        pcre2_match_data_create_from_pattern(compiled_->code, nullptr), &pcre2_match_data_free);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t offset = 0;
    while (offset < text.size()) {
      // The text was validated once by the caller; checking it again on every call would make a
      // long text quadratic.
      int rc = pcre2_match(compiled_->code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK,
                           data.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof(message));
        throw InputError(fmt::format("regex match failed: {}", reinterpret_cast<const char*>(message)));
      }
      PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
      size_t begin = ovector[0], end = ovector[1];
      if (end > begin) {
        matches.emplace_back(begin, end);
        offset = end;
      } else {
        // An empty match yields nothing (the reference drops empty pieces); step one character.
        offset = begin + 1;
        while (offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80) {
          ++offset;
        }
      }
    }
  }
  std::vector<Span> spans;
  size_t previous = 0;
  for (auto [begin, end] : matches) {
    if (begin > previous) spans.push_back({previous, begin, false});
    spans.push_back({begin, end, true});
    previous = end;
  }
  if (previous < text.size()) spans.push_back({previous, text.size(), false});
  return spans;
}

bool Pattern::Matches(const std::string& text) const {
  for (const Span& span : Find(text)) {
    if (span.is_match) return true;
  }
  return false;
}

SplitBehavior ParseSplitBehavior(const std::string& name, const std::string& where) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  throw InputError(fmt::format(
      "{}: unknown split behavior '{}' (expected Removed, Isolated, MergedWithPrevious, "
      "MergedWithNext or Contiguous)",
      where, name));
}

std::vector<std::pair<size_t, size_t>> Split(const std::string& text, const Pattern& pattern,
                                             SplitBehavior behavior, bool invert) {
  std::vector<Span> spans = pattern.Find(text);
  if (invert) {
    for (Span& span : spans) span.is_match = !span.is_match;
  }
  // (begin, end, remove) in order, following the reference's fold for each behavior.
  struct Piece {
    size_t begin, end;
    bool remove;
  };
  std::vector<Piece> pieces;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Span& s : spans) pieces.push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans) pieces.push_back({s.begin, s.end, s.is_match});
      break;
    case SplitBehavior::kContiguous:
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !pieces.empty()) {
          pieces.back().end = s.end;
        } else {
          pieces.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !pieces.empty()) {
          pieces.back().end = s.end;
        } else {
          pieces.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !pieces.empty()) {
          pieces.back().begin = it->begin;
        } else {
          pieces.push_back({it->begin, it->end, false});
        }
        previous_match = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
  }
  std::vector<std::pair<size_t, size_t>> out;
  for (const Piece& p : pieces) {
    if (!p.remove && p.end > p.begin) out.emplace_back(p.begin, p.end);
  }
  return out;
}

}  // namespace parity::tokenizer
