// Overflow and saturation watch (RangeWatch, run_result.h): where a side's activations come close to,
// or leave, the finite range of the precision they are held in. Two users:
//  - compare (RangeRecorder / WatchSideRange): one observed forward pass over the tokens a side read
//    (its prompt and its input stream, teacher-forced: the same tokens at the same positions as its
//    decode steps), reducing each observed point on the device to two numbers per position, the
//    largest finite |x| and the count of inf/NaN ([T] each, no host synchronisation per point);
//    the host reads them once, after the pass. The decode loops themselves (the CPU loop, the CUDA
//    pipeline and its captured graphs) stay untouched.
//  - localize (diagnose/range_watch.h), from the values it already holds on the host.
// Both build the watch with AddRangePoint (range_watch.h), so the rules (out of range, saturating,
// firsts) are one.
//
// On CPU, FP16 is emulated in FP32 storage, rounded per op, so an overflow shows as inf after the op
// that made it; a finite value above the range can only come from a module at a wider precision.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "harness/compare/range_watch.h"
#include "harness/compare/run_result.h"
#include "harness/forward/causal_lm.h"

namespace parity::compare {

// Largest finite value of `precision` (torch.finfo(dtype).max).
double LargestFinite(forward::Precision precision);
// The precision the values at an observed point are held in under `policy`: the module that wrote
// them (embedding; the residual stream of that layer for the attention and MLP blocks; the final
// norm; the LM head for the logits).
forward::Precision PrecisionAt(const forward::PrecisionPolicy& policy,
                               forward::ObservationPoint point, int64_t layer);
// Whether any module of `policy` computes in FP16 (the range watch is on by default for such sides).
bool UsesFp16(const forward::PrecisionPolicy& policy);

// Records, during one forward pass, every observed point's per-position largest finite |x| and
// inf/NaN count, on the values' device. Finish() copies them to the host once and builds the watch.
class RangeRecorder {
 public:
  RangeRecorder();
  // The hook to hand to CausalLM::Forward (valid while the recorder lives).
  const forward::Observer& observer() const { return observer_; }
  // `positions`: T of the pass; `first_step_position`: the position whose logits are step 0 (the
  // prompt's last); position p counts as step max(0, p - first_step_position).
  RangeWatch Finish(const forward::PrecisionPolicy& policy, double saturation_fraction,
                    int64_t positions, int64_t first_step_position) const;

 private:
  struct Recorded {
    forward::ObservationPoint point;
    int64_t layer;
    at::Tensor max_abs;     // [T'] (T' = T, or 1 for last-position-only logits)
    at::Tensor non_finite;  // [T']
  };
  std::vector<Recorded> recorded_;
  forward::Observer observer_;
};

// The watch of one side: `model` (the side's own, at its policy) teacher-forced on `prompt` followed
// by the first steps - 1 tokens of `stream` (what it read up to its last step), one forward pass.
RangeWatch WatchSideRange(forward::CausalLM& model, const std::vector<int64_t>& prompt,
                          const std::vector<int64_t>& stream, int64_t steps,
                          double saturation_fraction);

// "layer 3 mlp", "embedding", ... for the first point out of range over the whole sequence; null
// when every point stays in range (the watch's first_out_of_range, for callers without a watch).
std::optional<std::string> FindOverflowPoint(forward::CausalLM& model,
                                             const std::vector<int64_t>& tokens);

}  // namespace parity::compare
