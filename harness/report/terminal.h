// The terminal view of a comparison: a header with the settings, one row per run (pair, steps, first
// divergence with its kind and the two token texts, KL, top-1 rate, oracle), and the verdict.
#pragma once

#include <string>

#include "harness/compare/run_result.h"

namespace parity::report {

// Token text made visible on one line: "\n" -> "\\n", "\t" -> "\\t", "\r" -> "\\r", other control
// bytes -> "\\xNN"; everything else (UTF-8 included) unchanged.
std::string ShowText(const std::string& text);

// The whole table with header and verdict, ending in a newline.
std::string FormatSummaryTable(const compare::Summary& summary);

}  // namespace parity::report
