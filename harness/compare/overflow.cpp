#include "harness/compare/overflow.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <fmt/format.h>

namespace parity::compare {
namespace {

std::string ObservedName(forward::ObservationPoint point, int64_t layer) {
  const char* name = forward::ObservationPointName(point);
  return layer < 0 ? std::string(name) : fmt::format("layer {} {}", layer, name);
}

}  // namespace

double LargestFinite(forward::Precision precision) {
  switch (precision) {
    case forward::Precision::kFP16: return 65504.0;
    case forward::Precision::kBF16: return 3.3895313892515355e38;
    case forward::Precision::kFP32: return 3.4028234663852886e38;
    case forward::Precision::kFP64: return 1.7976931348623157e308;
  }
  return 3.4028234663852886e38;
}

forward::Precision PrecisionAt(const forward::PrecisionPolicy& policy,
                               forward::ObservationPoint point, int64_t layer) {
  using forward::Module;
  switch (point) {
    case forward::ObservationPoint::kEmbedding: return policy.Of(Module::kEmbedding, -1);
    case forward::ObservationPoint::kAttentionBlock:
    case forward::ObservationPoint::kMlpBlock: return policy.Of(Module::kResidual, layer);
    case forward::ObservationPoint::kFinalNorm: return policy.Of(Module::kNorm, -1);
    case forward::ObservationPoint::kLogits: return policy.Of(Module::kLmHead, -1);
  }
  return policy.base;
}

bool UsesFp16(const forward::PrecisionPolicy& policy) {
  if (policy.base == forward::Precision::kFP16) return true;
  return std::any_of(policy.overrides.begin(), policy.overrides.end(),
                     [](const forward::PrecisionOverride& o) {
                       return o.precision == forward::Precision::kFP16;
                     });
}

RangeRecorder::RangeRecorder() {
  observer_ = [this](const forward::Observation& o) {
    // [B, T, D] (or [B, T', V]) -> per position over the batch and the features; stays on the
    // device: no .item(), nothing read back until Finish.
    const at::Tensor v = o.value.detach();
    const at::Tensor finite = at::isfinite(v);
    const at::Tensor magnitude = v.abs().masked_fill(at::logical_not(finite), 0);
    const int64_t positions = v.dim() >= 2 ? v.size(-2) : 1;
    const std::vector<int64_t> shape = {-1, positions, v.size(-1)};
    const std::vector<int64_t> reduce = {0, 2};
    Recorded r{o.point, o.layer, magnitude.reshape(shape).amax(reduce).to(at::kDouble),
               at::logical_not(finite).reshape(shape).sum(reduce).to(at::kDouble)};
    recorded_.push_back(std::move(r));
  };
}

RangeWatch RangeRecorder::Finish(const forward::PrecisionPolicy& policy, double saturation_fraction,
                                 int64_t positions, int64_t first_step_position) const {
  RangeWatch watch = StartRangeWatch(policy, saturation_fraction);
  if (recorded_.empty()) return watch;
  // One copy to the host for every point: [max_abs..., non_finite...] per point, concatenated.
  std::vector<at::Tensor> parts;
  for (const Recorded& r : recorded_) {
    parts.push_back(r.max_abs);
    parts.push_back(r.non_finite);
  }
  const at::Tensor host = at::cat(parts).to(at::kCPU).contiguous();
  const double* data = host.data_ptr<double>();
  for (const Recorded& r : recorded_) {
    const int64_t n = r.max_abs.numel();
    const double* max_abs = data;
    const double* non_finite = data + n;
    data += 2 * n;
    RangePoint p;
    p.name = ObservedName(r.point, r.layer);
    const forward::Precision precision = PrecisionAt(policy, r.point, r.layer);
    p.precision = forward::PrecisionName(precision);
    p.largest_finite = LargestFinite(precision);
    for (int64_t i = 0; i < n; ++i) {
      p.max_abs = std::max(p.max_abs, max_abs[i]);
      p.non_finite += static_cast<int64_t>(non_finite[i]);
      if (!p.first_out_of_range_step && (non_finite[i] > 0 || max_abs[i] > p.largest_finite)) {
        const int64_t position = positions - n + i;  // rows of a last-position-only point
        p.first_out_of_range_step = std::max<int64_t>(0, position - first_step_position);
      }
    }
    AddRangePoint(watch, std::move(p));
  }
  return watch;
}

RangeWatch WatchSideRange(forward::CausalLM& model, const std::vector<int64_t>& prompt,
                          const std::vector<int64_t>& stream, int64_t steps,
                          double saturation_fraction) {
  std::vector<int64_t> tokens = prompt;
  const size_t read = static_cast<size_t>(std::max<int64_t>(0, steps - 1));
  tokens.insert(tokens.end(), stream.begin(), stream.begin() + std::min(read, stream.size()));
  RangeRecorder recorder;
  if (!tokens.empty()) {
    at::Tensor ids = at::tensor(at::ArrayRef<int64_t>(tokens), at::kLong).view({1, -1});
    forward::KVCache cache;
    forward::Tf32Scope tf32(model.numerics());
    model.Forward(ids.to(model.numerics().device), cache, at::Tensor(), &recorder.observer());
  }
  return recorder.Finish(model.numerics().policy, saturation_fraction,
                         static_cast<int64_t>(tokens.size()),
                         static_cast<int64_t>(prompt.size()) - 1);
}

std::optional<std::string> FindOverflowPoint(forward::CausalLM& model,
                                             const std::vector<int64_t>& tokens) {
  if (tokens.empty()) return std::nullopt;
  RangeRecorder recorder;
  at::Tensor ids = at::tensor(at::ArrayRef<int64_t>(tokens), at::kLong).view({1, -1});
  forward::KVCache cache;
  forward::Tf32Scope tf32(model.numerics());
  model.Forward(ids.to(model.numerics().device), cache, at::Tensor(), &recorder.observer());
  return recorder
      .Finish(model.numerics().policy, kDefaultSaturationFraction,
              static_cast<int64_t>(tokens.size()), static_cast<int64_t>(tokens.size()) - 1)
      .first_out_of_range;
}

}  // namespace parity::compare
