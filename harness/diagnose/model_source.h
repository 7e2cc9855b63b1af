// Where diagnosis gets its models from. Diagnosis builds the same model several times (at the run
// precision, in FP64 for the oracle, with one implementation variant flipped), and large models must
// not all be in memory at once, so it takes a factory rather than a built model: a checkpoint
// directory (mapped once, cast on each build) or weights held in memory (tests, planted faults).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "harness/forward/causal_lm.h"
#include "harness/forward/numerics.h"
#include "harness/forward/weights.h"
#include "harness/model/config.h"

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

// A checkpoint directory (opened once; the tensors stay mapped while the source lives).
ModelSource CheckpointSource(const std::string& dir);
// Weights built in code (held by the source; tensors are shared, not copied).
ModelSource WeightsSource(const std::string& label, const model::ModelConfig& config,
                          const forward::Weights& weights);

// A prompt as the command lines take it: text (optionally wrapped in ChatML) tokenized with the
// tokenizer.model of the first of `dirs` that has one, or token ids given as "1,2,3".
struct PromptSpec {
  std::string text;
  bool chat = false;
  std::string token_ids;  // "1,2,3"; when non-empty, used instead of text
};
struct ResolvedPrompt {
  std::vector<int64_t> tokens;
  std::vector<int64_t> eos_ids;  // from the tokenizer's generation_config.json; empty without one
  // Token ids to text for outputs ("<17>" when no tokenizer is available).
  std::function<std::string(int64_t)> token_text;
};
// Throws InputError when the prompt is empty, the ids do not parse, or text needs a tokenizer that
// none of `dirs` has.
ResolvedPrompt ResolvePrompt(const PromptSpec& prompt, const std::vector<std::string>& dirs);

// Parses "1,2,3" (spaces allowed); throws InputError naming `what` otherwise.
std::vector<int64_t> ParseTokenIds(const std::string& text, const std::string& what);

}  // namespace parity::diagnose
