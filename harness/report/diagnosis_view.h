// The diagnoses a run directory may hold besides localize.json, read tolerantly for the report:
// DIR/weight_diff.json (`parity diff-weights A B --out DIR`): every tensor that differs with the
// sentence that explains it; DIR/explain.json (`parity explain ... --out DIR`): one summary
// sentence per pair, prompt and precision. A file the reader cannot understand gives a note, never
// a failed report (the report is the last thing a run writes).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace parity::report {

// One differing tensor of weight_diff.json.
struct WeightLine {
  std::string key;       // "layer 3 q"
  std::string name_a, name_b;
  std::string status;    // "values_differ", "dtype_differs", "shape_mismatch"
  std::string sentence;  // the explanation; "" when none was made (e.g. shapes differ)
  bool explained = false;
};

struct DiagnosisView {
  bool has_weights = false;
  std::vector<WeightLine> weights;     // tensors that are not bitwise equal, in file order
  std::string weight_summary;          // "...; 2 of 3 differing tensors explained"
  bool has_explain = false;
  std::vector<std::string> explain_summary;  // explain.json "summary"
  std::vector<std::string> problems;
};

// Reads DIR/weight_diff.json and DIR/explain.json; nullopt when neither exists.
std::optional<DiagnosisView> ReadDiagnosis(const std::string& dir);
// From documents already loaded (null: that file is absent); `source` names them in problems.
DiagnosisView ParseDiagnosis(const nlohmann::json* weights, const nlohmann::json* explain,
                             const std::string& source);

// The report sections: a table of tensors and explanations, and the explain sentences.
std::string DiagnosisHtml(const DiagnosisView& view);
std::string DiagnosisMarkdown(const DiagnosisView& view);

}  // namespace parity::report
