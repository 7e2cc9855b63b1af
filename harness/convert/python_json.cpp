#include "harness/convert/python_json.h"

#include <regex>

#include <fmt/format.h>

#include "harness/core/error.h"

namespace parity::convert {

std::string DumpSortedJson(const nlohmann::json& value, bool ensure_ascii) {
  return value.dump(2, ' ', ensure_ascii) + "\n";
}

std::string DumpOrderedJson(const nlohmann::ordered_json& value) {
  return value.dump(2, ' ', /*ensure_ascii=*/true);
}

nlohmann::ordered_json ParseOrderedJson(const std::string& text, const std::string& source) {
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(fmt::format("{}: not valid JSON: {}", source, e.what()));
  }
}

std::string RestoreBigIntegers(const std::string& dumped, const std::string& source_text) {
  // A value position (after ':' , ',' or '[') holding 20 or more digits exceeds uint64.
  static const std::regex kBigInteger(R"(([:,\[]\s*)(-?\d{20,})(?=\s*[,}\]]))");
  std::string result = dumped;
  for (std::sregex_iterator it(source_text.begin(), source_text.end(), kBigInteger), end; it != end;
       ++it) {
    const std::string literal = (*it)[2].str();
    const std::string as_float = nlohmann::json(std::stod(literal)).dump();
    for (const char* prefix : {": ", "  "}) {
      const std::string from = prefix + as_float;
      const std::string to = prefix + literal;
      for (size_t pos = result.find(from); pos != std::string::npos;
           pos = result.find(from, pos + to.size())) {
        const size_t after = pos + from.size();
        if (after < result.size() && result[after] != ',' && result[after] != '\n') continue;
        result.replace(pos, from.size(), to);
      }
    }
  }
  return result;
}

}  // namespace parity::convert
