// report.html: one self-contained page (inline CSS, inline SVG charts, the run data embedded as
// JSON, a Content-Security-Policy that forbids every network load), readable offline. Sections:
// verdict with the gates used; per pair the identical-prefix curve; per run the two outputs side by
// side with the first divergence highlighted, its context and near-tie analysis, per-step charts of
// KL, |Δlogit| and margin vs noise; the per-layer error curve when DIR/localize.json exists; the
// settings, models and versions.
//
// The page carries two attributes on <html> for tests: data-errors (set by window.onerror to the
// first script error's message) and, once the page has run, data-ready="1" and data-charts="<number
// of chart SVGs>".
#pragma once

#include <optional>
#include <string>

#include "harness/compare/run_result.h"
#include "harness/report/diagnosis_view.h"
#include "harness/report/localize_view.h"

namespace parity::report {

// `diagnosis`: the weight explanations and explain sentences, shown after the localization.
std::string RenderHtml(const compare::RunOutputs& outputs,
                       const std::optional<LocalizeView>& localize,
                       const std::optional<DiagnosisView>& diagnosis = std::nullopt);

// Text safe inside <script type="application/json">: every '<' becomes \u003c (so neither
// "</script>" nor "<!--" can appear), as do U+2028 and U+2029 for good measure.
std::string JsonForScript(const nlohmann::json& json);

}  // namespace parity::report
