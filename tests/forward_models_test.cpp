// The InternLM2 and Llama forward passes on small random models built in code: agreement of the two
// code paths at FP64, KV cache vs full forward, GQA head mapping, left padding, emulated FP16,
// variants, the observation hook, and loading from a safetensors checkpoint.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/version.h>

#include "harness/core/error.h"
#include "harness/forward/causal_lm.h"
#include "harness/forward/numerics.h"
#include "harness/forward/weights.h"
#include "harness/io/checkpoint.h"
#include "harness/io/safetensors.h"
#include "harness/model/arch.h"
#include "tests/test_util.h"

namespace parity::forward {
namespace {

using model::Architecture;
using model::Role;

const Numerics kFp64 = MakeNumerics(Precision::kFP64, c10::kCPU);
const Numerics kFp32 = MakeNumerics(Precision::kFP32, c10::kCPU);

// A small grouped-query model: 4 query heads sharing 2 KV heads (G = 2), head_dim 16.
model::ModelConfig TinyConfig(Architecture arch) {
  model::ModelConfig config;
  config.arch = arch;
  config.source = "tiny";
  config.vocab_size = 50;
  config.hidden_size = 64;
  config.num_layers = 2;
  config.num_heads = 4;
  config.num_kv_heads = 2;
  config.head_dim = 16;
  config.intermediate_size = 96;
  config.max_position_embeddings = 64;
  config.rms_norm_eps = 1e-5;
  config.rope_theta = 10000.0;
  config.bias = false;
  return config;
}

at::Tensor Random(std::vector<int64_t> shape, double scale) {
  return at::randn(shape, at::kDouble) * scale;
}

// Random InternLM2 weights (FP64), seeded; projections scaled 1/sqrt(fan_in) so that activations
// stay O(1), norms near 1.
Weights RandomInternLM2(const model::ModelConfig& c, uint64_t seed) {
  at::manual_seed(seed);
  const int64_t qkv_rows = c.num_kv_heads * (c.group_size() + 2) * c.head_dim;
  const double in_scale = 1.0 / std::sqrt(double(c.hidden_size));
  Weights w;
  w.Set(Role::kEmbedding, -1, Random({c.vocab_size, c.hidden_size}, 1.0));
  w.Set(Role::kFinalNorm, -1, 1.0 + Random({c.hidden_size}, 0.1));
  w.Set(Role::kLmHead, -1, Random({c.vocab_size, c.hidden_size}, in_scale));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    w.Set(Role::kAttentionNorm, i, 1.0 + Random({c.hidden_size}, 0.1));
    w.Set(Role::kQkv, i, Random({qkv_rows, c.hidden_size}, in_scale));
    w.Set(Role::kO, i, Random({c.hidden_size, c.num_heads * c.head_dim}, in_scale));
    w.Set(Role::kMlpNorm, i, 1.0 + Random({c.hidden_size}, 0.1));
    w.Set(Role::kGate, i, Random({c.intermediate_size, c.hidden_size}, in_scale));
    w.Set(Role::kUp, i, Random({c.intermediate_size, c.hidden_size}, in_scale));
    w.Set(Role::kDown, i, Random({c.hidden_size, c.intermediate_size},
                                 1.0 / std::sqrt(double(c.intermediate_size))));
  }
  return w;
}

// convert2llama's split, written out by hand: wqkv's rows are kv blocks of (G + 2) * d rows, the G
// query heads of the group, then its K head, then its V head.
Weights ToLlama(const model::ModelConfig& c, const Weights& internlm2) {
  Weights llama;
  for (const auto& [key, tensor] : internlm2.tensors) {
    if (key.first != Role::kQkv) llama.Set(key.first, key.second, tensor);
  }
  const int64_t g = c.group_size(), d = c.head_dim;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const at::Tensor& wqkv = internlm2.Get(Role::kQkv, i);
    std::vector<at::Tensor> q, k, v;
    for (int64_t group = 0; group < c.num_kv_heads; ++group) {
      const int64_t start = group * (g + 2) * d;
      q.push_back(wqkv.narrow(0, start, g * d));
      k.push_back(wqkv.narrow(0, start + g * d, d));
      v.push_back(wqkv.narrow(0, start + (g + 1) * d, d));
    }
    llama.Set(Role::kQ, i, at::cat(q, 0));
    llama.Set(Role::kK, i, at::cat(k, 0));
    llama.Set(Role::kV, i, at::cat(v, 0));
  }
  return llama;
}

// The inverse: pack Llama q/k/v into InternLM2's wqkv.
Weights ToInternLM2(const model::ModelConfig& c, const Weights& llama) {
  Weights internlm2;
  for (const auto& [key, tensor] : llama.tensors) {
    if (key.first != Role::kQ && key.first != Role::kK && key.first != Role::kV) {
      internlm2.Set(key.first, key.second, tensor);
    }
  }
  const int64_t g = c.group_size(), d = c.head_dim;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    std::vector<at::Tensor> rows;
    for (int64_t group = 0; group < c.num_kv_heads; ++group) {
      rows.push_back(llama.Get(Role::kQ, i).narrow(0, group * g * d, g * d));
      rows.push_back(llama.Get(Role::kK, i).narrow(0, group * d, d));
      rows.push_back(llama.Get(Role::kV, i).narrow(0, group * d, d));
    }
    internlm2.Set(Role::kQkv, i, at::cat(rows, 0));
  }
  return internlm2;
}

// Eager attention, all positions: the settings under which the two code paths are comparable
// position by position on every libtorch.
Variants Comparable(Architecture arch) {
  Variants variants = ReferenceVariants(arch);
  variants.sdpa_attention = false;
  variants.lm_head_all_positions = true;
  return variants;
}

at::Tensor Tokens(std::vector<int64_t> ids, int64_t rows = 1) {
  return at::tensor(ids, at::kLong).view({rows, -1});
}

at::Tensor RunAll(CausalLM& model, const at::Tensor& tokens, const at::Tensor& mask = at::Tensor()) {
  KVCache cache;
  return model.Forward(tokens, cache, mask);
}

// max |a - b| / max |b| (on the CPU, in FP64).
double RelativeMaxError(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.to(at::kCPU, at::kDouble), y = b.to(at::kCPU, at::kDouble);
  return (x - y).abs().max().item<double>() / y.abs().max().item<double>();
}

// RMS(a - b) / RMS(b) (on the CPU, in FP64).
double RelativeRmsError(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.to(at::kCPU, at::kDouble), y = b.to(at::kCPU, at::kDouble);
  return (x - y).pow(2).mean().sqrt().item<double>() / y.pow(2).mean().sqrt().item<double>();
}

const std::vector<int64_t> kPrompt = {1, 17, 4, 33, 8, 25, 2, 49, 11, 30};

TEST(ForwardModels, InternLM2AndConvertedLlamaAgreeAtFp64) {
  const model::ModelConfig internlm2_config = TinyConfig(Architecture::kInternLM2);
  const model::ModelConfig llama_config = TinyConfig(Architecture::kLlama);
  const Weights weights = RandomInternLM2(internlm2_config, 10);
  const Variants internlm2_variants = Comparable(Architecture::kInternLM2);
  const Variants llama_variants = Comparable(Architecture::kLlama);
  auto internlm2 = MakeCausalLM(internlm2_config, weights, kFp64, &internlm2_variants);
  auto llama = MakeCausalLM(llama_config, ToLlama(llama_config, weights), kFp64, &llama_variants);
  at::Tensor tokens = Tokens(kPrompt, 2);  // two rows of five
  at::Tensor a = RunAll(*internlm2, tokens), b = RunAll(*llama, tokens);
  ASSERT_EQ(a.sizes(), (std::vector<int64_t>{2, 5, 50}));
  EXPECT_EQ(a.scalar_type(), at::kDouble);
  EXPECT_LT(RelativeMaxError(a, b), 1e-12);
  // The check can fail: a wrong split (K and V of one group swapped) is far off.
  Weights wrong = ToLlama(llama_config, weights);
  at::Tensor k = wrong.Get(Role::kK, 1).clone(), v = wrong.Get(Role::kV, 1).clone();
  wrong.Set(Role::kK, 1, v);
  wrong.Set(Role::kV, 1, k);
  auto broken = MakeCausalLM(llama_config, wrong, kFp64, &llama_variants);
  EXPECT_GT(RelativeMaxError(RunAll(*broken, tokens), a), 1e-3);
}

TEST(ForwardModels, Fp32PathsAreCloseAndReportedBitwise) {
  const model::ModelConfig internlm2_config = TinyConfig(Architecture::kInternLM2);
  const model::ModelConfig llama_config = TinyConfig(Architecture::kLlama);
  const Weights weights = RandomInternLM2(internlm2_config, 11);
  const Variants iv = Comparable(Architecture::kInternLM2), lv = Comparable(Architecture::kLlama);
  auto internlm2 = MakeCausalLM(internlm2_config, weights, kFp32, &iv);
  auto llama = MakeCausalLM(llama_config, ToLlama(llama_config, weights), kFp32, &lv);
  at::Tensor a = RunAll(*internlm2, Tokens(kPrompt)), b = RunAll(*llama, Tokens(kPrompt));
  EXPECT_EQ(a.scalar_type(), at::kFloat);
  // Different GEMM splits and score scaling: equal to a few FP32 ulps of the logits' scale.
  EXPECT_LT(RelativeMaxError(a, b), 1e-5);
  std::cout << "[ info ] InternLM2 vs Llama FP32 logits: bitwise identical: "
            << (a.equal(b) ? "yes" : "no") << ", relative max error " << RelativeMaxError(a, b)
            << "\n";
}

TEST(ForwardModels, KvCacheDecodingEqualsFullForward) {
  for (Architecture arch : {Architecture::kInternLM2, Architecture::kLlama}) {
    const model::ModelConfig config = TinyConfig(arch);
    Weights weights = RandomInternLM2(TinyConfig(Architecture::kInternLM2), 12);
    if (arch == Architecture::kLlama) weights = ToLlama(config, weights);
    const Variants variants = Comparable(arch);
    auto model = MakeCausalLM(config, weights, kFp64, &variants);
    at::Tensor full = RunAll(*model, Tokens(kPrompt));  // [1, 10, V]

    KVCache cache;
    at::Tensor prefix = model->Forward(Tokens({kPrompt.begin(), kPrompt.begin() + 6}), cache);
    EXPECT_LT(RelativeMaxError(prefix, full.slice(1, 0, 6)), 1e-12);
    EXPECT_EQ(cache.length, 6);
    for (int64_t step = 6; step < 10; ++step) {
      at::Tensor logits = model->Forward(Tokens({kPrompt[step]}), cache);
      ASSERT_EQ(logits.size(1), 1);
      EXPECT_LT(RelativeMaxError(logits, full.slice(1, step, step + 1)), 1e-12)
          << model::ArchitectureName(arch) << " step " << step;
    }
    EXPECT_EQ(cache.length, 10);
    ASSERT_EQ(cache.keys.size(), 2u);
    // The static layout: keys stored repeated to the 4 query heads, capacity 6 doubled to 12.
    EXPECT_EQ(cache.keys[1].sizes(), (std::vector<int64_t>{1, 4, 12, 16}));
    KVCache growing;
    growing.layout = KVCache::Layout::kGrowing;
    model->Forward(Tokens(kPrompt), growing);
    EXPECT_EQ(growing.keys[1].sizes(), (std::vector<int64_t>{1, 2, 10, 16}));
  }
}

TEST(ForwardModels, QueryHeadsOfAGroupReadItsKvHead) {
  // Only KV head 1 has a non-zero V projection, and wo is the identity: after the first attention
  // block, the residual stream changed only in the columns of query heads G..2G-1 = 2, 3.
  const model::ModelConfig llama_config = TinyConfig(Architecture::kLlama);
  const model::ModelConfig internlm2_config = TinyConfig(Architecture::kInternLM2);
  Weights llama = ToLlama(llama_config, RandomInternLM2(internlm2_config, 13));
  at::Tensor wv = llama.Get(Role::kV, 0).clone();
  wv.narrow(0, 0, 16).zero_();  // KV head 0
  llama.Set(Role::kV, 0, wv);
  llama.Set(Role::kO, 0, at::eye(64, at::kDouble));
  for (Architecture arch : {Architecture::kInternLM2, Architecture::kLlama}) {
    const model::ModelConfig& config = arch == Architecture::kLlama ? llama_config : internlm2_config;
    const Weights weights = arch == Architecture::kLlama ? llama : ToInternLM2(config, llama);
    const Variants variants = Comparable(arch);
    auto model = MakeCausalLM(config, weights, kFp64, &variants);
    at::Tensor embedding, after_attention;
    Observer observer = [&](const Observation& o) {
      if (o.point == ObservationPoint::kEmbedding) embedding = o.value.clone();
      if (o.point == ObservationPoint::kAttentionBlock && o.layer == 0) {
        after_attention = o.value.clone();
      }
    };
    KVCache cache;
    model->Forward(Tokens(kPrompt), cache, at::Tensor(), &observer);
    at::Tensor per_head = (after_attention - embedding).view({1, 10, 4, 16});
    for (int64_t head = 0; head < 4; ++head) {
      const double change = per_head.select(2, head).abs().max().item<double>();
      if (head < 2) {
        EXPECT_EQ(change, 0.0) << model::ArchitectureName(arch) << " head " << head;
      } else {
        EXPECT_GT(change, 1e-3) << model::ArchitectureName(arch) << " head " << head;
      }
    }
  }
}

TEST(ForwardModels, LeftPaddedRowGivesTheLogitsOfTheRowAlone) {
  for (Architecture arch : {Architecture::kInternLM2, Architecture::kLlama}) {
    const model::ModelConfig config = TinyConfig(arch);
    Weights weights = RandomInternLM2(TinyConfig(Architecture::kInternLM2), 14);
    if (arch == Architecture::kLlama) weights = ToLlama(config, weights);
    const Variants variants = Comparable(arch);
    auto model = MakeCausalLM(config, weights, kFp64, &variants);

    KVCache alone_cache;
    at::Tensor alone = model->Forward(Tokens({5, 9, 3}), alone_cache);
    at::Tensor alone_step = model->Forward(Tokens({7}), alone_cache);

    // Row 0: two padding tokens (id 0) then the same three; row 1: five real tokens.
    at::Tensor mask = Tokens({0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, 2);
    KVCache batch_cache;
    at::Tensor batch = model->Forward(Tokens({0, 0, 5, 9, 3, 1, 2, 3, 4, 6}, 2), batch_cache, mask);
    EXPECT_LT(RelativeMaxError(batch[0].slice(0, 2, 5), alone[0]), 1e-12)
        << model::ArchitectureName(arch);
    at::Tensor step_mask = at::cat({mask, at::ones({2, 1}, at::kLong)}, 1);
    at::Tensor batch_step = model->Forward(Tokens({7, 8}, 2), batch_cache, step_mask);
    EXPECT_LT(RelativeMaxError(batch_step[0], alone_step[0]), 1e-12) << model::ArchitectureName(arch);
    // Without the mask the padded row is a different sequence: the check can fail.
    at::Tensor unmasked = RunAll(*model, Tokens({0, 0, 5, 9, 3, 1, 2, 3, 4, 6}, 2));
    EXPECT_GT(RelativeMaxError(unmasked[0].slice(0, 2, 5), alone[0]), 1e-3);
  }
}

TEST(ForwardModels, EmulatedFp16RoundsEveryObservedTensor) {
  const model::ModelConfig config = TinyConfig(Architecture::kInternLM2);
  const Weights weights = RandomInternLM2(config, 15);
  const Variants variants = Comparable(Architecture::kInternLM2);
  const Numerics fp16 = MakeNumerics(Precision::kFP16, c10::kCPU);
  auto model16 = MakeCausalLM(config, weights, fp16, &variants);
  int observed = 0;
  Observer observer = [&](const Observation& o) {
    ++observed;
    EXPECT_EQ(o.value.scalar_type(), at::kFloat);
    EXPECT_TRUE(o.value.equal(o.value.to(at::kHalf).to(at::kFloat)))
        << ObservationPointName(o.point) << " layer " << o.layer << " is not FP16-representable";
  };
  KVCache cache;
  at::Tensor logits16 = model16->Forward(Tokens(kPrompt), cache, at::Tensor(), &observer);
  // A decode step too (cached keys, no mask).
  at::Tensor step16 = model16->Forward(Tokens({3}), cache, at::Tensor(), &observer);
  EXPECT_EQ(observed, 2 * (1 + 2 * 2 + 2));

  auto model64 = MakeCausalLM(config, weights, kFp64, &variants);
  auto model32 = MakeCausalLM(config, weights, kFp32, &variants);
  at::Tensor logits64 = RunAll(*model64, Tokens(kPrompt));
  const double error16 = RelativeRmsError(logits16, logits64);
  const double error32 = RelativeRmsError(RunAll(*model32, Tokens(kPrompt)), logits64);
  std::cout << "[ info ] relative RMS logit error vs FP64: fp16 (emulated) " << error16
            << ", fp32 " << error32 << "\n";
  // FP16's unit roundoff is 2^-11 = 4.9e-4. About 30 rounded ops lie on the path from the embedding
  // to a logit; independent roundings grow like sqrt(n) u ~ 3e-3 relative, amplified a little by the
  // normalisations (measured: 1.3e-3). 1e-2 leaves margin for that and fails on a real bug
  // (errors of order 1).
  EXPECT_LT(error16, 1e-2);
  // And it is rounding at FP16's scale, not FP32's: more than 20x FP32's ulp-level error, which is
  // what an emulation that forgot to round would give.
  EXPECT_GT(error16, 1e-4);
  EXPECT_LT(error32, 1e-5);
}

TEST(ForwardModels, Bf16RunsNativelyOnCpu) {
  const model::ModelConfig config = TinyConfig(Architecture::kLlama);
  const Weights weights = ToLlama(config, RandomInternLM2(TinyConfig(Architecture::kInternLM2), 16));
  const Variants variants = Comparable(Architecture::kLlama);
  const Numerics bf16 = MakeNumerics(Precision::kBF16, c10::kCPU);
  auto model16 = MakeCausalLM(config, weights, bf16, &variants);
  at::Tensor hidden;
  Observer observer = [&](const Observation& o) {
    if (o.point == ObservationPoint::kFinalNorm) hidden = o.value;
  };
  KVCache cache;
  at::Tensor logits = model16->Forward(Tokens(kPrompt), cache, at::Tensor(), &observer);
  EXPECT_EQ(hidden.scalar_type(), at::kBFloat16);
  EXPECT_EQ(logits.scalar_type(), at::kFloat);
  auto model64 = MakeCausalLM(config, weights, kFp64, &variants);
  const double error = RelativeRmsError(logits, RunAll(*model64, Tokens(kPrompt)));
  std::cout << "[ info ] relative RMS logit error vs FP64: bf16 " << error << "\n";
  // BF16's unit roundoff is 2^-8 = 3.9e-3, 8x FP16's; same reasoning as the FP16 bound
  // (measured: 8.8e-3).
  EXPECT_LT(error, 8e-2);
  EXPECT_GT(error, 1e-3);
}

TEST(ForwardModels, FusedAndSplitQkvAgreeAtFp64) {
  for (Architecture arch : {Architecture::kInternLM2, Architecture::kLlama}) {
    const model::ModelConfig config = TinyConfig(arch);
    Weights weights = RandomInternLM2(TinyConfig(Architecture::kInternLM2), 17);
    if (arch == Architecture::kLlama) weights = ToLlama(config, weights);
    Variants fused = Comparable(arch), split = Comparable(arch);
    fused.fused_qkv = true;
    split.fused_qkv = false;
    at::Tensor a = RunAll(*MakeCausalLM(config, weights, kFp64, &fused), Tokens(kPrompt));
    at::Tensor b = RunAll(*MakeCausalLM(config, weights, kFp64, &split), Tokens(kPrompt));
    EXPECT_LT(RelativeMaxError(a, b), 1e-12) << model::ArchitectureName(arch);
  }
}

TEST(ForwardModels, RotaryStylesAgreeAtFp64) {
  const model::ModelConfig config = TinyConfig(Architecture::kInternLM2);
  const Weights weights = RandomInternLM2(config, 18);
  Variants table = Comparable(Architecture::kInternLM2), per_step = table;
  per_step.rotary_precomputed = false;
  at::Tensor a = RunAll(*MakeCausalLM(config, weights, kFp64, &table), Tokens(kPrompt));
  at::Tensor b = RunAll(*MakeCausalLM(config, weights, kFp64, &per_step), Tokens(kPrompt));
  EXPECT_LT(RelativeMaxError(a, b), 1e-12);
}

TEST(ForwardModels, LmHeadOnLastPositionOnly) {
  const model::ModelConfig config = TinyConfig(Architecture::kLlama);
  const Weights weights = ToLlama(config, RandomInternLM2(TinyConfig(Architecture::kInternLM2), 19));
  Variants all = Comparable(Architecture::kLlama), last = all;
  last.lm_head_all_positions = false;
  at::Tensor full = RunAll(*MakeCausalLM(config, weights, kFp64, &all), Tokens(kPrompt, 2));
  at::Tensor tail = RunAll(*MakeCausalLM(config, weights, kFp64, &last), Tokens(kPrompt, 2));
  ASSERT_EQ(tail.sizes(), (std::vector<int64_t>{2, 1, 50}));
  EXPECT_LT(RelativeMaxError(tail, full.slice(1, 4, 5)), 1e-12);
}

TEST(ForwardModels, DynamicNtkAboveMaxPositions) {
  // max_position_embeddings 8 with dynamic scaling: a 10-token prompt uses base'(10) in both code
  // paths. Decoding past 8 with the KV cache keeps keys rotated with the bases of earlier steps
  // (both references cache rotated keys), so it differs from recomputing the prefix: the reason
  // the kv_cache variant exists. Without scaling the two agree.
  for (Architecture arch : {Architecture::kInternLM2, Architecture::kLlama}) {
    model::ModelConfig config = TinyConfig(arch);
    config.max_position_embeddings = 8;
    config.rope_scaling.type = model::RopeScaling::Type::kDynamic;
    config.rope_scaling.factor = 2.0;
    Weights weights = RandomInternLM2(TinyConfig(Architecture::kInternLM2), 20);
    if (arch == Architecture::kLlama) weights = ToLlama(config, weights);
    const Variants variants = Comparable(arch);
    auto model = MakeCausalLM(config, weights, kFp64, &variants);
    at::Tensor full = RunAll(*model, Tokens(kPrompt));
    // Up to max_position_embeddings keys, the cache agrees with a full forward of that prefix.
    KVCache cache;
    model->Forward(Tokens({kPrompt.begin(), kPrompt.begin() + 6}), cache);
    at::Tensor step = model->Forward(Tokens({kPrompt[6], kPrompt[7]}), cache);  // 8 keys: base
    at::Tensor prefix = RunAll(*model, Tokens({kPrompt.begin(), kPrompt.begin() + 8}));
    EXPECT_LT(RelativeMaxError(step, prefix.slice(1, 6, 8)), 1e-12);
    // Beyond it, the cached keys 0..7 were rotated with the plain base, the recomputed ones with
    // base'(10).
    for (int64_t i = 8; i < 10; ++i) step = model->Forward(Tokens({kPrompt[i]}), cache);
    EXPECT_GT(RelativeMaxError(step, full.slice(1, 9, 10)), 1e-6) << model::ArchitectureName(arch);

    model::ModelConfig plain = config;
    plain.rope_scaling = model::RopeScaling();
    at::Tensor unscaled = RunAll(*MakeCausalLM(plain, weights, kFp64, &variants), Tokens(kPrompt));
    EXPECT_GT(RelativeMaxError(full, unscaled), 1e-6);  // the scaling did something
  }
  // Both code paths give the same logits for the whole prompt (base'(10) in both).
  model::ModelConfig ic = TinyConfig(Architecture::kInternLM2), lc = TinyConfig(Architecture::kLlama);
  for (model::ModelConfig* c : {&ic, &lc}) {
    c->max_position_embeddings = 8;
    c->rope_scaling.type = model::RopeScaling::Type::kDynamic;
    c->rope_scaling.factor = 2.0;
  }
  const Weights weights = RandomInternLM2(ic, 21);
  const Variants iv = Comparable(Architecture::kInternLM2), lv = Comparable(Architecture::kLlama);
  at::Tensor a = RunAll(*MakeCausalLM(ic, weights, kFp64, &iv), Tokens(kPrompt));
  at::Tensor b = RunAll(*MakeCausalLM(lc, ToLlama(lc, weights), kFp64, &lv), Tokens(kPrompt));
  EXPECT_LT(RelativeMaxError(a, b), 1e-12);
}

TEST(ForwardModels, ObserverSeesEveryPointInOrder) {
  const model::ModelConfig config = TinyConfig(Architecture::kInternLM2);
  const Weights weights = RandomInternLM2(config, 22);
  auto model = MakeCausalLM(config, weights, kFp32);
  std::vector<std::string> seen;
  Observer observer = [&](const Observation& o) {
    seen.push_back(std::string(ObservationPointName(o.point)) + ":" + std::to_string(o.layer));
    if (o.point == ObservationPoint::kLogits) {
      EXPECT_EQ(o.value.sizes(), (std::vector<int64_t>{1, 10, 50}));
    } else {
      EXPECT_EQ(o.value.sizes(), (std::vector<int64_t>{1, 10, 64}));
    }
  };
  KVCache cache;
  model->Forward(Tokens(kPrompt), cache, at::Tensor(), &observer);
  EXPECT_EQ(seen, (std::vector<std::string>{"embedding:-1", "attention:0", "mlp:0", "attention:1",
                                            "mlp:1", "final_norm:-1", "logits:-1"}));
}

TEST(ForwardModels, ReferenceVariantsAndDescriptions) {
  const Variants internlm2 = ReferenceVariants(Architecture::kInternLM2);
  EXPECT_TRUE(internlm2.fused_qkv && internlm2.lm_head_all_positions && internlm2.rotary_precomputed);
  EXPECT_FALSE(internlm2.sdpa_attention);
  const Variants llama = ReferenceVariants(Architecture::kLlama);
  EXPECT_FALSE(llama.fused_qkv || llama.lm_head_all_positions || llama.rotary_precomputed ||
               llama.divide_scores_by_sqrt);
  EXPECT_TRUE(internlm2.divide_scores_by_sqrt);
  EXPECT_EQ(DescribeVariants(internlm2),
            "fused_qkv=1 sdpa=0 lm_head_all_positions=1 rotary_precomputed=1 kv_cache=1 "
            "divide_scores_by_sqrt=1");
}

TEST(ForwardModels, SdpaVariantNeedsLibtorch2) {
  const model::ModelConfig config = TinyConfig(Architecture::kLlama);
  const Weights weights = ToLlama(config, RandomInternLM2(TinyConfig(Architecture::kInternLM2), 23));
  Variants sdpa = Comparable(Architecture::kLlama), eager = sdpa;
  sdpa.sdpa_attention = true;
  if (TORCH_VERSION_MAJOR < 2) {
    EXPECT_THROW(MakeCausalLM(config, weights, kFp64, &sdpa), InputError);
    return;
  }
  // Left padding too, so the boolean mask path runs.
  at::Tensor tokens = Tokens({0, 0, 5, 9, 3, 1, 2, 3, 4, 6}, 2);
  at::Tensor mask = Tokens({0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, 2);
  at::Tensor a = RunAll(*MakeCausalLM(config, weights, kFp64, &sdpa), tokens, mask);
  at::Tensor b = RunAll(*MakeCausalLM(config, weights, kFp64, &eager), tokens, mask);
  EXPECT_LT(RelativeMaxError(a.slice(1, 2, 5), b.slice(1, 2, 5)), 1e-12);
  EXPECT_LT(RelativeMaxError(a[1], b[1]), 1e-12);
}

TEST(ForwardModels, BadWeightsAreAllReportedTogether) {
  const model::ModelConfig config = TinyConfig(Architecture::kInternLM2);
  Weights weights = RandomInternLM2(config, 24);
  weights.tensors.erase({Role::kMlpNorm, 1});
  weights.Set(Role::kGate, 0, at::zeros({64, 96}, at::kDouble));  // transposed
  weights.tensors.erase({Role::kLmHead, -1});
  try {
    MakeCausalLM(config, weights, kFp32);
    FAIL() << "expected InputError";
  } catch (const InputError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("model.layers.1.ffn_norm.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("model.layers.0.feed_forward.w1.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("expected [96, 64], got [64, 96]"), std::string::npos) << message;
    EXPECT_NE(message.find("output.weight"), std::string::npos) << message;
  }
  // With tied embeddings the LM head may be absent.
  model::ModelConfig tied = config;
  tied.tie_word_embeddings = true;
  Weights untied_missing = RandomInternLM2(config, 24);
  untied_missing.tensors.erase({Role::kLmHead, -1});
  EXPECT_NO_THROW(MakeCausalLM(tied, untied_missing, kFp32));
}

TEST(ForwardModels, RejectsBadInputs) {
  const model::ModelConfig config = TinyConfig(Architecture::kInternLM2);
  auto model = MakeCausalLM(config, RandomInternLM2(config, 25), kFp32);
  KVCache cache;
  EXPECT_THROW(model->Forward(Tokens({1, 50}), cache), InputError);  // id 50 >= vocab 50
  EXPECT_THROW(model->Forward(at::zeros({3}, at::kLong), cache), InputError);
  model::ModelConfig biased = config;
  biased.bias = true;
  EXPECT_THROW(MakeCausalLM(biased, RandomInternLM2(config, 25), kFp32), InputError);
}

// --- CUDA (skipped when this libtorch has none) -------------------------------------------------

TEST(ForwardCuda, NativeHalfAndFp32AgainstTheCpuOracle) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA in this libtorch build";
  const c10::Device cuda(c10::kCUDA, 0);
  for (Architecture arch : {Architecture::kInternLM2, Architecture::kLlama}) {
    const model::ModelConfig config = TinyConfig(arch);
    Weights weights = RandomInternLM2(TinyConfig(Architecture::kInternLM2), 30);
    if (arch == Architecture::kLlama) weights = ToLlama(config, weights);
    const Variants variants = Comparable(arch);
    at::Tensor oracle = RunAll(*MakeCausalLM(config, weights, kFp64, &variants), Tokens(kPrompt));
    // FP64 on CUDA is the same function to FP64 rounding.
    const Numerics cuda64 = MakeNumerics(Precision::kFP64, cuda);
    EXPECT_LT(RelativeMaxError(RunAll(*MakeCausalLM(config, weights, cuda64, &variants),
                                      Tokens(kPrompt)),
                               oracle),
              1e-12);
    const Numerics cuda32 = MakeNumerics(Precision::kFP32, cuda);
    const double error32 = RelativeRmsError(
        RunAll(*MakeCausalLM(config, weights, cuda32, &variants), Tokens(kPrompt)), oracle);
    const Numerics half = MakeNumerics(Precision::kFP16, cuda);
    EXPECT_FALSE(half.emulated);
    EXPECT_EQ(half.storage, c10::kHalf);
    at::Tensor native =
        RunAll(*MakeCausalLM(config, weights, half, &variants), Tokens(kPrompt));
    EXPECT_EQ(native.scalar_type(), at::kFloat);
    const Numerics emulated_numerics = MakeNumerics(Precision::kFP16, c10::kCPU);
    at::Tensor emulated =
        RunAll(*MakeCausalLM(config, weights, emulated_numerics, &variants), Tokens(kPrompt));
    const double native_error = RelativeRmsError(native, oracle);
    const double emulated_error = RelativeRmsError(emulated, oracle);
    const double between = RelativeRmsError(native, emulated);
    std::cout << "[ info ] " << model::ArchitectureName(arch)
              << " relative RMS logit error vs FP64 (cpu): cuda fp32 " << error32
              << ", cuda fp16 native " << native_error << ", cpu fp16 emulated " << emulated_error
              << ", native vs emulated " << between << ", bitwise equal: "
              << (native.cpu().equal(emulated) ? "yes" : "no") << "\n";
    EXPECT_LT(error32, 1e-5);
    EXPECT_LT(native_error, 1e-2);  // same bound and reasoning as the emulated FP16 test
    // Emulation reproduces native FP16 up to GEMM reduction order: their distance is of the order
    // of either's error, not larger.
    EXPECT_LT(between, 2 * std::max(native_error, emulated_error));
  }
}

TEST(ForwardCuda, KvCacheAndPaddingOnCuda) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA in this libtorch build";
  const model::ModelConfig config = TinyConfig(Architecture::kInternLM2);
  const Weights weights = RandomInternLM2(config, 31);
  const Variants variants = Comparable(Architecture::kInternLM2);
  auto model = MakeCausalLM(config, weights, MakeNumerics(Precision::kFP64, {c10::kCUDA, 0}),
                            &variants);
  at::Tensor full = RunAll(*model, Tokens(kPrompt));
  EXPECT_TRUE(full.is_cuda());
  KVCache cache;
  model->Forward(Tokens({kPrompt.begin(), kPrompt.begin() + 9}), cache);
  EXPECT_LT(RelativeMaxError(model->Forward(Tokens({kPrompt[9]}), cache), full.slice(1, 9, 10)),
            1e-12);
  at::Tensor mask = Tokens({0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, 2);
  at::Tensor batch = RunAll(*model, Tokens({0, 0, 5, 9, 3, 1, 2, 3, 4, 6}, 2), mask);
  at::Tensor alone = RunAll(*model, Tokens({5, 9, 3}));
  EXPECT_LT(RelativeMaxError(batch[0].slice(0, 2, 5), alone[0]), 1e-12);
}

// --- Loading from files -------------------------------------------------------------------------

nlohmann::json InternLM2ConfigJson(const model::ModelConfig& c) {
  return {{"model_type", "internlm2"},
          {"architectures", {"InternLM2ForCausalLM"}},
          {"vocab_size", c.vocab_size},
          {"hidden_size", c.hidden_size},
          {"num_hidden_layers", c.num_layers},
          {"num_attention_heads", c.num_heads},
          {"num_key_value_heads", c.num_kv_heads},
          {"intermediate_size", c.intermediate_size},
          {"max_position_embeddings", c.max_position_embeddings},
          {"rms_norm_eps", c.rms_norm_eps},
          {"rope_theta", c.rope_theta},
          {"rope_scaling", nullptr},
          {"bias", false},
          {"hidden_act", "silu"},
          {"tie_word_embeddings", false},
          {"torch_dtype", "float32"}};
}

// Writes `weights` (FP32) under their InternLM2 names, except names in `skip`; `replace` swaps in
// other tensors by name.
void WriteCheckpoint(const std::string& dir, const model::ModelConfig& config, const Weights& weights,
                     const std::vector<std::string>& skip = {},
                     const std::map<std::string, at::Tensor>& replace = {}) {
  std::vector<io::NamedTensor> tensors;
  for (const auto& [key, tensor] : weights.tensors) {
    const std::string name = model::TensorName(config.arch, key.first, key.second);
    if (std::find(skip.begin(), skip.end(), name) != skip.end()) continue;
    auto replaced = replace.find(name);
    tensors.push_back({name, (replaced != replace.end() ? replaced->second : tensor).to(at::kFloat)});
  }
  io::WriteSafetensors(dir + "/model.safetensors", tensors);
  WriteFileText(dir + "/config.json", InternLM2ConfigJson(config).dump(2));
}

TEST(ForwardLoad, LoadsACheckpointAndMatchesTheWeightsBuiltInCode) {
  const model::ModelConfig config = TinyConfig(Architecture::kInternLM2);
  const Weights weights = RandomInternLM2(config, 26);
  TempDir dir;
  WriteCheckpoint(dir.path(), config, weights);
  auto loaded = LoadCausalLM(io::Checkpoint::Open(dir.path()), kFp64);
  EXPECT_EQ(loaded->config().arch, Architecture::kInternLM2);
  // The file holds FP32 copies: build the in-code model from the same FP32-rounded values.
  Weights rounded;
  for (const auto& [key, tensor] : weights.tensors) {
    rounded.Set(key.first, key.second, tensor.to(at::kFloat));
  }
  auto built = MakeCausalLM(config, rounded, kFp64);
  EXPECT_TRUE(RunAll(*loaded, Tokens(kPrompt)).equal(RunAll(*built, Tokens(kPrompt))));
}

TEST(ForwardLoad, ReportsEveryMissingOrMisshapenTensorByName) {
  const model::ModelConfig config = TinyConfig(Architecture::kInternLM2);
  const Weights weights = RandomInternLM2(config, 27);
  TempDir dir;
  WriteCheckpoint(dir.path(), config, weights, {"model.layers.1.ffn_norm.weight", "output.weight"},
                  {{"model.layers.0.attention.wqkv.weight", at::zeros({64, 64})}});
  try {
    LoadCausalLM(io::Checkpoint::Open(dir.path()), kFp32);
    FAIL() << "expected InputError";
  } catch (const InputError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("'model.layers.1.ffn_norm.weight': missing"), std::string::npos)
        << message;
    EXPECT_NE(message.find("'output.weight': missing"), std::string::npos) << message;
    EXPECT_NE(message.find("'model.layers.0.attention.wqkv.weight': expected [128, 64], got "
                           "[64, 64] (file model.safetensors)"),
              std::string::npos)
        << message;
  }
}

}  // namespace
}  // namespace parity::forward
