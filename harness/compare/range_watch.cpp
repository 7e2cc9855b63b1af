#include "harness/compare/range_watch.h"

#include <fmt/format.h>

namespace parity::compare {

RangeWatch StartRangeWatch(const forward::PrecisionPolicy& policy, double saturation_fraction) {
  RangeWatch watch;
  watch.policy = policy.Text();
  watch.saturation_fraction = saturation_fraction;
  return watch;
}

void AddRangePoint(RangeWatch& watch, RangePoint p) {
  p.saturating = p.max_abs >= watch.saturation_fraction * p.largest_finite;
  if (p.out_of_range() && !watch.first_out_of_range) watch.first_out_of_range = p.name;
  if (p.non_finite > 0 && !watch.first_non_finite) watch.first_non_finite = p.name;
  if (p.saturating && !watch.first_saturating) watch.first_saturating = p.name;
  if (p.fraction() > watch.largest_fraction || !watch.largest_fraction_point) {
    watch.largest_fraction = p.fraction();
    watch.largest_fraction_point = p.name;
  }
  watch.points.push_back(std::move(p));
}

std::optional<std::string> FirstOutOfRangeBy(const RangeWatch& watch, int64_t step) {
  for (const RangePoint& p : watch.points) {
    if (p.out_of_range() && p.first_out_of_range_step && *p.first_out_of_range_step <= step) {
      return p.name;
    }
  }
  return std::nullopt;
}

std::string DescribeRangeWatch(const std::string& side, const RangeWatch& w) {
  const RangePoint* largest = nullptr;
  const RangePoint* first_out = nullptr;
  for (const RangePoint& p : w.points) {
    if (w.largest_fraction_point && p.name == *w.largest_fraction_point) largest = &p;
    if (w.first_out_of_range && p.name == *w.first_out_of_range && !first_out) first_out = &p;
  }
  const std::string peak =
      largest ? fmt::format("largest |x| {:.3g} at {}, {:.3g} of the {} range {:.6g}",
                            largest->max_abs, largest->name, largest->fraction(),
                            largest->precision, largest->largest_finite)
              : std::string("no observed point");
  if (w.first_out_of_range) {
    const std::string step = first_out && first_out->first_out_of_range_step
                                 ? fmt::format(" at step {}", *first_out->first_out_of_range_step)
                                 : std::string();
    return fmt::format("{} {}: out of range from {}{}{}", side, w.policy, *w.first_out_of_range,
                       step,
                       w.first_non_finite
                           ? fmt::format(" (first inf/NaN at {})", *w.first_non_finite)
                           : std::string(" (finite values above the range)"));
  }
  if (w.first_saturating) {
    return fmt::format("{} {}: saturation risk from {} (>= {:.3g} of the range); {}", side,
                       w.policy, *w.first_saturating, w.saturation_fraction, peak);
  }
  return fmt::format("{} {}: in range everywhere; {}", side, w.policy, peak);
}

}  // namespace parity::compare
