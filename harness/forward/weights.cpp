#include "harness/forward/weights.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/core/error.h"

namespace parity::forward {

void Weights::Set(model::Role role, int64_t layer, at::Tensor tensor) {
  tensors[{role, layer}] = std::move(tensor);
}

bool Weights::Has(model::Role role, int64_t layer) const {
  auto found = tensors.find({role, layer});
  return found != tensors.end() && found->second.defined();
}

const at::Tensor& Weights::Get(model::Role role, int64_t layer) const {
  auto found = tensors.find({role, layer});
  if (found == tensors.end() || !found->second.defined()) {
    throw InputError(fmt::format("weights: no tensor for role '{}'{}", model::RoleName(role),
                                 layer >= 0 ? fmt::format(" of layer {}", layer) : ""));
  }
  return found->second;
}

void CheckWeights(const model::ModelConfig& config, const Weights& weights) {
  std::vector<std::string> problems;
  for (const model::ExpectedTensor& expected : model::ExpectedTensors(config)) {
    const bool optional = !expected.required ||
                          (expected.role == model::Role::kLmHead && config.tie_word_embeddings);
    const std::string what =
        fmt::format("tensor '{}' ({}{})", expected.name, model::RoleName(expected.role),
                    expected.layer >= 0 ? fmt::format(", layer {}", expected.layer) : "");
    if (!weights.Has(expected.role, expected.layer)) {
      if (!optional) problems.push_back(what + ": missing");
      continue;
    }
    const at::Tensor& tensor = weights.Get(expected.role, expected.layer);
    if (tensor.sizes().vec() != expected.shape) {
      problems.push_back(fmt::format("{}: expected [{}], got [{}]", what,
                                     fmt::join(expected.shape, ", "),
                                     fmt::join(tensor.sizes(), ", ")));
    } else if (!tensor.is_floating_point()) {
      problems.push_back(fmt::format("{}: expected a floating-point dtype, got {}", what,
                                     c10::toString(tensor.scalar_type())));
    }
  }
  if (!problems.empty()) {
    throw InputError(fmt::format("{} weight problem(s) for {} (hidden {}, {} layers):\n  {}",
                                 problems.size(), model::ArchitectureName(config.arch),
                                 config.hidden_size, config.num_layers,
                                 fmt::join(problems, "\n  ")));
  }
}

}  // namespace parity::forward
