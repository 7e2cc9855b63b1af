#include "harness/diagnose/range_watch.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "harness/compare/overflow.h"
#include "harness/diagnose/localize.h"

namespace parity::diagnose {

RangeWatch WatchRange(const std::vector<PointSequence>& values,
                      const forward::PrecisionPolicy& policy) {
  RangeWatch watch;
  watch.policy = policy.Text();
  for (const PointSequence& s : values) {
    RangePoint p;
    p.name = PointName(s.point, s.layer);
    const forward::Precision precision = compare::PrecisionAt(policy, s.point, s.layer);
    p.precision = forward::PrecisionName(precision);
    p.largest_finite = compare::LargestFinite(precision);
    const at::Tensor finite = at::isfinite(s.values);
    p.non_finite = s.values.numel() - finite.sum().item<int64_t>();
    const at::Tensor magnitudes = at::where(finite, s.values.abs(), at::zeros_like(s.values));
    p.max_abs = magnitudes.numel() > 0 ? magnitudes.max().item<double>() : 0.0;
    if (p.out_of_range() && !watch.first_out_of_range) watch.first_out_of_range = p.name;
    if (p.non_finite > 0 && !watch.first_non_finite) watch.first_non_finite = p.name;
    if (p.saturating() && !watch.first_saturating) watch.first_saturating = p.name;
    const double fraction = p.max_abs / p.largest_finite;
    if (fraction > watch.largest_fraction || !watch.largest_fraction_point) {
      watch.largest_fraction = fraction;
      watch.largest_fraction_point = p.name;
    }
    watch.points.push_back(p);
  }
  return watch;
}

nlohmann::ordered_json RangeWatchToJson(const RangeWatch& w) {
  auto or_null = [](const std::optional<std::string>& s) {
    return s ? nlohmann::ordered_json(*s) : nlohmann::ordered_json(nullptr);
  };
  nlohmann::ordered_json points = nlohmann::ordered_json::array();
  for (const RangePoint& p : w.points) {
    points.push_back({{"name", p.name},
                      {"precision", p.precision},
                      {"largest_finite", p.largest_finite},
                      {"max_abs", p.max_abs},
                      {"non_finite", p.non_finite},
                      {"out_of_range", p.out_of_range()},
                      {"saturating", p.saturating()}});
  }
  return {{"policy", w.policy},
          {"first_out_of_range", or_null(w.first_out_of_range)},
          {"first_non_finite", or_null(w.first_non_finite)},
          {"first_saturating", or_null(w.first_saturating)},
          {"largest_fraction_point", or_null(w.largest_fraction_point)},
          {"largest_fraction", w.largest_fraction},
          {"points", points}};
}

std::string DescribeRangeWatch(const std::string& side, const RangeWatch& w) {
  if (w.first_out_of_range) {
    return fmt::format("{} {}: out of range from {}{}", side, w.policy, *w.first_out_of_range,
                       w.first_non_finite ? fmt::format(" (first inf/NaN at {})", *w.first_non_finite)
                                          : std::string(" (finite values above the range)"));
  }
  if (w.first_saturating) {
    return fmt::format("{} {}: saturating from {} (within a factor 2 of the range); largest "
                       "{:.3g} of the range at {}", side, w.policy, *w.first_saturating,
                       w.largest_fraction, w.largest_fraction_point.value_or("-"));
  }
  double largest = 0;
  for (const RangePoint& p : w.points) {
    if (w.largest_fraction_point && p.name == *w.largest_fraction_point) largest = p.max_abs;
  }
  return fmt::format("{} {}: in range everywhere; closest at {}: |x| up to {:.3g}, {:.3g} of the "
                     "range", side, w.policy, w.largest_fraction_point.value_or("-"), largest,
                     w.largest_fraction);
}

}  // namespace parity::diagnose
