// A tolerant reader of DIR/localize.json, the per-layer error curve that the diagnosis (issue 4)
// writes into a run directory. The report shows a section only when the file exists; a file it
// cannot understand gives a note in the report instead of failing it, because the report is the
// last thing a run writes and must not be lost to a diagnosis format change.
//
// Expected fields (reports/README.md documents them; unknown fields are ignored):
// {
//   "points": [{"name": "layers.3.attention", "layer": 3, "sub_block": "attention",
//               "rel_rms_error": 1.2e-6, "max_abs_error": 3e-5, "cosine": 0.9999999}, ...],
//   "first_departure": {"name": "...", "layer": 3, ...}       any object, shown as key/value rows
// }
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace parity::report {

struct LocalizePoint {
  std::string name;                // observation point, e.g. "layers.3.mlp"
  std::optional<int64_t> layer;    // decoder layer index; null for embeddings / final norm
  std::string sub_block;           // e.g. "attention", "mlp", "norm"
  double rel_rms_error = 0;        // RMS(x - ref) / RMS(ref); NaN when absent
  double max_abs_error = 0;        // max |x - ref|; NaN when absent
  std::optional<double> cosine;    // cos(x, ref)
};

struct LocalizeView {
  std::string run_id;   // the run of the directory localize wrote into ("" when none)
  std::string covers;   // which models, precision, prompt and step, in words ("" when unknown)
  std::vector<LocalizePoint> points;             // in file order (input to output)
  std::optional<nlohmann::json> first_departure; // the object as written
  // One sentence from first_departure and fp64_first_part: "real departure at layer 2 attention,
  // position 5 (token 5 "x"); the FP64 runs first part at position 5, embedding". "" when the file
  // has neither.
  std::string headline;
  std::vector<std::string> problems;             // fields that could not be read, in words
};

// Reads DIR/localize.json. Returns nullopt when the file does not exist. When `run_id` is given and
// the file names another run, the points are dropped and `problems` says why (a diagnosis of other
// models must never show beside this run). A file that is not JSON or
// has no "points" array gives a view with no points and the reason in `problems`.
std::optional<LocalizeView> ReadLocalize(const std::string& dir, const std::string& run_id = "");

// Parses an already-loaded document (`source` names it in problems).
LocalizeView ParseLocalize(const nlohmann::json& json, const std::string& source);

}  // namespace parity::report
