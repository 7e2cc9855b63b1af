// The history of a baseline store: STORE/history.jsonl, one JSON record per pair per recorded run,
// appended by `parity drift` and `parity baseline record` and read by `parity trend`.
//
// Appends are safe when several runs finish at once: each append takes an exclusive flock() on
// STORE/.history.lock, writes its records with one write() on an O_APPEND descriptor, fsyncs, and
// releases the lock. A process killed inside write() can still leave a torn last line (Linux stops a
// large write when a fatal signal is pending), so the next append, under the lock, first cuts the
// file back to its last '\n', and the reader skips lines that are not complete JSON records.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/compare/run_result.h"

namespace parity::report {

inline constexpr int kHistorySchemaVersion = 1;

struct HistoryRecord {
  int schema_version = kHistorySchemaVersion;
  std::string recorded_utc;       // when the record was appended
  std::string created_utc;        // when the run finished (summary.created_utc)
  std::string case_name;          // JSON "case"
  std::string pair;               // PairSummary::id
  std::string source;             // the run directory
  std::string parity_version;
  std::string libtorch_version;
  std::string device;
  bool pass = true;               // PairSummary::pass
  int64_t runs = 0;               // prompts run for this pair
  int64_t diverged_runs = 0;      // runs with a first divergence
  int64_t rounding_runs = 0;      // ... of kind rounding (older records: near_tie_runs)
  int64_t real_runs = 0;          // ... of kind real or precision_failure
  std::optional<int64_t> earliest_divergence_step;  // min over runs; null when none diverged
  double mean_kl = 0;             // PairSummary::mean_kl
  double max_kl = 0;              // PairSummary::max_kl
  double p99_kl = 0;              // max over runs of metrics.p99_kl
  double max_abs_logit_diff = 0;  // max over runs
  double top1_agreement = 1;      // PairSummary::top1_agreement
  // Drift verdict against the baseline when the record came from `parity drift`: "ok", "drift";
  // "recorded" from `parity baseline record` (no comparison).
  std::string drift = "recorded";
  std::vector<std::string> moved;  // metrics whose gate tripped for this pair
};

nlohmann::json ToJson(const HistoryRecord& record);
// Throws InputError naming `source` when a required field is missing or has the wrong type.
HistoryRecord HistoryRecordFromJson(const nlohmann::json& json, const std::string& source);

// One record per pair of the summary, with recorded_utc = now and drift = "recorded".
std::vector<HistoryRecord> RecordsFromSummary(const compare::Summary& summary,
                                              const std::string& source);

// Appends the records (one line each) under the store's lock, creating the store when missing.
void AppendHistory(const std::string& history_path, const std::string& lock_path,
                   const std::vector<HistoryRecord>& records);

struct HistoryRead {
  std::vector<HistoryRecord> records;  // in file order
  int64_t skipped_lines = 0;           // torn or malformed lines that were skipped
};
// Reads history.jsonl; a missing file gives no records.
HistoryRead ReadHistory(const std::string& history_path);

}  // namespace parity::report
