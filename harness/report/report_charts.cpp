#include "harness/report/report_charts.h"

#include <algorithm>
#include <map>

#include <cmath>

#include <fmt/format.h>

#include "harness/report/run_view.h"
#include "harness/report/text_util.h"

namespace parity::report {
namespace {

constexpr const char* kBlue = "#1f77b4";
constexpr const char* kOrange = "#e67e22";
constexpr const char* kGrey = "#7f8c8d";
constexpr int kRunChartWidth = 560;  // two per row in the page's 1260 px column

ChartSeries StepSeries(const std::string& name, const char* color, const RunSteps& steps,
                       double compare::StepRecord::*field, bool dashed = false) {
  ChartSeries series{name, color, {}, {}, dashed};
  for (const compare::StepRecord* step : steps) {
    series.x.push_back(static_cast<double>(step->step));
    series.y.push_back(step->*field);
  }
  return series;
}

// Divergence marker and "different contexts" bands shared by the per-step charts.
void AddStepMarks(const compare::Run& run, const RunSteps& steps, ChartSpec* spec) {
  if (run.first_divergence) {
    spec->markers.push_back({static_cast<double>(run.first_divergence->step),
                             fmt::format("first divergence (step {}, {})",
                                         run.first_divergence->step, run.first_divergence->kind)});
  }
  for (size_t i = 0; i < steps.size();) {
    if (steps[i]->same_context) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j + 1 < steps.size() && !steps[j + 1]->same_context) ++j;
    spec->bands.push_back({static_cast<double>(steps[i]->step) - 0.5,
                           static_cast<double>(steps[j]->step) + 0.5,
                           "contexts differ: the models read different tokens here"});
    i = j + 1;
  }
  if (!steps.empty()) {
    spec->x_min = static_cast<double>(steps.front()->step);
    spec->x_max = std::max(static_cast<double>(steps.back()->step), *spec->x_min + 1);
  }
}

}  // namespace

ChartSpec KlChart(const compare::Run& run, const RunSteps& steps) {
  ChartSpec spec;
  spec.width = kRunChartWidth;
  spec.title = "KL divergence per step (nats, log scale)";
  spec.x_label = "decode step";
  spec.y_label = "KL";
  spec.log_y = true;
  spec.series.push_back(StepSeries("KL(p\u2016q)", kBlue, steps, &compare::StepRecord::kl));
  spec.series.push_back(
      StepSeries("KL(q\u2016p)", kOrange, steps, &compare::StepRecord::kl_reverse, true));
  AddStepMarks(run, steps, &spec);
  return spec;
}

ChartSpec LogitDiffChart(const compare::Run& run, const RunSteps& steps) {
  ChartSpec spec;
  spec.width = kRunChartWidth;
  spec.title = "Logit difference per step (log scale)";
  spec.x_label = "decode step";
  spec.y_label = "|\u0394logit|";
  spec.log_y = true;
  spec.series.push_back(
      StepSeries("max |\u0394logit|", kBlue, steps, &compare::StepRecord::max_abs_diff));
  spec.series.push_back(
      StepSeries("RMS \u0394logit", kOrange, steps, &compare::StepRecord::rms_diff, true));
  AddStepMarks(run, steps, &spec);
  return spec;
}

ChartSpec MarginChart(const compare::Run& run, const RunSteps& steps) {
  ChartSpec spec;
  spec.width = kRunChartWidth;
  spec.title = "Top-1 margin vs observed noise (log scale; circles: margin \u2264 noise)";
  spec.x_label = "decode step";
  spec.y_label = "logit units";
  spec.log_y = true;
  spec.series.push_back(StepSeries("margin A", kBlue, steps, &compare::StepRecord::margin_a));
  spec.series.push_back(StepSeries("margin B", kOrange, steps, &compare::StepRecord::margin_b));
  spec.series.push_back(StepSeries("noise", kGrey, steps, &compare::StepRecord::noise, true));
  for (const compare::StepRecord* step : steps) {
    // After a free-mode divergence the two models read different tokens: their noise compares
    // unlike distributions, so only same-context steps can be near-ties.
    if (!step->same_context || !MarginWithinNoise(*step)) continue;
    double margin = std::min(step->margin_a, step->margin_b);
    spec.points.push_back({static_cast<double>(step->step), margin,
                           fmt::format("step {}: margin {} \u2264 noise {} (near-tie)", step->step,
                                       FormatNumber(margin), FormatNumber(step->noise))});
  }
  AddStepMarks(run, steps, &spec);
  return spec;
}

bool HasOracleSteps(const RunSteps& steps) {
  for (const compare::StepRecord* step : steps) {
    if (step->err_a_fp64 || step->err_b_fp64) return true;
  }
  return false;
}

ChartSpec OracleChart(const compare::Run& run, const RunSteps& steps) {
  ChartSpec spec;
  spec.width = kRunChartWidth;
  spec.title = "Error against the FP64 run per step (RMS, log scale)";
  spec.x_label = "decode step";
  spec.y_label = "RMS error";
  spec.log_y = true;
  ChartSeries a{"A vs its FP64", kBlue, {}, {}, false};
  ChartSeries b{"B vs its FP64", kOrange, {}, {}, false};
  for (const compare::StepRecord* step : steps) {
    a.x.push_back(static_cast<double>(step->step));
    a.y.push_back(step->err_a_fp64.value_or(NAN));
    b.x.push_back(static_cast<double>(step->step));
    b.y.push_back(step->err_b_fp64.value_or(NAN));
  }
  spec.series = {a, b};
  AddStepMarks(run, steps, &spec);
  return spec;
}

ChartSpec IdenticalFractionChart(const compare::PairSummary& pair) {
  ChartSpec spec;
  spec.width = 520;
  spec.height = 200;
  spec.title = "Prompts whose outputs are still identical after step t";
  spec.x_label = "decode step t";
  spec.y_label = "fraction";
  spec.y_min = 0;
  spec.y_max = 1.05;
  ChartSeries series{"identical", kBlue, {}, {}, false};
  for (size_t t = 0; t < pair.identical_fraction.size(); ++t) {
    series.x.push_back(static_cast<double>(t));
    series.y.push_back(pair.identical_fraction[t]);
  }
  spec.series.push_back(series);
  return spec;
}

namespace {

// x of each observation point on a layer axis: 0 for what comes before the first decoder layer
// (embedding), i + 1 + k / n for the k-th of n points of decoder layer i, and one past the last
// layer for what comes after (final norm, LM head).
std::vector<double> LayerAxis(const LocalizeView& view) {
  std::map<int64_t, std::vector<size_t>> by_layer;
  int64_t last_layer = -1;
  for (size_t i = 0; i < view.points.size(); ++i) {
    if (view.points[i].layer && *view.points[i].layer >= 0) {
      by_layer[*view.points[i].layer].push_back(i);
      last_layer = std::max(last_layer, *view.points[i].layer);
    }
  }
  std::vector<double> x(view.points.size(), 0.0);
  bool seen_layer = false;
  for (size_t i = 0; i < view.points.size(); ++i) {
    const auto& layer = view.points[i].layer;
    if (layer && *layer >= 0) {
      seen_layer = true;
      const auto& members = by_layer[*layer];
      const size_t k = std::find(members.begin(), members.end(), i) - members.begin();
      x[i] = static_cast<double>(*layer + 1) + static_cast<double>(k) / members.size();
    } else {
      x[i] = seen_layer ? static_cast<double>(last_layer + 2) : 0.0;
    }
  }
  return x;
}

}  // namespace

ChartSpec LocalizeChart(const LocalizeView& view) {
  ChartSpec spec;
  spec.title = "Error per observation point, input to output (log scale)";
  spec.x_label = "decoder layer + 1 (0 = embedding, last = final norm / head; sub-blocks between)";
  spec.y_label = "error";
  spec.log_y = true;
  spec.width = 760;
  ChartSeries rel{"relative RMS error", kBlue, {}, {}, false};
  ChartSeries abs{"max |error|", kOrange, {}, {}, true};
  const std::vector<double> x = LayerAxis(view);
  for (size_t i = 0; i < view.points.size(); ++i) {
    rel.x.push_back(x[i]);
    rel.y.push_back(view.points[i].rel_rms_error);
    abs.x.push_back(x[i]);
    abs.y.push_back(view.points[i].max_abs_error);
  }
  spec.series = {rel, abs};
  if (view.first_departure && view.first_departure->is_object()) {
    auto name = view.first_departure->find("name");
    if (name != view.first_departure->end() && name->is_string()) {
      for (size_t i = 0; i < view.points.size(); ++i) {
        if (view.points[i].name == name->get<std::string>()) {
          spec.markers.push_back({x[i], "first departure: " + view.points[i].name});
          break;
        }
      }
    }
  }
  return spec;
}

}  // namespace parity::report
