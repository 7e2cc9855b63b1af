#include "harness/diagnose/range_watch.h"

#include <ATen/ATen.h>

#include "harness/compare/overflow.h"
#include "harness/diagnose/localize.h"

namespace parity::diagnose {

RangeWatch WatchRange(const std::vector<PointSequence>& values,
                      const forward::PrecisionPolicy& policy, double saturation_fraction) {
  RangeWatch watch = compare::StartRangeWatch(policy, saturation_fraction);
  for (const PointSequence& s : values) {
    RangePoint p;
    p.name = PointName(s.point, s.layer);
    const forward::Precision precision = compare::PrecisionAt(policy, s.point, s.layer);
    p.precision = forward::PrecisionName(precision);
    p.largest_finite = compare::LargestFinite(precision);
    const at::Tensor finite = at::isfinite(s.values);
    p.non_finite = s.values.numel() - finite.sum().item<int64_t>();
    const at::Tensor magnitudes = s.values.abs().masked_fill(at::logical_not(finite), 0);
    p.max_abs = magnitudes.numel() > 0 ? magnitudes.max().item<double>() : 0.0;
    compare::AddRangePoint(watch, std::move(p));
  }
  return watch;
}

nlohmann::ordered_json RangeWatchToJson(const RangeWatch& w) {
  return nlohmann::ordered_json(compare::ToJson(w));
}

}  // namespace parity::diagnose
