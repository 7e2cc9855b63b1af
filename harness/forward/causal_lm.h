// The interface of a forward pass. One decoder (decoder.h) runs every architecture from its
// description's block features; what differs between two reference code paths (InternLM2's packed
// wqkv and one GEMM with its remote code's split and score division vs HF's three projections, its
// rotary tables, LM head positions, attention kernel) stays visible as block features and as the
// Variants below, which diagnosis flips one at a time.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "harness/forward/numerics.h"
#include "harness/model/config.h"

namespace parity::io {
class Checkpoint;
}

namespace parity::forward {

struct Placement;  // placement.h: layer ranges per device

// Points the observation hook sees, in forward order.
enum class ObservationPoint {
  kEmbedding,      // hidden after the embedding lookup, layer -1
  kAttentionBlock, // residual stream after layer i's attention block (x + attn(norm(x)))
  kMlpBlock,       // residual stream after layer i's MLP block
  kFinalNorm,      // after the final RMSNorm, layer -1
  kLogits,         // logits as Forward returns them (FP32; FP64 for FP64 runs), layer -1
};
const char* ObservationPointName(ObservationPoint point);  // "embedding", "attention", "mlp"...

struct Observation {
  ObservationPoint point;
  int64_t layer;             // 0-based layer index as in the tensor names; -1 for global points
  const at::Tensor& value;   // [B, T, D] (or [B, T', V] for logits), in the run's storage dtype
                             // (logits: Numerics::logits_type)
};
// Called at every point when set, in forward order: embedding, then per layer attention and mlp,
// final norm, logits. Must not modify `value` (copy it to keep it). No cost when unset.
using Observer = std::function<void(const Observation&)>;

// Implementation choices that differ between reference stacks (diagnosis switches them one at a time).
struct Variants {
  bool fused_qkv = true;            // InternLM2: one GEMM with wqkv; false: three GEMMs on its split
  bool sdpa_attention = false;      // fused attention kernel (libtorch 2.x only; on 1.13 building a
                                    // model with it throws InputError "sdpa needs libtorch 2.x")
  bool lm_head_all_positions = true;// LM head over every position (InternLM2 remote code) vs last only
  bool rotary_precomputed = true;   // cos/sin tables precomputed in the run dtype (old InternLM2
                                    // code) vs computed per step in FP32 then cast (HF Llama). With
                                    // it go each code's rope-scaling arithmetic: linear scaling
                                    // divides t (InternLM2) or inv_freq (HF); dynamic NTK's base' in
                                    // double (InternLM2) or FP32 tensors (HF), from seq_len = keys
                                    // (InternLM2) or max(position) + 1 (HF). See rotary.h.
  bool kv_cache = true;             // false: recompute the whole prefix at every step (done by the
                                    // caller with a fresh KVCache; the model needs nothing else)
  bool divide_scores_by_sqrt = true;// eager attention scores / math.sqrt(d) (InternLM2) vs
                                    // scores * d ** -0.5 (HF Llama); the fused kernel ignores it
};
// The defaults each reference stack uses: InternLM2's remote code (fused, eager, all positions,
// precomputed rotary, scores divided by sqrt(d)) or HF Llama (split, last position only, per-step
// rotary, scores multiplied by d ** -0.5, and SDPA, which HF
// picks for the converted copy, whose config lost attn_implementation; SDPA only when this build
// has libtorch 2.x, else eager).
Variants ReferenceVariants(model::Architecture arch);
// "fused_qkv=1 sdpa=0 ..." for outputs.
std::string DescribeVariants(const Variants& variants);

// Keys and values of every layer, rotated keys as the references cache them. A default-constructed
// cache is empty; Forward sizes it on first use.
//
// kStatic (the default): per layer one preallocated buffer [B, H, capacity, d] holding the keys
// already repeated to the H query heads (HF's repeat_kv, applied once when a position is written
// instead of over the whole cache at every step), written in place at positions
// length .. length + T - 1; attention reads the live slice [:, :, :length + T]. The values attention
// reads are the same as kGrowing's, element for element and in the same GEMM shapes (only the batch
// stride differs), so the logits are bitwise the same (tests/kv_cache_test.cpp; on CUDA,
// `parity bench --check`). Capacity: `capacity_hint` positions at first use (prompt + new tokens,
// set by the decode loops), doubling when exceeded.
// kGrowing: the references' own scheme, kept as the reference the static layout is tested against:
// [B, kv_heads, T_cached, d] per layer, appended with at::cat at every step (HF's DynamicCache) and
// repeated to the query heads inside attention.
struct KVCache {
  enum class Layout { kStatic, kGrowing };
  Layout layout = Layout::kStatic;
  std::vector<at::Tensor> keys;   // kStatic: [B, H, capacity, d]; kGrowing: [B, kv, T_cached, d]
  std::vector<at::Tensor> values;
  int64_t length = 0;             // T_cached
  int64_t capacity_hint = 0;      // kStatic: positions to allocate at first use (0: exactly T)
  // Token ids handed to Forward on the device come from the model's own argmax (decode/pipeline.h):
  // they are in range by construction, and checking them would wait for the device at every step.
  // Off: device token ids are checked with one host synchronisation (CPU ids never need one).
  bool device_tokens_trusted = false;
};

class StepPieces;  // step_pieces.h

class CausalLM {
 public:
  virtual ~CausalLM() = default;
  virtual const model::ModelConfig& config() const = 0;
  virtual const Numerics& numerics() const = 0;
  virtual const Variants& variants() const = 0;
  // The devices the pass runs on, in layer order, without repeats (placement.h): tokens go to the
  // first (numerics().device), logits come from the last.
  virtual std::vector<c10::Device> devices() const { return {numerics().device}; }

  // Runs `tokens` [B, T] (int64) at positions cache.length .. cache.length + T - 1, appending to the
  // cache. `attention_mask` [B, T_cached + T] (1 = real token, 0 = padding) may be undefined; with
  // left padding, positions are cumsum(mask) - 1 per row, as HF computes them, and padding keys are
  // masked out, so a padded row gives the logits of the row alone.
  // Returns logits [B, T, V], or [B, 1, V] when lm_head_all_positions is false: FP32, except FP64
  // for FP64 runs, so that the oracle keeps its precision (Numerics::logits_type).
  virtual at::Tensor Forward(const at::Tensor& tokens, KVCache& cache,
                             const at::Tensor& attention_mask = at::Tensor(),
                             const Observer* observer = nullptr) = 0;

  // The same forward pass split at attention (step_pieces.h), for recording its parts as CUDA
  // graphs; nullptr when this implementation cannot be split (then decoding runs Forward).
  virtual StepPieces* step_pieces() { return nullptr; }
};

// Builds the forward pass for the checkpoint's architecture, casting weights to `numerics`. Throws
// InputError naming the tensor when one is missing or has the wrong shape (all such problems in one
// error). `variants` defaults to ReferenceVariants of the checkpoint's architecture. `placement`
// (placement.h) spreads the layers over devices of numerics.device's type; null: all on
// numerics.device.
std::unique_ptr<CausalLM> LoadCausalLM(const io::Checkpoint& checkpoint, const Numerics& numerics,
                                       const Variants* variants = nullptr,
                                       const Placement* placement = nullptr);

struct Weights;  // weights.h: tensors by role and layer
// The same from a config and weights built in code (tests, planted faults), for config.arch.
// Throws InputError listing every config or weight problem.
std::unique_ptr<CausalLM> MakeCausalLM(const model::ModelConfig& config, const Weights& weights,
                                       const Numerics& numerics, const Variants* variants = nullptr,
                                       const Placement* placement = nullptr);

}  // namespace parity::forward
