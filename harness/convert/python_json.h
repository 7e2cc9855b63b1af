// JSON text exactly as the Python tools that write Hugging Face checkpoints produce it, so that files
// Parity writes are byte-identical to theirs:
//   transformers' config / generation config:  json.dumps(d, indent=2, sort_keys=True) + "\n"
//   transformers' tokenizer files:              json.dumps(d, indent=2, sort_keys=True,
//                                                          ensure_ascii=False) + "\n"
//   convert2llama's index file:                 json.dump(d, f, indent=2)   (insertion order, no "\n")
// nlohmann's dump(2) matches Python's layout and its shortest round-trip floats ("1e-05", "2.0").
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace parity::convert {

// Python json.dumps(value, indent=2, sort_keys=True, ensure_ascii=...) followed by "\n". nlohmann::json
// objects are std::maps, so keys come out sorted at every level, as sort_keys does.
std::string DumpSortedJson(const nlohmann::json& value, bool ensure_ascii = true);

// Python json.dump(value, indent=2) with keys in insertion order and no trailing newline.
std::string DumpOrderedJson(const nlohmann::ordered_json& value);

// Parses JSON text keeping key order; throws InputError naming `source` when it is not JSON.
nlohmann::ordered_json ParseOrderedJson(const std::string& text, const std::string& source);

// Integer literals too large for 64 bits (tokenizer configs hold model_max_length = int(1e30) =
// 1000000000000000019884624838656) parse as doubles and would dump as 1e+30; Python keeps them as
// integers. Rewrites each such value in `dumped` back to the literal `source_text` held.
std::string RestoreBigIntegers(const std::string& dumped, const std::string& source_text);

}  // namespace parity::convert
