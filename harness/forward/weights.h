// The weights a forward pass needs, by role and layer (never by Hugging Face name), plus loading them
// from a checkpoint through the architecture table. Tests fill a Weights directly, without files.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/Tensor.h>

#include "harness/model/arch.h"
#include "harness/model/config.h"

namespace parity::io {
class Checkpoint;
}

namespace parity::forward {

struct Weights {
  // (role, layer) -> tensor in the checkpoint's dtype, as stored (shapes as model::ExpectedShape);
  // layer is -1 for global roles (embedding, final norm, LM head).
  std::map<std::pair<model::Role, int64_t>, at::Tensor> tensors;
  // Per-expert tensors (kExpertGate/Up/Down): (role, layer, expert) -> tensor.
  std::map<std::tuple<model::Role, int64_t, int64_t>, at::Tensor> expert_tensors;

  void Set(model::Role role, int64_t layer, at::Tensor tensor);
  void Set(model::Role role, int64_t layer, int64_t expert, at::Tensor tensor);
  bool Has(model::Role role, int64_t layer = -1, int64_t expert = -1) const;
  // Throws InputError naming the role, layer (and expert) when absent.
  const at::Tensor& Get(model::Role role, int64_t layer = -1, int64_t expert = -1) const;
};

// `config` with its expert layout set to what `weights` holds (fused tensors or one per expert),
// for MoE models whose config alone cannot say.
model::ModelConfig WithExpertLayoutOf(const model::ModelConfig& config, const Weights& weights);

// Checks that `weights` holds every tensor `config`'s architecture needs with its expected shape
// (the LM head may be absent when tie_word_embeddings is set). Throws one InputError listing every
// problem, each naming the role, layer, expected and actual shape.
void CheckWeights(const model::ModelConfig& config, const Weights& weights);

// Reads every tensor of the architecture's table from `checkpoint` (views of the mapped files, not
// copies). Collects all problems (missing required tensors, wrong shapes, non-floating dtypes) and
// throws one InputError listing them, each with the tensor's name and file. Names in the checkpoint
// that the table does not know are returned in `unused` when given (e.g. rotary inv_freq buffers).
Weights LoadWeights(const io::Checkpoint& checkpoint, const model::ModelConfig& config,
                    std::vector<std::string>* unused = nullptr);

}  // namespace parity::forward
