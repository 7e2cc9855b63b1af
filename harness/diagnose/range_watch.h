// Overflow and saturation watch: at every observed point of a run (embedding, each layer's attention
// and MLP blocks, final norm, logits), the largest magnitude over every position against the largest
// finite value of the precision that point is held in under the side's policy (FP16 65504), inf/NaN
// counts, and the first point where values leave the range. On CPU, FP16 is emulated in FP32
// storage, rounded per op, so an overflow shows as inf after the op that made it; a finite value
// above the range can only come from a module at a wider precision.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/forward/precision_policy.h"

namespace parity::diagnose {

struct PointSequence;  // localize.h: one observed point at every position

// A point is "saturating" when its largest magnitude is within this factor of the range (less than
// one binade of headroom: the next doubling overflows).
inline constexpr double kSaturationFactor = 0.5;

struct RangePoint {
  std::string name;            // "layer 5 mlp"
  std::string precision;       // the precision it is held in ("fp16")
  double largest_finite = 0;   // of that precision
  double max_abs = 0;          // largest finite magnitude over every position
  int64_t non_finite = 0;      // inf and NaN values over every position
  bool out_of_range() const { return non_finite > 0 || max_abs > largest_finite; }
  bool saturating() const { return max_abs > kSaturationFactor * largest_finite; }
};

struct RangeWatch {
  std::string policy;                           // the side's precision policy
  std::vector<RangePoint> points;               // forward order
  std::optional<std::string> first_out_of_range;  // first point with inf/NaN or |x| > range
  std::optional<std::string> first_non_finite;    // first point with inf/NaN
  std::optional<std::string> first_saturating;    // first point within kSaturationFactor of range
  std::optional<std::string> largest_fraction_point;  // where max_abs / range is largest
  double largest_fraction = 0;                    // that ratio
};

// The watch over one run's observations (ObserveAllPositions) under `policy`.
RangeWatch WatchRange(const std::vector<PointSequence>& values,
                      const forward::PrecisionPolicy& policy);

nlohmann::ordered_json RangeWatchToJson(const RangeWatch& watch);
// One line: "A fp16: out of range from layer 5 mlp (first inf/NaN there), ..." or
// "A bf16: in range everywhere, largest 3.1e+02 at layer 23 mlp (9e-37 of the range)".
std::string DescribeRangeWatch(const std::string& side, const RangeWatch& watch);

}  // namespace parity::diagnose
