// Drift gates: compare a run with its case's stored baseline and say what moved. Like is compared
// with like: the KL and top-1 figures are those of the same-context steps (run_result.h RunMetrics),
// never the steps after a split, where the two sides read different texts.
//
// Per run (matched by Run::id, i.e. prompt and pair):
//   first_divergence_step  the run now diverges more than `first_divergence_earlier_by` steps
//                          earlier than the baseline (a baseline run that never diverged counts
//                          as diverging at its number of compared steps). A divergence whose verdict
//                          is "rounding" moves with the thread count and the BLAS build: reported,
//                          but it trips only with fail_on_rounding_flip_move;
//   verdict                the first divergence's kind became real or precision_failure;
//   p99_kl, max_kl         the value grew beyond kl_factor x max(baseline, floor), the floor of the
//                          pair's coarser precision (DriftThresholds::KlFloor);
//   top1_agreement         the same-top-1 rate fell by more than `top1_drop` (teacher-forced runs;
//                          in free mode the same-context rate is k/(k+1) for a divergence at step k,
//                          which the first_divergence_step gate already judges);
//   missing_run            a baseline run is absent now.
// Per pair (matched by PairSummary::id):
//   new_failing_pair       a pair that passed in the baseline (or did not exist) fails now;
//   missing_pair           a baseline pair is absent now.
// Informational (never trips): new runs/pairs without a baseline, changed settings, rounding flips
// that moved.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/compare/run_result.h"

namespace parity::report {

// The case file's "thresholds": {"drift": {...}} (all fields optional; reports/README.md).
struct DriftThresholds {
  int64_t first_divergence_earlier_by = 2;  // steps
  double kl_factor = 2.0;                   // allowed growth of p99_kl and max_kl
  // KL values below the floor (nats) are treated as the floor, so noise-level KL cannot trip the
  // factor. One floor per precision, because rounding noise differs by orders of magnitude: the
  // same-context KL of two runs of one function is ~1e-15..1e-10 at FP32 and ~1e-5..1e-3 at BF16
  // (measured here); FP16 has 3 more significand bits than BF16, i.e. ~64x smaller KL (KL scales with
  // the squared logit error). Each floor sits above that precision's noise and far below a real
  // change: a 1% scale of one MLP weight moved the FP32 max KL from 2e-15 to 3e-8 (>> 2 x 1e-9).
  // `kl_floor` in a case sets one floor for every precision (the older form).
  double kl_floor_fp64 = 1e-20;
  double kl_floor_fp32 = 1e-9;
  double kl_floor_fp16 = 1e-4;
  double kl_floor_bf16 = 1e-3;
  // The floor of a pair whose coarser precision is `precision` ("fp32", "bf16", ...).
  double KlFloor(const std::string& precision) const;
  bool fail_on_rounding_flip_move = false;  // a rounding flip that moved earlier trips drift
  double top1_drop = 0.05;                  // allowed absolute fall of the same-top-1 rate
  bool fail_on_new_failing_pair = true;
  bool fail_on_missing = true;              // a baseline run or pair absent now trips
};

// Reads a "drift" object; unknown fields and wrong types are InputErrors naming `where`.
DriftThresholds DriftThresholdsFromJson(const nlohmann::json& json, const std::string& where);
nlohmann::json ToJson(const DriftThresholds& thresholds);
// thresholds.drift of a case file; defaults when the file has none. Throws InputError when the file
// cannot be read or the object is malformed.
DriftThresholds DriftThresholdsFromCaseFile(const std::string& case_path);

struct DriftItem {
  std::string metric;               // e.g. "p99_kl", "new_failing_pair"
  std::string pair;                 // PairSummary::id
  std::string run;                  // Run::id; empty for pair-level items
  std::optional<double> baseline;   // values and threshold where they are numbers
  std::optional<double> current;
  std::optional<double> threshold;  // the limit the current value was held to
  bool trips = true;                // false for informational items
  std::string message;              // one line, names metric, run/pair, values and limit
};

struct DriftReport {
  std::string case_name;
  DriftThresholds thresholds;
  std::vector<DriftItem> items;
  int64_t runs_compared = 0;
  bool Drifted() const;
  std::vector<std::string> MovedMetrics(const std::string& pair) const;  // tripped, per pair
};

DriftReport CompareWithBaseline(const compare::Summary& baseline, const compare::Summary& current,
                                const DriftThresholds& thresholds);

std::string FormatDriftReport(const DriftReport& report);  // human-readable, one item per line
nlohmann::json ToJson(const DriftReport& report);

}  // namespace parity::report
