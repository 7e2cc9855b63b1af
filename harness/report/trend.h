// `parity trend`: one self-contained HTML page with the history of each metric per case and pair
// (from STORE/history.jsonl): KL (mean, p99, max), same-top-1 rate, earliest divergence step and
// max |Δlogit| over the recorded runs, drift and failures marked, and a table of the latest records.
#pragma once

#include <string>
#include <vector>

#include "harness/report/history.h"

namespace parity::report {

// `skipped_lines` (torn or malformed history lines) is mentioned on the page when non-zero.
std::string RenderTrendHtml(const std::vector<HistoryRecord>& records, int64_t skipped_lines,
                            const std::string& store);

}  // namespace parity::report
