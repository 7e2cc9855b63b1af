// A baseline store: a directory holding, per case, the summary of the run accepted as the
// reference, plus the append-only history (history.h). Layout:
//
//   STORE/baselines/<case key>.json   {"saved_utc", "source", "summary": <summary.json>}
//   STORE/history.jsonl               one record per pair per recorded run (history.h)
//   STORE/.history.lock               flock() target serialising history appends
//
// The case key is the case name with every byte outside [A-Za-z0-9._-] (and a leading '.') written
// as %XX, so any name maps to one plain file name and distinct names never collide. Every write is
// atomic (temporary file + fsync + rename).
#pragma once

#include <optional>
#include <string>

#include "harness/compare/run_result.h"

namespace parity::report {

struct Baseline {
  std::string saved_utc;     // when it was saved
  std::string source;        // the run directory it was copied from
  compare::Summary summary;  // the run's summary.json
};

class BaselineStore {
 public:
  explicit BaselineStore(std::string root) : root_(std::move(root)) {}

  const std::string& root() const { return root_; }
  std::string BaselinePath(const std::string& case_name) const;
  std::string HistoryPath() const;
  std::string LockPath() const;

  bool Has(const std::string& case_name) const;
  // The stored baseline, or nullopt when there is none. Throws InputError when the file exists but
  // cannot be read (naming it).
  std::optional<Baseline> Load(const std::string& case_name) const;
  // Stores `summary` as its case's baseline (replacing any), atomically. Returns the path.
  std::string Save(const compare::Summary& summary, const std::string& source) const;

 private:
  std::string root_;
};

// "internlm2 tiny/1" -> "internlm2%20tiny%2F1"; throws InputError for an empty name.
std::string CaseKey(const std::string& case_name);

}  // namespace parity::report
