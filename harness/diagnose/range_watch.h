// Overflow and saturation watch of localize: at every observed point of a run (embedding, each
// layer's attention and MLP blocks, final norm, logits), the largest magnitude over every position
// against the largest finite value of the precision that point is held in under the side's policy
// (FP16 65504), inf/NaN counts, and the first point where values leave the range. The watch itself
// (its fields and rules) is compare's (RangeWatch in compare/run_result.h, built by
// compare/overflow.h), so that compare and localize report one thing.
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "harness/compare/range_watch.h"
#include "harness/compare/run_result.h"
#include "harness/forward/precision_policy.h"

namespace parity::diagnose {

struct PointSequence;  // localize.h: one observed point at every position

using compare::RangePoint;
using compare::RangeWatch;
using compare::DescribeRangeWatch;

// The watch over one run's observations (ObserveAllPositions) under `policy`; a point is
// saturating at `saturation_fraction` of its range or above. Steps are not known here (localize
// observes one teacher-forced sequence): first_out_of_range_step stays null.
RangeWatch WatchRange(const std::vector<PointSequence>& values,
                      const forward::PrecisionPolicy& policy,
                      double saturation_fraction = compare::kDefaultSaturationFraction);

nlohmann::ordered_json RangeWatchToJson(const RangeWatch& watch);

}  // namespace parity::diagnose
