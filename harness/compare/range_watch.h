// The overflow and saturation watch's rules, without libtorch (the reports and the verdicts use
// them): building a RangeWatch (run_result.h) point by point, querying it, describing it. The
// observation itself is in overflow.h (compare) and diagnose/range_watch.h (localize).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "harness/compare/run_result.h"
#include "harness/forward/precision_policy.h"

namespace parity::compare {

// The default "saturation risk" threshold: a point whose largest magnitude reaches half the range
// has less than one binade of headroom (the next doubling overflows).
inline constexpr double kDefaultSaturationFraction = 0.5;

// An empty watch for `policy` (points are added with AddRangePoint).
RangeWatch StartRangeWatch(const forward::PrecisionPolicy& policy, double saturation_fraction);
// Appends `point` (name, precision, largest_finite, max_abs, non_finite and the step set), marks it
// saturating, and updates the watch's firsts and its largest fraction.
void AddRangePoint(RangeWatch& watch, RangePoint point);

// The first point (forward order) that is out of range at a step <= `step`: where a side's numbers
// broke down before the step a verdict is about. Null when none (or no step is known).
std::optional<std::string> FirstOutOfRangeBy(const RangeWatch& watch, int64_t step);

// One line: "B fp16: out of range from layer 5 mlp at step 0 (first inf/NaN there)",
// "B fp16: saturation risk from layer 5 mlp (>= 50% of 65504); largest 0.71 of the range at ...",
// "A fp32: in range everywhere; closest at layer 11 mlp: |x| up to 45.2, 1.3e-37 of the range".
std::string DescribeRangeWatch(const std::string& side, const RangeWatch& watch);

}  // namespace parity::compare
