// Line charts as inline SVG, generated here so that a report is one self-contained file that works
// offline, needs no JavaScript library and can be checked in a test (the coordinates are plain
// numbers in `points` attributes).
//
//   ChartSpec spec;
//   spec.title = "KL(p||q) per step";
//   spec.log_y = true;
//   spec.series.push_back({"kl", "#1f77b4", {0, 1, 2}, {1e-9, 2e-9, 5e-4}});
//   spec.markers.push_back({2, "first divergence"});
//   std::string svg = RenderLineChart(spec);
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace parity::report {

// One line. x and y have the same length; a non-finite y breaks the line (no point drawn).
struct ChartSeries {
  std::string name;           // legend text
  std::string color;          // CSS colour of the stroke
  std::vector<double> x;
  std::vector<double> y;
  bool dashed = false;
};

// A vertical line across the plot at `x`, e.g. the first-divergence step.
struct ChartMarker {
  double x = 0;
  std::string label;
  std::string color = "#c0392b";
};

// A shaded x range [x_begin, x_end], e.g. the steps whose contexts differ.
struct ChartBand {
  double x_begin = 0;
  double x_end = 0;
  std::string label;          // shown on hover
  std::string color = "#ececec";
};

// A highlighted point (circle), e.g. a step whose margin is within the noise.
struct ChartPoint {
  double x = 0;
  double y = 0;
  std::string title;          // shown on hover
  std::string color = "#c0392b";
};

struct ChartSpec {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_y = false;         // log10 axis; values <= 0 are drawn on the bottom edge
  int width = 600;            // pixels (the SVG also scales with its container)
  int height = 240;
  std::vector<ChartSeries> series;
  std::vector<ChartMarker> markers;
  std::vector<ChartBand> bands;
  std::vector<ChartPoint> points;
  // Axis ranges; from the data when absent.
  std::optional<double> x_min, x_max, y_min, y_max;
  // Series with at most this many points also get a hoverable circle per point.
  size_t max_points_with_dots = 160;
};

// Renders the chart as one <svg> element with class "chart": a <polyline class="series"> per
// unbroken piece of each series (data-series="<name>"), <line class="marker">, <rect class="band">,
// <circle class="point">, axes with ticks, a legend. Every text is HTML-escaped. A chart without
// any finite value shows "no data" instead of lines.
std::string RenderLineChart(const ChartSpec& spec);

// The pixel geometry RenderLineChart uses, exposed for tests: plot area and axis mapping.
struct ChartGeometry {
  double left, top, right, bottom;   // plot area in SVG pixels
  double x_lo, x_hi, y_lo, y_hi;     // data range (y in log10 units when log_y)
  bool log_y = false;
  double MapX(double x) const;
  double MapY(double y) const;       // y in data units (log10 applied here when log_y)
};
ChartGeometry ComputeGeometry(const ChartSpec& spec);

}  // namespace parity::report
