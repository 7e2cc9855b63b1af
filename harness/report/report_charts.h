// The charts of a report, as ChartSpecs built from the run data (svg_chart.h draws them). Building
// and drawing are separate so tests can check what a chart shows (series, divergence marker,
// near-tie points) without parsing SVG.
#pragma once

#include <vector>

#include "harness/compare/run_result.h"
#include "harness/report/localize_view.h"
#include "harness/report/svg_chart.h"

namespace parity::report {

using RunSteps = std::vector<const compare::StepRecord*>;

// KL(p||q) and KL(q||p) per step, log scale; first divergence marked; steps whose contexts differ
// (free mode after the divergence) shaded.
ChartSpec KlChart(const compare::Run& run, const RunSteps& steps);
// max |Δlogit| and RMS Δlogit per step, log scale; same marks.
ChartSpec LogitDiffChart(const compare::Run& run, const RunSteps& steps);
// Each side's top-1 margin and the observed noise per step, log scale. Same-context steps whose
// smaller margin is within the noise (rounding alone could swap the top-1) are circled.
ChartSpec MarginChart(const compare::Run& run, const RunSteps& steps);
// Per-step error of each side against its FP64 run; nullopt-equivalent (empty series) without the
// oracle: check HasOracleSteps first.
bool HasOracleSteps(const RunSteps& steps);
ChartSpec OracleChart(const compare::Run& run, const RunSteps& steps);
// Fraction of a pair's prompts still identical after step t.
ChartSpec IdenticalFractionChart(const compare::PairSummary& pair);
// Relative RMS and max abs error per observation point (x = point index), first departure marked.
ChartSpec LocalizeChart(const LocalizeView& view);

}  // namespace parity::report
