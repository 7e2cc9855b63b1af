#include "harness/report/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "harness/report/text_util.h"

namespace parity::report {
namespace {

constexpr double kLeft = 64, kRight = 16, kTop = 30, kBottom = 58;  // margins around the plot

std::string Px(double value) { return fmt::format("{:.1f}", value); }

// 1, 2 or 5 times a power of ten, the smallest such step >= raw.
double NiceStep(double raw) {
  double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double factor : {1.0, 2.0, 5.0, 10.0}) {
    if (factor * power >= raw * (1 - 1e-9)) return factor * power;
  }
  return 10 * power;
}

// Finite data range over all series (y in log10 units of the positive values when log_y).
struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  bool empty() const { return lo > hi; }
  void Add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
};

std::string TickLabel(double value) {
  if (std::fabs(value) < 1e-12) return "0";
  return FormatNumber(value);
}

}  // namespace

double ChartGeometry::MapX(double x) const {
  return left + (x - x_lo) / (x_hi - x_lo) * (right - left);
}

double ChartGeometry::MapY(double y) const {
  double v = y;
  if (log_y) v = y > 0 ? std::log10(y) : y_lo;  // non-positive values sit on the bottom edge
  v = std::clamp(v, y_lo, y_hi);
  return bottom - (v - y_lo) / (y_hi - y_lo) * (bottom - top);
}

ChartGeometry ComputeGeometry(const ChartSpec& spec) {
  ChartGeometry g{};
  g.left = kLeft;
  g.top = kTop;
  g.right = spec.width - kRight;
  g.bottom = spec.height - kBottom;
  g.log_y = spec.log_y;

  Range xs, ys;
  for (const ChartSeries& s : spec.series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i])) continue;
      xs.Add(s.x[i]);
      if (!std::isfinite(s.y[i])) continue;
      if (spec.log_y) {
        if (s.y[i] > 0) ys.Add(std::log10(s.y[i]));
      } else {
        ys.Add(s.y[i]);
      }
    }
  }
  for (const ChartMarker& m : spec.markers) xs.Add(m.x);
  if (xs.empty()) xs = Range{0, 1};
  g.x_lo = spec.x_min.value_or(xs.lo);
  g.x_hi = spec.x_max.value_or(xs.hi);
  if (!(g.x_hi > g.x_lo)) {  // a single x: centre it
    g.x_lo -= 0.5;
    g.x_hi += 0.5;
  }

  if (spec.log_y) {
    if (ys.empty()) ys = Range{-12, 0};
    g.y_lo = spec.y_min && *spec.y_min > 0 ? std::log10(*spec.y_min) : std::floor(ys.lo);
    g.y_hi = spec.y_max && *spec.y_max > 0 ? std::log10(*spec.y_max) : std::ceil(ys.hi);
    if (!(g.y_hi > g.y_lo)) g.y_hi = g.y_lo + 1;
  } else {
    if (ys.empty()) ys = Range{0, 1};
    double lo = spec.y_min.value_or(std::min(ys.lo, 0.0));  // linear charts start at 0 or below
    double hi = spec.y_max.value_or(ys.hi);
    if (!(hi > lo)) hi = lo + (lo == 0 ? 1 : std::fabs(lo) * 0.1);
    if (!spec.y_max) hi += (hi - lo) * 0.05;  // headroom so the top line is not on the frame
    g.y_lo = lo;
    g.y_hi = hi;
  }
  return g;
}

std::string RenderLineChart(const ChartSpec& spec) {
  ChartGeometry g = ComputeGeometry(spec);
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 {0} {1}\" "
      "width=\"{0}\" height=\"{1}\" role=\"img\" aria-label=\"{2}\">\n<title>{2}</title>\n",
      spec.width, spec.height, HtmlEscape(spec.title));
  out += fmt::format("<text class=\"chart-title\" x=\"{}\" y=\"18\">{}</text>\n", Px(g.left),
                     HtmlEscape(spec.title));
  out += fmt::format(
      "<rect class=\"plot\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#fff\" "
      "stroke=\"#999\"/>\n",
      Px(g.left), Px(g.top), Px(g.right - g.left), Px(g.bottom - g.top));

  for (const ChartBand& band : spec.bands) {
    double x0 = g.MapX(std::clamp(band.x_begin, g.x_lo, g.x_hi));
    double x1 = g.MapX(std::clamp(band.x_end, g.x_lo, g.x_hi));
    out += fmt::format(
        "<rect class=\"band\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\">"
        "<title>{}</title></rect>\n",
        Px(std::min(x0, x1)), Px(g.top), Px(std::fabs(x1 - x0)), Px(g.bottom - g.top),
        HtmlEscape(band.color), HtmlEscape(band.label));
  }

  // Y ticks and grid.
  std::vector<double> y_ticks;  // in axis units (log10 when log_y)
  if (spec.log_y) {
    double decades = g.y_hi - g.y_lo;
    double every = std::max(1.0, std::ceil(decades / 6));
    for (double d = std::ceil(g.y_lo); d <= g.y_hi + 1e-9; d += every) y_ticks.push_back(d);
  } else {
    double step = NiceStep((g.y_hi - g.y_lo) / 5);
    for (double v = std::ceil(g.y_lo / step) * step; v <= g.y_hi + step * 1e-9; v += step) {
      y_ticks.push_back(v);
    }
  }
  for (double tick : y_ticks) {
    double value = spec.log_y ? std::pow(10.0, tick) : tick;
    double y = g.MapY(value);
    std::string label = spec.log_y ? fmt::format("1e{}", static_cast<int>(std::lround(tick)))
                                   : TickLabel(value);
    out += fmt::format(
        "<line class=\"grid\" x1=\"{0}\" x2=\"{1}\" y1=\"{2}\" y2=\"{2}\" stroke=\"#e3e3e3\"/>"
        "<text class=\"tick\" x=\"{3}\" y=\"{4}\" text-anchor=\"end\">{5}</text>\n",
        Px(g.left), Px(g.right), Px(y), Px(g.left - 4), Px(y + 4), HtmlEscape(label));
  }
  // X ticks.
  double x_step = NiceStep(std::max((g.x_hi - g.x_lo) / 8, 1e-12));
  if (x_step < 1 && g.x_hi - g.x_lo >= 1) x_step = 1;  // steps and layers are integers
  for (double v = std::ceil(g.x_lo / x_step) * x_step; v <= g.x_hi + x_step * 1e-9; v += x_step) {
    double x = g.MapX(v);
    out += fmt::format(
        "<line class=\"xtick\" x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#999\"/>"
        "<text class=\"tick\" x=\"{0}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
        Px(x), Px(g.bottom), Px(g.bottom + 4), Px(g.bottom + 16), HtmlEscape(TickLabel(v)));
  }
  out += fmt::format("<text class=\"axis-label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                     Px((g.left + g.right) / 2), Px(g.bottom + 32), HtmlEscape(spec.x_label));
  out += fmt::format(
      "<text class=\"axis-label\" transform=\"translate(14 {}) rotate(-90)\" "
      "text-anchor=\"middle\">{}</text>\n",
      Px((g.top + g.bottom) / 2), HtmlEscape(spec.y_label));

  // Series.
  bool any_point = false;
  for (const ChartSeries& s : spec.series) {
    size_t n = std::min(s.x.size(), s.y.size());
    std::string dash = s.dashed ? " stroke-dasharray=\"5 3\"" : "";
    std::vector<std::string> pieces;
    std::string current;
    std::string dots;
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
        if (!current.empty()) pieces.push_back(std::move(current));
        current.clear();
        continue;
      }
      any_point = true;
      double x = g.MapX(s.x[i]), y = g.MapY(s.y[i]);
      if (!current.empty()) current += ' ';
      current += Px(x) + "," + Px(y);
      if (n <= spec.max_points_with_dots) {
        dots += fmt::format(
            "<circle class=\"dot\" cx=\"{}\" cy=\"{}\" r=\"2\" fill=\"{}\"><title>{}: x={} "
            "y={}</title></circle>",
            Px(x), Px(y), HtmlEscape(s.color), HtmlEscape(s.name), TickLabel(s.x[i]),
            HtmlEscape(FormatNumber(s.y[i])));
      }
    }
    if (!current.empty()) pieces.push_back(std::move(current));
    for (const std::string& piece : pieces) {
      out += fmt::format(
          "<polyline class=\"series\" data-series=\"{}\" points=\"{}\" fill=\"none\" "
          "stroke=\"{}\" stroke-width=\"1.6\"{}/>\n",
          HtmlEscape(s.name), piece, HtmlEscape(s.color), dash);
    }
    if (!dots.empty()) out += dots + "\n";
  }
  if (!any_point) {
    out += fmt::format("<text class=\"no-data\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">no data</text>\n",
                       Px((g.left + g.right) / 2), Px((g.top + g.bottom) / 2));
  }

  for (const ChartMarker& m : spec.markers) {
    if (m.x < g.x_lo || m.x > g.x_hi) continue;
    double x = g.MapX(m.x);
    out += fmt::format(
        "<line class=\"marker\" x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" stroke=\"{3}\" "
        "stroke-width=\"1.5\" stroke-dasharray=\"4 2\"><title>{4}</title></line>"
        "<text class=\"marker-label\" x=\"{5}\" y=\"{6}\" fill=\"{3}\">{4}</text>\n",
        Px(x), Px(g.top), Px(g.bottom), HtmlEscape(m.color), HtmlEscape(m.label), Px(x + 3),
        Px(g.top + 11));
  }
  for (const ChartPoint& p : spec.points) {
    if (!std::isfinite(p.x) || p.x < g.x_lo || p.x > g.x_hi) continue;
    out += fmt::format(
        "<circle class=\"point\" cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"none\" stroke=\"{}\" "
        "stroke-width=\"1.6\"><title>{}</title></circle>\n",
        Px(g.MapX(p.x)), Px(g.MapY(p.y)), HtmlEscape(p.color), HtmlEscape(p.title));
  }

  // Legend, one row under the x-axis label.
  double legend_x = g.left;
  double legend_y = spec.height - 8;
  for (const ChartSeries& s : spec.series) {
    out += fmt::format(
        "<line x1=\"{0}\" x2=\"{1}\" y1=\"{2}\" y2=\"{2}\" stroke=\"{3}\" stroke-width=\"2\"{4}/>"
        "<text class=\"legend\" x=\"{5}\" y=\"{6}\">{7}</text>\n",
        Px(legend_x), Px(legend_x + 18), Px(legend_y - 4), HtmlEscape(s.color),
        s.dashed ? " stroke-dasharray=\"5 3\"" : "", Px(legend_x + 22), Px(legend_y),
        HtmlEscape(s.name));
    legend_x += 30 + 7.0 * static_cast<double>(s.name.size());
  }
  out += "</svg>\n";
  return out;
}

}  // namespace parity::report
