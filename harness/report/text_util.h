// Text helpers shared by the report writers: escaping for HTML and Markdown, visible whitespace for
// token texts ("\n" must be seen, not swallowed), UTF-8-safe prefixes and short number formatting.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace parity::report {

// Escapes & < > " ' so that any text from the data is safe in element content and in quoted
// attribute values.
std::string HtmlEscape(std::string_view text);

// HTML for a token text or a stream, escaped, with whitespace made visible: "\n" becomes a visible
// "⏎" followed by a real line break (the element is styled white-space: pre-wrap), "\t" a "→" plus
// the tab, "\r" a "␍", other C0 control characters their U+2400 picture. The symbols are wrapped in
// <span class="ws"> so the page can grey them out.
std::string VisibleHtml(std::string_view text);

// The same for plain text (Markdown, terminal): "\n" -> "⏎", "\t" -> "→", "\r" -> "␍", other C0
// control characters -> their U+2400 picture. No line breaks are kept, so the result fits on a line.
std::string VisiblePlain(std::string_view text);

// A Markdown code span holding `text` verbatim (after VisiblePlain), with a backtick fence longer
// than any run of backticks inside, padded with spaces when the text starts or ends with a backtick.
std::string MarkdownCode(std::string_view text);

// Escapes the characters that Markdown table cells and inline text treat specially (| \ ` * _ [ ] < >).
std::string MarkdownEscape(std::string_view text);

// Length in bytes of the longest common prefix of a and b that ends on a UTF-8 character boundary.
size_t CommonPrefixUtf8(std::string_view a, std::string_view b);

// Byte length of the UTF-8 character starting at text[0] (1 for an invalid lead byte; 0 when empty).
size_t Utf8CharLength(std::string_view text);

// The last `max_chars` characters (UTF-8) of `text`, prefixed with "…" when shortened.
std::string TailUtf8(std::string_view text, size_t max_chars);

// Short human form of a number: 3 significant digits ("0.000123" -> "1.23e-04", "12.3", "0"),
// "—" for NaN/absent, "inf"/"-inf".
std::string FormatNumber(double value);
std::string FormatNumber(const std::optional<double>& value);
// A fraction as a percentage with 1 decimal ("99.7%").
std::string FormatPercent(double fraction);

}  // namespace parity::report
