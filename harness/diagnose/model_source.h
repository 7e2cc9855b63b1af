// Where diagnosis gets its models from. Diagnosis builds the same model several times (at the run
// precision, in FP64 for the oracle, with one implementation variant flipped), and large models must
// not all be in memory at once, so it takes a factory rather than a built model: a model of the
// session store (session/model_store.h: mapped once, cast on each build; the same store, conversion
// cache and checks as `run` and `compare`) or weights held in memory (tests, planted faults).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "harness/forward/causal_lm.h"
#include "harness/forward/numerics.h"
#include "harness/forward/weights.h"
#include "harness/model/config.h"
#include "harness/session/inputs.h"
#include "harness/session/model_store.h"

namespace parity::diagnose {

struct ModelSource {
  std::string label;            // for outputs: the directory name, or a test's name
  model::ModelConfig config;    // the model's config (its arch picks the reference variants)
  // Builds the forward pass at `numerics`; `variants` null means forward::ReferenceVariants(arch).
  // kv_cache = false in `variants` is honoured by wrapping the model in a RecomputingLM.
  std::function<std::unique_ptr<forward::CausalLM>(const forward::Numerics& numerics,
                                                   const forward::Variants* variants)>
      build;

  std::unique_ptr<forward::CausalLM> Build(const forward::Numerics& numerics,
                                           const forward::Variants* variants = nullptr) const;
};

// A model of the session store, labelled `label` in outputs (held by the source).
ModelSource StoreSource(std::shared_ptr<const session::StoredModel> model, const std::string& label);
// A checkpoint directory: StoreSource(session::OpenCheckpoint(dir), session::ModelLabel(dir)).
ModelSource CheckpointSource(const std::string& dir);
// Weights built in code (held by the source; tensors are shared, not copied).
ModelSource WeightsSource(const std::string& label, const model::ModelConfig& config,
                          const forward::Weights& weights);

// Prompts and token ids are parsed by the session layer, the same for every command.
using session::ParseTokenIds;
using session::PromptSpec;
using session::ResolvedPrompt;
using session::ResolvePrompt;

}  // namespace parity::diagnose
