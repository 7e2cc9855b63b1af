#include "harness/report/text_util.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

namespace parity::report {
namespace {

// The U+2400 "control picture" of a C0 control character, e.g. 0x00 -> "␀" (U+2400).
std::string ControlPicture(unsigned char c) {
  unsigned code = 0x2400 + c;
  std::string out;
  out += static_cast<char>(0xE0 | (code >> 12));
  out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
  out += static_cast<char>(0x80 | (code & 0x3F));
  return out;
}

// Symbol shown for a whitespace/control character, or empty for an ordinary character.
std::string VisibleSymbol(unsigned char c) {
  switch (c) {
    case '\n': return "\u23CE";  // ⏎
    case '\t': return "\u2192";  // →
    case '\r': return "\u240D";  // ␍
    default: break;
  }
  if (c < 0x20 || c == 0x7F) return c == 0x7F ? "\u2421" : ControlPicture(c);
  return "";
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string VisibleHtml(std::string_view text) {
  std::string out;
  size_t plain_begin = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    std::string symbol = VisibleSymbol(static_cast<unsigned char>(text[i]));
    if (symbol.empty()) continue;
    out += HtmlEscape(text.substr(plain_begin, i - plain_begin));
    out += "<span class=\"ws\">" + symbol + "</span>";
    if (text[i] == '\n' || text[i] == '\t') out += text[i];  // keep the real break / tab
    plain_begin = i + 1;
  }
  out += HtmlEscape(text.substr(plain_begin));
  return out;
}

std::string VisiblePlain(std::string_view text) {
  std::string out;
  for (char c : text) {
    std::string symbol = VisibleSymbol(static_cast<unsigned char>(c));
    out += symbol.empty() ? std::string(1, c) : symbol;
  }
  return out;
}

std::string MarkdownCode(std::string_view text) {
  std::string visible = VisiblePlain(text);
  size_t longest = 0, run = 0;
  for (char c : visible) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  std::string fence(longest + 1, '`');
  // CommonMark strips one space from each end when the content begins AND ends with a space, and
  // a fence next to a backtick would merge with it: pad in exactly those cases.
  bool all_spaces = visible.find_first_not_of(' ') == std::string::npos;
  bool pad = !visible.empty() &&
             (visible.front() == '`' || visible.back() == '`' ||
              (visible.front() == ' ' && visible.back() == ' ' && !all_spaces));
  std::string space = pad ? " " : "";
  if (visible.empty()) return "`\u2205`";  // ∅: an empty token is still shown
  return fence + space + visible + space + fence;
}

std::string MarkdownEscape(std::string_view text) {
  std::string out;
  for (char c : VisiblePlain(text)) {
    if (std::string_view("|\\`*_[]<>#").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

size_t Utf8CharLength(std::string_view text) {
  if (text.empty()) return 0;
  unsigned char lead = static_cast<unsigned char>(text[0]);
  size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3
                  : (lead >> 3) == 0x1E ? 4 : 1;
  return std::min(length, text.size());
}

size_t CommonPrefixUtf8(std::string_view a, std::string_view b) {
  size_t i = 0;
  while (i < a.size() && i < b.size()) {
    size_t length = Utf8CharLength(a.substr(i));
    if (a.substr(i, length) != b.substr(i, length)) break;
    i += length;
  }
  return i;
}

std::string TailUtf8(std::string_view text, size_t max_chars) {
  std::vector<size_t> starts;
  for (size_t i = 0; i < text.size(); i += Utf8CharLength(text.substr(i))) starts.push_back(i);
  if (starts.size() <= max_chars) return std::string(text);
  return "\u2026" + std::string(text.substr(starts[starts.size() - max_chars]));
}

std::string FormatNumber(double value) {
  if (std::isnan(value)) return "\u2014";  // —
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0) return "0";
  double magnitude = std::fabs(value);
  if (magnitude >= 1e3 && magnitude < 1e5) return fmt::format("{:.0f}", value);
  if (magnitude >= 1e-3 && magnitude < 1e3) {
    // 3 significant digits without an exponent; trailing zeros kept off by %g.
    return fmt::format("{:.3g}", value);
  }
  return fmt::format("{:.2e}", value);
}

std::string FormatNumber(const std::optional<double>& value) {
  return value ? FormatNumber(*value) : "\u2014";
}

std::string FormatPercent(double fraction) {
  if (std::isnan(fraction)) return "\u2014";
  return fmt::format("{:.1f}%", fraction * 100);
}

}  // namespace parity::report
