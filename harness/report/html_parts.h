// Pieces of report.html that html.cpp assembles: one run's section, the settings section, badges
// and anchors. Internal to the report layer.
#pragma once

#include <string>

#include "harness/compare/run_result.h"

namespace parity::report {

// An id usable in an HTML anchor for any string: letters, digits, '-' and '_' kept, every other
// byte written as "." + two hex digits (so distinct strings give distinct ids).
std::string AnchorId(const std::string& text);

// <span class="badge pass">PASS</span> or the FAIL one.
std::string PassBadge(bool pass);

// <details class="run" id="run-..."> with the run's prompt, first divergence (context, both
// choices, near-tie analysis), both outputs side by side with the divergence highlighted, the token
// ids around it, per-step charts, metrics, oracle and gate failures. Opened when the run failed or
// diverged.
std::string RunSection(const compare::RunOutputs& outputs, const compare::Run& run);

// Settings, models and versions.
std::string SettingsSection(const compare::Summary& summary);

}  // namespace parity::report
