// Where a forward pass first leaves the finite range of its precision: the evidence for a
// precision_failure verdict when a side's logits hold inf or NaN. One observed forward pass over the
// tokens the side read; the first point (embedding, layer i attention/mlp, final norm, logits) whose
// values contain inf, NaN, or a magnitude above the precision's largest finite value (FP16 65504:
// on CPU FP16 is emulated in FP32 storage, so an overflow can show as a large finite FP32 value).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/forward/causal_lm.h"

namespace parity::compare {

// Largest finite value of `precision` (torch.finfo(dtype).max).
double LargestFinite(forward::Precision precision);
// The precision the values at an observed point are held in under `policy`: the module that wrote
// them (embedding; the residual stream of that layer for the attention and MLP blocks; the final
// norm; the LM head for the logits).
forward::Precision PrecisionAt(const forward::PrecisionPolicy& policy,
                               forward::ObservationPoint point, int64_t layer);

// "layer 3 mlp", "embedding", ... for the first point out of range over the whole sequence; null
// when every point stays in range.
std::optional<std::string> FindOverflowPoint(forward::CausalLM& model,
                                             const std::vector<int64_t>& tokens);

}  // namespace parity::compare
