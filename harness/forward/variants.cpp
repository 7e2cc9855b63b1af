// Names, reference defaults and the model factory: what the rest of Parity needs from the forward
// layer without touching checkpoint files.
#include <fmt/format.h>

#include "harness/core/error.h"
#include "harness/forward/causal_lm.h"
#include "harness/forward/decoder.h"
#include "harness/forward/ops.h"
#include "harness/forward/placement.h"
#include "harness/model/arch_spec.h"

namespace parity::forward {

const char* ObservationPointName(ObservationPoint point) {
  switch (point) {
    case ObservationPoint::kEmbedding: return "embedding";
    case ObservationPoint::kAttentionBlock: return "attention";
    case ObservationPoint::kMlpBlock: return "mlp";
    case ObservationPoint::kFinalNorm: return "final_norm";
    case ObservationPoint::kLogits: return "logits";
  }
  return "?";
}

Variants ReferenceVariants(model::Architecture arch) {
  const model::ReferenceStack& reference = model::SpecOf(arch).reference;
  Variants variants;
  variants.fused_qkv = reference.fused_qkv;
  variants.sdpa_attention = reference.sdpa && ops::SdpaAvailable();
  variants.lm_head_all_positions = reference.lm_head_all_positions;
  variants.rotary_precomputed = reference.rotary_precomputed;
  variants.divide_scores_by_sqrt =
      model::SpecOf(arch).features.score_scale == model::ScoreScale::kDivideBySqrt;
  return variants;
}

std::string DescribeVariants(const Variants& variants) {
  return fmt::format(
      "fused_qkv={} sdpa={} lm_head_all_positions={} rotary_precomputed={} kv_cache={} "
      "divide_scores_by_sqrt={}",
      int(variants.fused_qkv), int(variants.sdpa_attention), int(variants.lm_head_all_positions),
      int(variants.rotary_precomputed), int(variants.kv_cache),
      int(variants.divide_scores_by_sqrt));
}

std::unique_ptr<CausalLM> MakeCausalLM(const model::ModelConfig& config, const Weights& weights,
                                       const Numerics& numerics, const Variants* variants,
                                       const Placement* placement) {
  const Variants chosen = variants != nullptr ? *variants : ReferenceVariants(config.arch);
  if (placement == nullptr) {
    return std::make_unique<Decoder>(config, weights, numerics, chosen,
                                     Placement::Single(numerics.device, config.num_layers));
  }
  placement->Validate(config.num_layers);
  if (placement->first_device().type() != numerics.device.type()) {
    throw InputError(fmt::format("placement '{}' for numerics on {}: one device type per model",
                                 placement->Key(), numerics.device.str()));
  }
  return std::make_unique<Decoder>(config, weights, numerics, chosen, *placement);
}

}  // namespace parity::forward
