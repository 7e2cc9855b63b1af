// Field-by-field comparison of two config.json files, with a verdict per field that knows what
// InternLM's convert2llama changes on purpose (model_type, architectures, bias -> attention_bias,
// dropped auto_map / attn_implementation / tokenizer_class) and compares the rest by meaning: an
// absent field equals an explicit value when the reference default is that value.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/model/config.h"

namespace parity::compare {

enum class FieldVerdict {
  kMatch,               // same value, or same meaning (absent vs its default, 1000000 vs 1e6, 2 vs [2])
  kExpectedRename,      // the conversion renamed the field and kept its value (bias -> attention_bias)
  kExpectedDrop,        // present in the InternLM2 config, dropped by the conversion (auto_map...)
  kExpectedDifference,  // names the architecture (model_type, architectures): differs by design
  kIrrelevant,          // differs without changing the network (transformers_version, use_cache...)
  kMismatch,            // changes the network (sizes, eps, rope, ids, dtype), or a field Parity does
                        // not know that differs
};
// "match", "expected rename", "expected drop", "expected difference", "irrelevant", "MISMATCH".
const char* FieldVerdictName(FieldVerdict verdict);

struct FieldComparison {
  std::string field;                 // the name in A (in B when A lacks it)
  std::string field_b;               // the name in B when it differs from `field` (a rename), else ""
  std::optional<nlohmann::json> a;   // raw value in A; nullopt when absent
  std::optional<nlohmann::json> b;   // raw value in B; nullopt when absent
  FieldVerdict verdict = FieldVerdict::kMatch;
  bool by_meaning = false;           // kMatch although the raw values differ (e.g. absent vs default)
  std::string note;                  // why this verdict, e.g. "absent in A, where it means 1e-06"
};

struct ConfigDiff {
  std::string source_a;  // config.json paths
  std::string source_b;
  model::Architecture arch_a = model::Architecture::kInternLM2;
  model::Architecture arch_b = model::Architecture::kInternLM2;
  std::vector<FieldComparison> fields;  // sorted by field name

  // True when no field is a kMismatch: the two configs describe the same network.
  bool same_network() const;
  int Count(FieldVerdict verdict) const;
  // "27/27 fields match (2 by default value, 1 expected rename, 2 expected drops, 2 expected
  // differences)", plus "; 1 MISMATCH: rope_theta" when something differs.
  std::string Summary() const;
  // One object: sources, architectures, same_network, summary, counts, and every field.
  nlohmann::json ToJson() const;
  // A side-by-side table, notes for every row that is not a plain match, the summary line.
  std::string ToText() const;
};

// Compares two parsed config.json objects. Throws InputError (naming the file and the fields) when
// either is not a valid InternLM2 or Llama config.
ConfigDiff DiffConfigs(const nlohmann::json& a, const std::string& source_a, const nlohmann::json& b,
                       const std::string& source_b);
// `a` and `b` are checkpoint directories or config.json paths.
ConfigDiff DiffConfigPaths(const std::string& a, const std::string& b);
// dir/config.json for a directory, the path itself otherwise.
std::string ConfigPathOf(const std::string& dir_or_file);

}  // namespace parity::compare
