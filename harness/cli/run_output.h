// What `parity run` and `parity compare` share around compare::RunCase: the converter the suite uses
// for convert_from models, and the end of a run (outputs, table, reports).
#pragma once

#include <string>

#include "harness/compare/suite.h"

namespace parity::cli {

// Suite options writing converted models under `out_dir`, converting with the convert library.
compare::SuiteOptions SuiteWritingTo(const std::string& out_dir);

// Writes DIR/summary.json and DIR/steps.jsonl, prints the table, writes DIR/report.md and
// DIR/report.html, and returns the exit code (compare::FinishRun).
int FinishRunWithReports(const std::string& out_dir, const compare::RunOutputs& outputs);

}  // namespace parity::cli
