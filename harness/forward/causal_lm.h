// The interface every forward pass implements. InternLM2 (packed wqkv, one GEMM, its remote code's
// split) and Llama (three projections, HF's numerics) are separate implementations on purpose: the
// differences between the two code paths are what users need to see.
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

// Points the observation hook sees, in forward order.
enum class ObservationPoint {
  kEmbedding,      // hidden after the embedding lookup, layer -1
  kAttentionBlock, // residual stream after layer i's attention block (x + attn(norm(x)))
  kMlpBlock,       // residual stream after layer i's MLP block
  kFinalNorm,      // after the final RMSNorm, layer -1
  kLogits,         // FP32 logits, layer -1
};
const char* ObservationPointName(ObservationPoint point);  // "embedding", "attention", "mlp"...

struct Observation {
  ObservationPoint point;
  int64_t layer;             // 0-based layer index as in the tensor names; -1 for global points
  const at::Tensor& value;   // [B, T, D] (or [B, T', V] for logits), in the run's storage dtype
};
// Called at every point when set. Must not modify `value`.
using Observer = std::function<void(const Observation&)>;

// Implementation choices that differ between reference stacks (diagnosis switches them one at a time).
struct Variants {
  bool fused_qkv = true;            // InternLM2: one GEMM with wqkv; false: three GEMMs on its split
  bool sdpa_attention = false;      // fused attention kernel (libtorch 2.x only) instead of eager
  bool lm_head_all_positions = true;// LM head over every position (InternLM2 remote code) vs last only
  bool rotary_precomputed = true;   // cos/sin tables precomputed in the run dtype (old InternLM2
                                    // code) vs computed per step in FP32 then cast (HF Llama)
  bool kv_cache = true;             // false: recompute the whole prefix at every step
};
// The defaults each reference stack uses: InternLM2's remote code or HF Llama.
Variants ReferenceVariants(model::Architecture arch);
// "fused_qkv=1 sdpa=0 ..." for outputs.
std::string DescribeVariants(const Variants& variants);

// Keys and values of every layer: each [B, kv_heads, T_cached, d].
struct KVCache {
  std::vector<at::Tensor> keys;
  std::vector<at::Tensor> values;
  int64_t length = 0;  // T_cached
};

class CausalLM {
 public:
  virtual ~CausalLM() = default;
  virtual const model::ModelConfig& config() const = 0;
  virtual const Numerics& numerics() const = 0;
  virtual const Variants& variants() const = 0;

  // Runs `tokens` [B, T] (int64) at positions cache.length .. cache.length + T - 1, appending to the
  // cache. `attention_mask` [B, T_cached + T] (1 = real token, 0 = padding) may be undefined.
  // Returns FP32 logits [B, T, V], or [B, 1, V] when lm_head_all_positions is false.
  virtual at::Tensor Forward(const at::Tensor& tokens, KVCache& cache,
                             const at::Tensor& attention_mask = at::Tensor(),
                             const Observer* observer = nullptr) = 0;
};

// Builds the forward pass for the checkpoint's architecture, casting weights to `numerics`. Throws
// InputError naming the tensor when one is missing or has the wrong shape.
std::unique_ptr<CausalLM> LoadCausalLM(const io::Checkpoint& checkpoint, const Numerics& numerics,
                                       const Variants* variants = nullptr);

}  // namespace parity::forward
