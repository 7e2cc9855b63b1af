// A side's precision as a policy: a base precision plus per-module overrides, the way production
// models run (MoE checkpoints keep routers and norms in FP32 and the experts in BF16, with explicit
// casts between), and the TF32 matmul mode of CUDA.
//
// Written compactly, on the command line and in case files, after a model's '@':
//   bf16                                 one precision (the base)
//   bf16+fp32:norm,router,lm_head        base BF16; norms, router and LM head in FP32
//   bf16+fp32:mlp[20-23]                 layers 20..23 (inclusive) of the MLP in FP32
//   fp16+fp32:all                        everything in FP32 (equal to a plain fp32 run)
//   tf32   (= fp32+tf32)                 FP32 with TF32 tensor-core matmuls (CUDA only)
//   bf16+fp32:router+tf32                FP32 modules' matmuls in TF32
// Grammar: BASE ('+' (PRECISION ':' MODULE (',' MODULE)* | 'tf32'))*, MODULE = KIND or
// KIND[N] or KIND[N-M]; later overrides win over earlier ones. Kinds, with what each covers:
//   embedding    the token embedding lookup (its table)
//   attn_proj    q/k/v (or packed wqkv) and o projections
//   attn_scores  scores q k^T, scaling, mask, softmax, the product with v (and the KV cache's dtype)
//   rotary       cos/sin and the rotation of q and k (one table for the model: no layer range)
//   norm         every RMSNorm: per layer attention/MLP norms and q/k norms; the final norm only
//                when no layer range is given
//   mlp          the dense MLP, or the MoE experts (alias: experts)
//   router       the MoE router: its logits, softmax and top-k weights
//   residual     the residual stream: the hidden state between blocks and its adds
//   lm_head      the output projection
//   all          every kind (with a range: every per-layer kind in those layers)
// A module computes at its precision from its input cast to it (one rounding, as an explicit
// `x.to(dtype)` in the reference code), with its weights cast from the checkpoint to it; inside a
// module every op rounds as the uniform run at that precision does (ops.h), FP16 on CPU emulated.
// The output is cast to the precision of the module that reads it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace parity::forward {

enum class Precision { kFP32, kFP16, kBF16, kFP64 };
const char* PrecisionName(Precision precision);  // "fp32", "fp16", "bf16", "fp64"
// The one parser of precision names, used by every command and by case files: "fp32" / "fp16" /
// "bf16" / "fp64", also "float32" / "float", "float16" / "half", "bfloat16", "float64" / "double",
// any case. TryParsePrecision returns nullopt for anything else; ParsePrecision throws InputError
// naming the text.
inline constexpr const char* kPrecisionNames =
    "fp32 (float32, float), fp16 (float16, half), bf16 (bfloat16) or fp64 (float64, double)";
std::optional<Precision> TryParsePrecision(const std::string& text);
Precision ParsePrecision(const std::string& text);

enum class Module {
  kEmbedding,
  kAttentionProjections,
  kAttentionScores,
  kRotary,
  kNorm,
  kMlp,
  kRouter,
  kResidual,
  kLmHead,
  kAll,  // pseudo-module of overrides: every kind
};
inline constexpr int kModuleKinds = 9;  // the real kinds, kEmbedding .. kLmHead
// "embedding", "attn_proj", "attn_scores", "rotary", "norm", "mlp", "router", "residual",
// "lm_head", "all".
const char* ModuleName(Module module);
// Whether the kind has one instance per decoder layer (and so takes a layer range).
bool ModuleIsPerLayer(Module module);
// The module kinds, in forward order (without kAll).
std::vector<Module> AllModules();

struct PrecisionOverride {
  Precision precision = Precision::kFP32;
  Module module = Module::kAll;
  // Inclusive [first, last] layer range; null: every layer and the global instance.
  std::optional<std::pair<int64_t, int64_t>> layers;
  bool operator==(const PrecisionOverride& other) const {
    return precision == other.precision && module == other.module && layers == other.layers;
  }
};

struct PrecisionPolicy {
  Precision base = Precision::kFP32;
  std::vector<PrecisionOverride> overrides;  // in order; a later one wins
  bool tf32 = false;                         // FP32 matmuls as TF32 (CUDA)

  PrecisionPolicy() = default;
  PrecisionPolicy(Precision precision) : base(precision) {}  // NOLINT: a plain precision is a policy

  // The precision of `module` at `layer` (-1: the module's global instance: embedding, rotary,
  // final norm, LM head; also what a module without per-layer instances uses).
  Precision Of(Module module, int64_t layer) const;
  // No overrides and no tf32: a plain one-precision run.
  bool Uniform() const { return overrides.empty() && !tf32; }
  // The widest precision any module may use (for memory plans), and the coarsest (for rounding
  // budgets: the verdicts judge a side by its least precise module).
  Precision Widest() const;
  Precision Coarsest() const;
  // The canonical text: "bf16+fp32:norm,router,mlp[20-23]+tf32"; a plain precision is its name.
  std::string Text() const;
  // Throws InputError when a layer range reaches past `num_layers` (naming the override).
  void CheckLayers(int64_t num_layers) const;

  bool operator==(const PrecisionPolicy& other) const {
    return base == other.base && overrides == other.overrides && tf32 == other.tf32;
  }
  bool operator!=(const PrecisionPolicy& other) const { return !(*this == other); }
};

// Parses the grammar above (precision names as ParsePrecision takes them, kinds in any case).
// Throws InputError naming the text and the bad token, e.g.
//   precision policy 'bf16+fp32:nrom': unknown module 'nrom' (expected embedding, attn_proj, ...)
PrecisionPolicy ParsePrecisionPolicy(const std::string& text);
std::optional<PrecisionPolicy> TryParsePrecisionPolicy(const std::string& text);
// Splits a comma-separated list of policies ("fp32,bf16+fp32:norm,router" -> "fp32",
// "bf16+fp32:norm,router"): a comma inside a module list (after a ':') continues it unless a
// precision name or tf32 follows.
std::vector<std::string> SplitPolicyList(const std::string& text);
// The grammar in one line, for help texts and messages.
inline constexpr const char* kPolicySyntax =
    "PRECISION[+PRECISION:MODULE[,MODULE...]][+tf32], MODULE = embedding, attn_proj, attn_scores, "
    "rotary, norm, mlp, router, residual, lm_head or all, optionally with layers [N] or [N-M]";

}  // namespace parity::forward
