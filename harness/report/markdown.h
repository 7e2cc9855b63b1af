// report.md: the short text to paste into a pull request or a chat: verdict with the gates used,
// one table row per pair, each run's first divergence with its context (newlines shown as ⏎), the
// localization's first departure when present, and the settings.
#pragma once

#include <optional>
#include <string>

#include "harness/compare/run_result.h"
#include "harness/report/diagnosis_view.h"
#include "harness/report/localize_view.h"

namespace parity::report {

std::string RenderMarkdown(const compare::RunOutputs& outputs,
                           const std::optional<LocalizeView>& localize,
                           const std::optional<DiagnosisView>& diagnosis = std::nullopt);

}  // namespace parity::report
