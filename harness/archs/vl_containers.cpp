// Vision-language checkpoints read as their language model: where each keeps the text config and
// the text model's tensors, and which parts (vision tower, projector) are listed and ignored.
// For text-only input their text models are the plain families: Qwen2-VL's mrope and Qwen3-VL's
// interleaved mrope rotate all sections by the same position, and no visual features are injected.
#include "harness/model/arch_spec.h"

namespace parity::model {
namespace {

// Qwen2-VL / Qwen2.5-VL (and InternVLA-N1, built on Qwen2.5-VL): `model.layers.*`, `lm_head`
// beside `visual.*`; text fields at the top level (transformers 4) or in text_config (5).
ContainerSpec MakeQwen2Vl() {
  ContainerSpec spec;
  spec.model_types = {"qwen2_vl", "qwen2_5_vl", "internvla_n1"};
  spec.text_field = "text_config";
  spec.text_arch = "qwen2";
  spec.model_prefix = "model.";
  spec.ignored_prefixes = {"visual.", "model.visual."};
  return spec;
}

// Qwen3-VL: `model.language_model.*`, `lm_head`, `model.visual.*`.
ContainerSpec MakeQwen3Vl() {
  ContainerSpec spec;
  spec.model_types = {"qwen3_vl"};
  spec.text_field = "text_config";
  spec.text_arch = "qwen3";
  spec.model_prefix = "model.language_model.";
  spec.ignored_prefixes = {"model.visual."};
  return spec;
}

// Qwen3-VL-MoE: as Qwen3-VL, with experts fused as gate_up_proj [E, D, 2I] and down_proj [E, I, D]
// (used as x @ W, transposed against nn.Linear).
ContainerSpec MakeQwen3VlMoe() {
  ContainerSpec spec = MakeQwen3Vl();
  spec.model_types = {"qwen3_vl_moe"};
  spec.text_arch = "qwen3_moe";
  spec.expert_layout = ExpertLayout::kFusedTransposed;
  return spec;
}

// InternVL (internvl_chat): `language_model.model.*` + `language_model.lm_head` (Qwen2 / Llama
// inside) or the InternLM2 names + `language_model.output`; `vision_model.*`, `mlp1.*`. The text
// model's own config (with its model_type) is llm_config.
ContainerSpec MakeInternVl() {
  ContainerSpec spec;
  spec.model_types = {"internvl_chat"};
  spec.text_field = "llm_config";
  spec.model_prefix = "language_model.model.";
  spec.head_prefix = "language_model.";
  spec.ignored_prefixes = {"vision_model.", "mlp1."};
  return spec;
}

}  // namespace
PARITY_REGISTER_CONTAINER(MakeQwen2Vl);
PARITY_REGISTER_CONTAINER(MakeQwen3Vl);
PARITY_REGISTER_CONTAINER(MakeQwen3VlMoe);
PARITY_REGISTER_CONTAINER(MakeInternVl);
}  // namespace parity::model
