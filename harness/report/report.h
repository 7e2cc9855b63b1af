// Entry point of the report layer for the commands: `parity report DIR`, and the end of every
// `parity run` / `parity compare` / `parity merge`.
#pragma once

#include <string>

namespace parity::report {

struct ReportPaths {
  std::string markdown;  // DIR/report.md
  std::string html;      // DIR/report.html
};

// Reads DIR/summary.json and DIR/steps.jsonl (and DIR/localize.json when present) and writes
// DIR/report.md and DIR/report.html, each atomically. Throws InputError when the run outputs are
// missing or malformed (naming the file and field).
ReportPaths WriteReports(const std::string& dir);

}  // namespace parity::report
