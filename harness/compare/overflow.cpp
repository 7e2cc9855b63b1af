#include "harness/compare/overflow.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

namespace parity::compare {

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

std::optional<std::string> FindOverflowPoint(forward::CausalLM& model,
                                             const std::vector<int64_t>& tokens) {
  if (tokens.empty()) return std::nullopt;
  const forward::PrecisionPolicy& policy = model.numerics().policy;
  std::optional<std::string> first;
  forward::Observer observer = [&](const forward::Observation& o) {
    if (first) return;
    const double largest = LargestFinite(PrecisionAt(policy, o.point, o.layer));
    at::Tensor v = o.value.detach().to(at::kDouble);
    const bool bad = !v.isfinite().all().item<bool>() || v.abs().max().item<double>() > largest;
    if (!bad) return;
    const char* name = forward::ObservationPointName(o.point);
    first = o.layer < 0 ? std::string(name) : fmt::format("layer {} {}", o.layer, name);
  };
  at::Tensor ids = at::tensor(at::ArrayRef<int64_t>(tokens), at::kLong).view({1, -1});
  forward::KVCache cache;
  model.Forward(ids.to(model.numerics().device), cache, at::Tensor(), &observer);
  return first;
}

}  // namespace parity::compare
