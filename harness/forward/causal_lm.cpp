// Loading a forward pass from a checkpoint directory: config.json -> ModelConfig, tensors by role
// through the architecture table, every problem collected before failing.
#include "harness/forward/causal_lm.h"

#include <set>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/core/error.h"
#include "harness/forward/weights.h"
#include "harness/io/checkpoint.h"
#include "harness/model/arch.h"

namespace parity::forward {

namespace {

bool IsFloatingDType(io::DType dtype) {
  return dtype == io::DType::kF64 || dtype == io::DType::kF32 || dtype == io::DType::kF16 ||
         dtype == io::DType::kBF16;
}

}  // namespace

Weights LoadWeights(const io::Checkpoint& checkpoint, const model::ModelConfig& original,
                    std::vector<std::string>* unused) {
  model::ModelConfig config = original;
  // MoE experts stored fused (transformers 5) rather than one by one: the checkpoint decides.
  if (config.num_experts > 0 && config.expert_layout == model::ExpertLayout::kPerExpert) {
    for (int64_t layer = 0; layer < config.num_layers; ++layer) {
      if (config.IsMoeLayer(layer) &&
          checkpoint.Contains(model::TensorName(config, model::Role::kExpertsGateUp, layer))) {
        config.expert_layout = model::ExpertLayout::kFused;
        break;
      }
    }
  }
  Weights weights;
  std::vector<std::string> problems;
  std::set<std::string> known;
  for (const model::ExpectedTensor& expected : model::ExpectedTensors(config)) {
    known.insert(expected.name);
    const bool optional = !expected.required ||
                          (expected.role == model::Role::kLmHead && config.tie_word_embeddings);
    if (!checkpoint.Contains(expected.name)) {
      if (!optional) {
        problems.push_back(fmt::format("tensor '{}': missing (expected shape [{}])", expected.name,
                                       fmt::join(expected.shape, ", ")));
      }
      continue;
    }
    const io::TensorInfo& info = checkpoint.Info(expected.name);
    const std::string& file = checkpoint.ShardOf(expected.name);
    if (info.shape != expected.shape) {
      problems.push_back(fmt::format("tensor '{}': expected [{}], got [{}] (file {})",
                                     expected.name, fmt::join(expected.shape, ", "),
                                     fmt::join(info.shape, ", "), file));
      continue;
    }
    if (!IsFloatingDType(info.dtype)) {
      problems.push_back(fmt::format("tensor '{}': dtype {} is not supported, expected F32, F16, "
                                     "BF16 or F64 (file {})",
                                     expected.name, io::DTypeName(info.dtype), file));
      continue;
    }
    weights.Set(expected.role, expected.layer, expected.expert, checkpoint.Get(expected.name));
  }
  if (!problems.empty()) {
    throw InputError(fmt::format("checkpoint {}: {} tensor problem(s) for {}:\n  {}",
                                 checkpoint.dir(), problems.size(),
                                 model::ArchitectureName(config.arch),
                                 fmt::join(problems, "\n  ")));
  }
  if (unused != nullptr) {
    unused->clear();
    for (const std::string& name : checkpoint.names()) {
      if (!known.count(name)) unused->push_back(name);
    }
  }
  return weights;
}

std::unique_ptr<CausalLM> LoadCausalLM(const io::Checkpoint& checkpoint, const Numerics& numerics,
                                       const Variants* variants, const Placement* placement) {
  const model::ModelConfig config =
      model::ParseConfig(checkpoint.config_json(), checkpoint.config_source());
  const Weights weights = LoadWeights(checkpoint, config);
  return MakeCausalLM(config, weights, numerics, variants, placement);
}

}  // namespace parity::forward
