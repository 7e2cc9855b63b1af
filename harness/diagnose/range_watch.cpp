#include "harness/diagnose/range_watch.h"

#include <ATen/ATen.h>

#include "harness/compare/overflow.h"
#include "harness/diagnose/localize.h"

namespace parity::diagnose {

RangeWatch WatchRange(const std::vector<PointSequence>& values,
                      const forward::PrecisionPolicy& policy, double saturation_fraction,
                      int64_t prompt_length) {
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
    if (prompt_length > 0 && p.out_of_range() && s.values.dim() == 2) {
      // The first row (position) holding inf/NaN or |x| above the range.
      const at::Tensor bad = at::logical_not(finite).any(1).logical_or(
          magnitudes.amax(1) > p.largest_finite);
      const int64_t row = bad.nonzero().min().item<int64_t>();
      p.first_out_of_range_step =
          std::max<int64_t>(0, s.first_position + row - (prompt_length - 1));
    }
    compare::AddRangePoint(watch, std::move(p));
  }
  return watch;
}

nlohmann::ordered_json RangeWatchToJson(const RangeWatch& w) {
  return nlohmann::ordered_json(compare::ToJson(w));
}

}  // namespace parity::diagnose
