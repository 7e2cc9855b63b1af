#include "harness/tokenizer/unicode.h"

#include <cstdlib>
#include <memory>

#include <fmt/format.h>
#include <utf8proc.h>

#include "harness/core/error.h"

namespace parity::tokenizer {
namespace {

// Length of the well-formed UTF-8 sequence at bytes[i], or the length of its maximal invalid
// subpart (>= 1) with `valid` false. Ranges from the Unicode standard, table 3-7.
size_t SequenceAt(const unsigned char* bytes, size_t size, size_t i, bool& valid) {
  unsigned char b0 = bytes[i];
  valid = true;
  if (b0 < 0x80) return 1;
  size_t width = 0;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    width = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    width = 3;
    if (b0 == 0xE0) low = 0xA0;
    if (b0 == 0xED) high = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    width = 4;
    if (b0 == 0xF0) low = 0x90;
    if (b0 == 0xF4) high = 0x8F;
  } else {
    valid = false;
    return 1;
  }
  for (size_t k = 1; k < width; ++k) {
    if (i + k >= size) {
      valid = false;
      return k;
    }
    unsigned char b = bytes[i + k];
    bool ok = k == 1 ? (b >= low && b <= high) : (b >= 0x80 && b <= 0xBF);
    if (!ok) {
      valid = false;
      return k;
    }
  }
  return width;
}

}  // namespace

std::string Normalize(const std::string& text, NormalForm form) {
  if (!IsValidUtf8(text)) throw InputError("text to normalize is not valid UTF-8");
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::kNfc: options |= UTF8PROC_COMPOSE; break;
    case NormalForm::kNfd: options |= UTF8PROC_DECOMPOSE; break;
    case NormalForm::kNfkc: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalForm::kNfkd: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t size = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                       static_cast<utf8proc_ssize_t>(text.size()), &out,
                                       static_cast<utf8proc_option_t>(options));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(out, &std::free);
  if (size < 0) {
    throw InputError(fmt::format("Unicode normalization failed: {}", utf8proc_errmsg(size)));
  }
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(size));
}

std::vector<size_t> CharBoundaries(const std::string& text) {
  std::vector<size_t> starts;
  starts.reserve(text.size() + 1);
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t i = 0; i < text.size();) {
    starts.push_back(i);
    bool valid = false;
    i += SequenceAt(bytes, text.size(), i, valid);
  }
  starts.push_back(text.size());
  return starts;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool IsValidUtf8(const std::string& text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t i = 0; i < text.size();) {
    bool valid = false;
    i += SequenceAt(bytes, text.size(), i, valid);
    if (!valid) return false;
  }
  return true;
}

std::string Utf8Lossy(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t i = 0; i < text.size();) {
    bool valid = false;
    size_t length = SequenceAt(bytes, text.size(), i, valid);
    if (valid) {
      out.append(text, i, length);
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
    }
    i += length;
  }
  return out;
}

const ByteLevelAlphabet& ByteLevelAlphabet::Get() {
  static const ByteLevelAlphabet alphabet;
  return alphabet;
}

ByteLevelAlphabet::ByteLevelAlphabet() : cp_to_byte_(512, -1) {
  auto printable = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  };
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    byte_to_cp_[b] = printable(b) ? static_cast<uint32_t>(b) : next++;
  }
  for (int b = 0; b < 256; ++b) {
    AppendUtf8(byte_to_cp_[b], byte_to_utf8_[b]);
    cp_to_byte_[byte_to_cp_[b]] = b;
  }
}

std::string ByteLevelAlphabet::Encode(const std::string& bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out += byte_to_utf8_[b];
  return out;
}

bool ByteLevelAlphabet::Decode(const std::string& token, std::string& out) const {
  out.clear();
  const auto* bytes = reinterpret_cast<const unsigned char*>(token.data());
  for (size_t i = 0; i < token.size();) {
    bool valid = false;
    size_t length = SequenceAt(bytes, token.size(), i, valid);
    if (!valid || length > 2) return false;  // the alphabet lies below U+0200: 1 or 2 bytes
    uint32_t cp = length == 1 ? bytes[i] : ((bytes[i] & 0x1Fu) << 6) | (bytes[i + 1] & 0x3Fu);
    if (cp >= cp_to_byte_.size() || cp_to_byte_[cp] < 0) return false;
    out += static_cast<char>(cp_to_byte_[cp]);
    i += length;
  }
  return true;
}

}  // namespace parity::tokenizer
