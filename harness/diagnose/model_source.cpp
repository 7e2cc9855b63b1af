#include "harness/diagnose/model_source.h"

#include "harness/diagnose/recompute.h"

namespace parity::diagnose {
namespace {

// Applies the decode-loop variant (kv_cache) that the forward passes leave to their caller.
std::unique_ptr<forward::CausalLM> WithDecodeVariants(std::unique_ptr<forward::CausalLM> model,
                                                      const forward::Variants* variants) {
  if (variants != nullptr && !variants->kv_cache) {
    return std::make_unique<RecomputingLM>(std::move(model));
  }
  return model;
}

}  // namespace

std::unique_ptr<forward::CausalLM> ModelSource::Build(const forward::Numerics& numerics,
                                                      const forward::Variants* variants) const {
  return build(numerics, variants);
}

ModelSource StoreSource(std::shared_ptr<const session::StoredModel> model, const std::string& label) {
  ModelSource source;
  source.label = label;
  source.config = model->config;
  source.build = [model](const forward::Numerics& numerics, const forward::Variants* variants) {
    return WithDecodeVariants(forward::LoadCausalLM(*model->checkpoint, numerics, variants),
                              variants);
  };
  return source;
}

ModelSource CheckpointSource(const std::string& dir) {
  return StoreSource(session::OpenCheckpoint(dir), session::ModelLabel(dir));
}

ModelSource WeightsSource(const std::string& label, const model::ModelConfig& config,
                          const forward::Weights& weights) {
  auto held = std::make_shared<forward::Weights>(weights);
  ModelSource source;
  source.label = label;
  source.config = config;
  source.build = [config, held](const forward::Numerics& numerics,
                                const forward::Variants* variants) {
    return WithDecodeVariants(forward::MakeCausalLM(config, *held, numerics, variants), variants);
  };
  return source;
}

}  // namespace parity::diagnose
