// Drift gates: compare a run with its case's stored baseline and say what moved.
//
// Per run (matched by Run::id, i.e. prompt and pair):
//   first_divergence_step  the run now diverges more than `first_divergence_earlier_by` steps
//                          earlier than the baseline (a baseline run that never diverged counts
//                          as diverging at its number of compared steps);
//   p99_kl, max_kl         the value grew beyond kl_factor x max(baseline, kl_floor) (see
//                          DriftThresholds::kl_floor for why a floor);
//   top1_agreement         the same-top-1 rate fell by more than `top1_drop`;
//   missing_run            a baseline run is absent now.
// Per pair (matched by PairSummary::id):
//   new_failing_pair       a pair that passed in the baseline (or did not exist) fails now;
//   missing_pair           a baseline pair is absent now.
// Informational (never trips): new runs/pairs without a baseline, changed settings.
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
  // KL values below this (nats) are treated as this value, so noise-level KL cannot trip the
  // factor (1e-12 -> 3e-12 at FP32 is no drift). 1e-6 nats bounds the total-variation distance by
  // sqrt(KL / 2) = 7e-4 (Pinsker): no probability moves by more than 0.07 points. It is also below
  // what rounding FP32 logits of magnitude ~10 to FP16 alone produces (KL ~ Var(δ)/2 with
  // δ ~ U(±ulp/2), ulp = 2^-7: ~2.5e-6), so FP32 comparisons (1e-12..1e-8) stay under it while
  // FP16/BF16 comparisons (1e-5..1e-3) are watched by the factor.
  double kl_floor = 1e-6;
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
