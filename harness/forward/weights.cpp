#include "harness/forward/weights.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/core/error.h"

namespace parity::forward {

void Weights::Set(model::Role role, int64_t layer, at::Tensor tensor) {
  tensors[{role, layer}] = std::move(tensor);
}

void Weights::Set(model::Role role, int64_t layer, int64_t expert, at::Tensor tensor) {
  if (expert < 0) return Set(role, layer, std::move(tensor));
  expert_tensors[{role, layer, expert}] = std::move(tensor);
}

bool Weights::Has(model::Role role, int64_t layer, int64_t expert) const {
  if (expert >= 0) {
    auto found = expert_tensors.find({role, layer, expert});
    return found != expert_tensors.end() && found->second.defined();
  }
  auto found = tensors.find({role, layer});
  return found != tensors.end() && found->second.defined();
}

const at::Tensor& Weights::Get(model::Role role, int64_t layer, int64_t expert) const {
  if (!Has(role, layer, expert)) {
    throw InputError(fmt::format("weights: no tensor for role '{}'{}{}", model::RoleName(role),
                                 layer >= 0 ? fmt::format(" of layer {}", layer) : "",
                                 expert >= 0 ? fmt::format(" expert {}", expert) : ""));
  }
  if (expert >= 0) return expert_tensors.at({role, layer, expert});
  return tensors.at({role, layer});
}

model::ModelConfig WithExpertLayoutOf(const model::ModelConfig& config, const Weights& weights) {
  model::ModelConfig adapted = config;
  if (config.expert_layout != model::ExpertLayout::kPerExpert) return adapted;
  for (const auto& [key, tensor] : weights.tensors) {
    if (key.first == model::Role::kExpertsGateUp) adapted.expert_layout = model::ExpertLayout::kFused;
  }
  return adapted;
}

void CheckWeights(const model::ModelConfig& config, const Weights& weights) {
  std::vector<std::string> problems;
  for (const model::ExpectedTensor& expected : model::ExpectedTensors(config)) {
    const bool optional = !expected.required ||
                          (expected.role == model::Role::kLmHead && config.tie_word_embeddings);
    const std::string what =
        fmt::format("tensor '{}' ({}{}{})", expected.name, model::RoleName(expected.role),
                    expected.layer >= 0 ? fmt::format(", layer {}", expected.layer) : "",
                    expected.expert >= 0 ? fmt::format(", expert {}", expected.expert) : "");
    if (!weights.Has(expected.role, expected.layer, expected.expert)) {
      if (!optional) problems.push_back(what + ": missing");
      continue;
    }
    const at::Tensor& tensor = weights.Get(expected.role, expected.layer, expected.expert);
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
