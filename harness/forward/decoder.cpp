#include "harness/forward/decoder.h"

#include <algorithm>
#include <string>

#include <ATen/ATen.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/core/error.h"

namespace parity::forward {

namespace {

// What this implementation cannot run, in words naming the config field (empty when fine).
std::vector<std::string> UnsupportedConfig(const model::ModelConfig& config) {
  std::vector<std::string> problems;
  auto where = [&](const char* field) {
    return config.source.empty() ? std::string(field) : fmt::format("{}: {}", config.source, field);
  };
  if (config.hidden_act != "silu") {
    problems.push_back(where("hidden_act") + ": '" + config.hidden_act + "' is not supported (silu)");
  }
  if (config.num_layers <= 0 || config.hidden_size <= 0 || config.vocab_size <= 0 ||
      config.intermediate_size <= 0) {
    problems.push_back(where("sizes") + ": num_hidden_layers, hidden_size, vocab_size and "
                       "intermediate_size must be positive");
  }
  if (config.num_heads <= 0 || config.num_kv_heads <= 0 || config.num_heads % config.num_kv_heads) {
    problems.push_back(fmt::format("{}: num_key_value_heads {} must divide num_attention_heads {}",
                                   where("num_key_value_heads"), config.num_kv_heads,
                                   config.num_heads));
  }
  if (config.head_dim <= 0 || config.head_dim % 2) {
    problems.push_back(fmt::format("{}: {} must be positive and even (rotary halves)",
                                   where("head_dim"), config.head_dim));
  }
  if (!model::SpecOf(config.arch).features.honours_head_dim &&
      config.head_dim * config.num_heads != config.hidden_size) {
    // InternLM2's remote code computes head_dim = hidden_size // num_attention_heads and insists on it.
    problems.push_back(fmt::format("{}: {} needs hidden_size ({}) = num_attention_heads ({}) * "
                                   "head_dim ({})", where("head_dim"), model::ArchitectureName(config.arch),
                                   config.hidden_size, config.num_heads, config.head_dim));
  }
  if (config.max_position_embeddings <= 0) {
    problems.push_back(where("max_position_embeddings") + ": must be positive");
  }
  if (config.num_experts > 0 &&
      (config.experts_per_token <= 0 || config.experts_per_token > config.num_experts)) {
    problems.push_back(fmt::format("{}: {} must be in [1, num_experts = {}]",
                                   where("num_experts_per_tok"), config.experts_per_token,
                                   config.num_experts));
  }
  return problems;
}

// `config` after checking it and the weights: one InputError listing every problem. MoE experts
// take the layout the weights have.
model::ModelConfig Checked(const model::ModelConfig& given, const Weights& weights) {
  const model::ModelConfig config = WithExpertLayoutOf(given, weights);
  std::vector<std::string> problems = UnsupportedConfig(config);
  if (!problems.empty()) {
    throw InputError(fmt::format("cannot run this model:\n  {}", fmt::join(problems, "\n  ")));
  }
  CheckWeights(config, weights);
  return config;
}

// `numerics` computing on `device` (a placement stage's).
Numerics OnDevice(Numerics numerics, c10::Device device) {
  numerics.device = device;
  return numerics;
}

void Observe(const Observer* observer, ObservationPoint point, int64_t layer,
             const at::Tensor& value) {
  if (observer != nullptr && *observer) (*observer)(Observation{point, layer, value});
}

}  // namespace

Decoder::Decoder(const model::ModelConfig& config, const Weights& weights,
                 const Numerics& numerics, const Variants& variants, const Placement& placement)
    : config_(Checked(config, weights)),
      spec_(&model::SpecOf(config_.arch)),
      numerics_(OnDevice(numerics, placement.first_device())),
      embedding_n_(numerics_.For(Module::kEmbedding)),
      rotary_n_(numerics_.For(Module::kRotary)),
      final_norm_n_(OnDevice(numerics_.For(Module::kNorm), placement.last_device())),
      lm_head_n_(OnDevice(numerics_.For(Module::kLmHead), placement.last_device())),
      variants_(variants),
      placement_(placement),
      rotary_(config_, rotary_n_,
              variants.rotary_precomputed ? RotaryStyle::kPrecomputedTable
                                          : RotaryStyle::kPerStep) {
  using model::Role;
  if (variants_.sdpa_attention && !ops::SdpaAvailable()) {
    throw InputError("variant sdpa_attention: sdpa needs libtorch 2.x");
  }
  numerics_.policy.CheckLayers(config_.num_layers);
  embedding_ = embedding_n_.FromCheckpoint(weights.Get(Role::kEmbedding));
  final_norm_ = final_norm_n_.FromCheckpoint(weights.Get(Role::kFinalNorm));
  const bool head_is_table = config_.tie_word_embeddings &&
                             lm_head_n_.precision == embedding_n_.precision &&
                             placement_.stages.size() == 1;
  lm_head_ = head_is_table ? embedding_
                           : lm_head_n_.FromCheckpoint(weights.Get(
                                 config_.tie_word_embeddings ? Role::kEmbedding : Role::kLmHead));
  for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
    Layer l;
    const c10::Device on = placement_.stages[placement_.StageOf(layer)].device;
    auto placed = [&](Module module) { return OnDevice(numerics_.For(module, layer), on); };
    l.n = {placed(Module::kNorm), placed(Module::kAttentionProjections),
           placed(Module::kAttentionScores), placed(Module::kMlp), placed(Module::kRouter),
           placed(Module::kResidual)};
    l.attention_norm = l.n.norm.FromCheckpoint(weights.Get(Role::kAttentionNorm, layer));
    l.mlp_norm = l.n.norm.FromCheckpoint(weights.Get(Role::kMlpNorm, layer));
    LoadAttention(weights, layer, l);
    LoadMlp(weights, layer, l);
    l.window = config_.WindowOf(layer);
    if (l.window > 0) window_ = l.window;
    layers_.push_back(std::move(l));
  }
}

Decoder::Projection Decoder::Load(const Weights& weights, model::Role weight, model::Role bias,
                                  int64_t layer, const Numerics& numerics) const {
  Projection p;
  p.weight = numerics.FromCheckpoint(weights.Get(weight, layer));
  if (weights.Has(bias, layer)) p.bias = numerics.FromCheckpoint(weights.Get(bias, layer));
  return p;
}

void Decoder::LoadAttention(const Weights& weights, int64_t layer, Layer& l) const {
  using model::Role;
  const int64_t kv = config_.num_kv_heads, groups = config_.group_size(), d = config_.head_dim;
  if (spec_->features.packed_qkv) {
    if (variants_.fused_qkv) {
      l.qkv = Load(weights, Role::kQkv, Role::kQkvBias, layer, l.n.projections);
    } else {
      // Rows are kv blocks of (G + 2) * d: G query heads, the group's K head, its V head.
      auto split = [&](const at::Tensor& packed, int part) {
        at::Tensor grouped = packed.reshape({kv, groups + 2, d, -1});
        at::Tensor rows = part == 0 ? grouped.slice(1, 0, groups) : grouped.select(1, groups + part - 1);
        at::Tensor flat = rows.reshape({-1, packed.dim() == 2 ? packed.size(1) : 1});
        return l.n.projections.FromCheckpoint(packed.dim() == 2 ? flat : flat.reshape({-1}));
      };
      const at::Tensor& wqkv = weights.Get(Role::kQkv, layer);
      const bool biased = weights.Has(Role::kQkvBias, layer);
      Projection* parts[] = {&l.q, &l.k, &l.v};
      for (int part = 0; part < 3; ++part) {
        parts[part]->weight = split(wqkv, part);
        if (biased) parts[part]->bias = split(weights.Get(Role::kQkvBias, layer), part);
      }
    }
  } else {
    l.q = Load(weights, Role::kQ, Role::kQBias, layer, l.n.projections);
    l.k = Load(weights, Role::kK, Role::kKBias, layer, l.n.projections);
    l.v = Load(weights, Role::kV, Role::kVBias, layer, l.n.projections);
    if (variants_.fused_qkv) {
      l.qkv.weight = at::cat({l.q.weight, l.k.weight, l.v.weight}, 0);  // [(H + 2 kv) * d, D]
      if (l.q.bias.defined()) l.qkv.bias = at::cat({l.q.bias, l.k.bias, l.v.bias}, 0);
      l.q = l.k = l.v = Projection();
    }
  }
  if (spec_->features.qk_norm) {
    l.q_norm = l.n.norm.FromCheckpoint(weights.Get(Role::kQNorm, layer));
    l.k_norm = l.n.norm.FromCheckpoint(weights.Get(Role::kKNorm, layer));
  }
  l.o = Load(weights, Role::kO, Role::kOBias, layer, l.n.projections);
}

void Decoder::LoadMlp(const Weights& weights, int64_t layer, Layer& l) const {
  using model::Role;
  if (!config_.IsMoeLayer(layer)) {
    l.gate = Load(weights, Role::kGate, Role::kGateBias, layer, l.n.mlp);
    l.up = Load(weights, Role::kUp, Role::kUpBias, layer, l.n.mlp);
    l.down = Load(weights, Role::kDown, Role::kDownBias, layer, l.n.mlp);
    return;
  }
  l.router = l.n.router.FromCheckpoint(weights.Get(Role::kRouter, layer));
  const int64_t width = config_.moe_intermediate_size;
  for (int64_t e = 0; e < config_.num_experts; ++e) {
    ops::Expert expert;
    if (config_.expert_layout == model::ExpertLayout::kPerExpert) {
      expert.gate = weights.Get(Role::kExpertGate, layer, e);
      expert.up = weights.Get(Role::kExpertUp, layer, e);
      expert.down = weights.Get(Role::kExpertDown, layer, e);
    } else {
      const at::Tensor gate_up = weights.Get(Role::kExpertsGateUp, layer).select(0, e);
      const at::Tensor down = weights.Get(Role::kExpertsDown, layer).select(0, e);
      if (config_.expert_layout == model::ExpertLayout::kFused) {  // [2I, D], [D, I]
        expert = {gate_up.slice(0, 0, width), gate_up.slice(0, width), down};
      } else {  // Qwen3-VL, used as x @ W: [D, 2I], [I, D]
        expert = {gate_up.slice(1, 0, width).t(), gate_up.slice(1, width).t(), down.t()};
      }
    }
    l.experts.push_back({l.n.mlp.FromCheckpoint(expert.gate), l.n.mlp.FromCheckpoint(expert.up),
                         l.n.mlp.FromCheckpoint(expert.down)});
  }
}

QueryKeyValue Decoder::Project(const Layer& l, const at::Tensor& x, const CosSin& rotary) const {
  const int64_t batch = x.size(0), length = x.size(1);
  const int64_t kv = config_.num_kv_heads, groups = config_.group_size(), d = config_.head_dim,
                heads = config_.num_heads, q_width = heads * d, kv_width = kv * d;
  at::Tensor q, k, v;  // [B, T, heads, d]
  if (variants_.fused_qkv) {
    at::Tensor qkv = ops::Linear(l.n.projections, x, l.qkv.weight, l.qkv.bias);
    if (spec_->features.packed_qkv) {
      // The remote code's view: [b, q, kv, G + 2, d]; q = [..., :G, :], k = [..., -2, :], v = [..., -1, :].
      qkv = qkv.view({batch, length, kv, groups + 2, d});
      q = qkv.slice(3, 0, groups).reshape({batch, length, heads, d});
      k = qkv.select(3, groups);
      v = qkv.select(3, groups + 1);
    } else {
      q = qkv.slice(-1, 0, q_width).reshape({batch, length, -1, d});
      k = qkv.slice(-1, q_width, q_width + kv_width).reshape({batch, length, -1, d});
      v = qkv.slice(-1, q_width + kv_width).reshape({batch, length, -1, d});
    }
  } else {
    q = ops::Linear(l.n.projections, x, l.q.weight, l.q.bias).view({batch, length, -1, d});
    k = ops::Linear(l.n.projections, x, l.k.weight, l.k.bias).view({batch, length, -1, d});
    v = ops::Linear(l.n.projections, x, l.v.weight, l.v.bias).view({batch, length, -1, d});
  }
  // Precision policy: each step in its module's numerics (no-ops in a uniform run).
  const Numerics* qk = &l.n.projections;
  if (l.q_norm.defined()) {  // Qwen3: RMSNorm over each head's d values, before rope
    q = ops::RmsNorm(l.n.norm, Cast(q, *qk, l.n.norm), l.q_norm, config_.rms_norm_eps);
    k = ops::RmsNorm(l.n.norm, Cast(k, *qk, l.n.norm), l.k_norm, config_.rms_norm_eps);
    qk = &l.n.norm;
  }
  q = ops::ApplyRotary(rotary_n_, Cast(q, *qk, rotary_n_).transpose(1, 2), rotary.cos, rotary.sin);
  k = ops::ApplyRotary(rotary_n_, Cast(k, *qk, rotary_n_).transpose(1, 2), rotary.cos, rotary.sin);
  // The cache holds keys and values in the layer's attention-scores precision.
  return {Cast(q, rotary_n_, l.n.scores), Cast(k, rotary_n_, l.n.scores),
          Cast(v, l.n.projections, l.n.scores).transpose(1, 2)};
}

at::Tensor Decoder::Attend(int64_t layer, const QueryKeyValue& qkv, KVCache& cache,
                           const StepContext& context) {
  const Layer& l = layers_[layer];
  const ops::AttentionInputs& inputs = l.window > 0 ? context.windowed : context.inputs;
  // The keys and values attention reads: [B, kv, S, d] (kGrowing; attention repeats them to the
  // query heads) or the static buffers' live views [B, H, S, d], already repeated (then attention's
  // repeat is the identity).
  at::Tensor keys, values;
  if (cache.layout == KVCache::Layout::kGrowing) {
    ops::AppendToCache(cache.keys[layer], cache.values[layer], qkv.k, qkv.v);
    keys = cache.keys[layer];
    values = cache.values[layer];
  } else {
    const ops::CacheView live =
        ops::WriteToStaticCache(cache.keys[layer], cache.values[layer], qkv.k, qkv.v,
                                inputs.past, config_.group_size(), cache.capacity_hint);
    keys = live.keys;
    values = live.values;
  }
  const ops::ScoreScaling scaling = variants_.divide_scores_by_sqrt
                                        ? ops::ScoreScaling::kDivideBySqrt
                                        : ops::ScoreScaling::kMultiplyByInverse;
  return variants_.sdpa_attention
             ? ops::SdpaAttention(l.n.scores, qkv.q, keys, values, inputs)
             : ops::EagerAttention(l.n.scores, qkv.q, keys, values, inputs, scaling);
}

at::Tensor Decoder::Output(const Layer& l, const at::Tensor& attention) const {
  const int64_t batch = attention.size(0), length = attention.size(2);
  // [B, H, T, d] -> [B, T, H, d] -> [B, T, H * d]
  at::Tensor merged = Cast(attention, l.n.scores, l.n.projections).transpose(1, 2).contiguous()
                          .reshape({batch, length, -1});
  return ops::Linear(l.n.projections, merged, l.o.weight, l.o.bias);
}

at::Tensor Decoder::Mlp(const Layer& l, const at::Tensor& x) const {
  // x and the result in the layer's MLP numerics (the router reads x in its own).
  const Numerics& n = l.n.mlp;
  if (!l.experts.empty()) {
    return ops::SparseMoe(n, x, l.router, l.experts, config_.experts_per_token,
                          config_.norm_topk_prob, &l.n.router);
  }
  if (!l.gate.bias.defined()) return ops::GatedMlp(n, x, l.gate.weight, l.up.weight, l.down.weight);
  // Llama mlp_bias: each projection with its bias.
  at::Tensor activated = n.Round(at::silu(ops::Linear(n, x, l.gate.weight, l.gate.bias)));
  at::Tensor product = n.Round(activated * ops::Linear(n, x, l.up.weight, l.up.bias));
  return ops::Linear(n, product, l.down.weight, l.down.bias);
}

std::vector<c10::Device> Decoder::devices() const {
  std::vector<c10::Device> devices;
  for (const PlacementStage& stage : placement_.stages) {
    if (std::find(devices.begin(), devices.end(), stage.device) == devices.end()) {
      devices.push_back(stage.device);
    }
  }
  return devices;
}

at::Tensor Decoder::ToStage(const at::Tensor& x, c10::Device device) {
  if (!x.defined()) return x;
  // Between two devices: a device-to-device copy on both devices' current streams (libtorch orders
  // it after the producer and before the consumer); on one device (CPU stages): a copy all the same.
  return x.device() == device ? x.clone() : x.to(device);
}

StepContext Decoder::MoveContext(const StepContext& first, c10::Device device) {
  auto move = [&](ops::AttentionInputs inputs) {
    inputs.positions = ToStage(inputs.positions, device);
    inputs.additive_mask = ToStage(inputs.additive_mask, device);
    inputs.allowed = ToStage(inputs.allowed, device);
    return inputs;
  };
  StepContext moved = first;
  moved.inputs = move(first.inputs);
  moved.windowed = move(first.windowed);
  moved.rotary = {ToStage(first.rotary.cos, device), ToStage(first.rotary.sin, device)};
  return moved;
}

void Decoder::CheckTokens(const at::Tensor& tokens, const KVCache& cache) const {
  if (!tokens.device().is_cpu() && cache.device_tokens_trusted) return;
  // CPU ids: min/max on the host, no device involved; device ids: one synchronisation.
  const int64_t low = tokens.min().item<int64_t>(), high = tokens.max().item<int64_t>();
  if (low < 0 || high >= config_.vocab_size) {
    throw InputError(fmt::format("Forward: token id {} is outside the vocabulary [0, {})",
                                 low < 0 ? low : high, config_.vocab_size));
  }
}

std::string Decoder::RecordBlocker() const {
  if (placement_.stages.size() > 1) {
    return "layers placed over several devices (a recorded piece runs on one device)";
  }
  for (const Layer& l : layers_) {
    if (!l.experts.empty()) {
      return "MoE layers: the routing reads the chosen experts on the host (a synchronisation and "
             "data-dependent shapes)";
    }
  }
  return "";
}

const Numerics& Decoder::StreamNumerics(int64_t layer) const {
  return layer == 0 ? embedding_n_ : layers_[layer - 1].n.residual;
}

StepContext Decoder::Prepare(const at::Tensor& tokens, KVCache& cache,
                             const at::Tensor& attention_mask) {
  if (!tokens.defined() || tokens.dim() != 2 || tokens.scalar_type() != at::kLong ||
      tokens.size(1) == 0) {
    throw InputError("Forward: tokens must be a non-empty int64 tensor [batch, tokens]");
  }
  const int64_t batch = tokens.size(0), length = tokens.size(1), past = cache.length;
  CheckTokens(tokens, cache);
  if (cache.keys.empty()) {
    cache.keys.resize(config_.num_layers);
    cache.values.resize(config_.num_layers);
  }
  if (static_cast<int64_t>(cache.keys.size()) != config_.num_layers ||
      cache.values.size() != cache.keys.size()) {
    throw InputError(fmt::format("Forward: the KV cache has {} layers, the model {}",
                                 cache.keys.size(), config_.num_layers));
  }
  const bool growing = cache.layout == KVCache::Layout::kGrowing;
  if (cache.keys[0].defined() &&
      (cache.keys[0].size(0) != batch ||
       (growing ? cache.keys[0].size(2) != past : cache.keys[0].size(2) < past))) {
    throw InputError(fmt::format(
        "Forward: the KV cache holds batch {} with {} positions, but length says {} and the "
        "tokens have batch {}", cache.keys[0].size(0), cache.keys[0].size(2), past, batch));
  }

  StepContext context;
  context.past = past;
  context.length = length;
  context.inputs = ops::MakeAttentionInputs(numerics_, batch, past, length, attention_mask,
                                            !variants_.sdpa_attention, variants_.sdpa_attention);
  // Sliding-window layers read through their own mask (HF's create_sliding_window_causal_mask).
  context.windowed =
      window_ > 0 ? ops::MakeAttentionInputs(numerics_, batch, past, length, attention_mask,
                                             !variants_.sdpa_attention, variants_.sdpa_attention,
                                             window_)
                  : context.inputs;
  context.rotary = rotary_.Compute(context.inputs.positions, past + length,
                                   context.inputs.max_position);
  return context;
}

at::Tensor Decoder::Embed(const at::Tensor& tokens) {
  return at::embedding(embedding_, tokens.to(numerics_.device));  // [B, T, D]
}

at::Tensor Decoder::PreAttention(int64_t layer, const at::Tensor& hidden, const CosSin& rotary,
                                 QueryKeyValue& qkv) {
  const Layer& w = layers_[layer];
  const LayerNumerics& n = w.n;
  // Precision policy: Cast is a no-op in a uniform run.
  at::Tensor residual = Cast(hidden, StreamNumerics(layer), n.residual);
  at::Tensor normed = ops::RmsNorm(n.norm, Cast(residual, n.residual, n.norm), w.attention_norm,
                                   config_.rms_norm_eps);
  qkv = Project(w, Cast(normed, n.norm, n.projections), rotary);
  return residual;
}

at::Tensor Decoder::PostAttention(int64_t layer, const at::Tensor& residual,
                                  const at::Tensor& attention, const Observer* observer) {
  const Layer& w = layers_[layer];
  const LayerNumerics& n = w.n;
  at::Tensor hidden =
      ops::Add(n.residual, residual, Cast(Output(w, attention), n.projections, n.residual));
  Observe(observer, ObservationPoint::kAttentionBlock, layer, hidden);
  at::Tensor normed = ops::RmsNorm(n.norm, Cast(hidden, n.residual, n.norm), w.mlp_norm,
                                   config_.rms_norm_eps);
  at::Tensor mlp = Mlp(w, Cast(normed, n.norm, n.mlp));
  hidden = ops::Add(n.residual, hidden, Cast(mlp, n.mlp, n.residual));
  Observe(observer, ObservationPoint::kMlpBlock, layer, hidden);
  return hidden;
}

at::Tensor Decoder::Head(const at::Tensor& input, const Observer* observer) {
  const int64_t length = input.size(1);
  at::Tensor hidden =
      ops::RmsNorm(final_norm_n_, Cast(input, StreamNumerics(config_.num_layers), final_norm_n_),
                   final_norm_, config_.rms_norm_eps);
  Observe(observer, ObservationPoint::kFinalNorm, -1, hidden);
  if (!variants_.lm_head_all_positions) hidden = hidden.slice(1, length - 1, length);
  // The LM head's output is a run-dtype tensor (rounded); the references then call .float().
  at::Tensor logits = ops::Linear(lm_head_n_, Cast(hidden, final_norm_n_, lm_head_n_), lm_head_)
                          .to(numerics_.logits_type);
  Observe(observer, ObservationPoint::kLogits, -1, logits);
  return logits;
}

void Decoder::Finish(KVCache& cache, const StepContext& context) {
  cache.length = context.past + context.length;
}

at::Tensor Decoder::Forward(const at::Tensor& tokens, KVCache& cache,
                            const at::Tensor& attention_mask, const Observer* observer) {
  // No autograd bookkeeping: weights never require grad, and this skips the autograd dispatch.
  at::AutoDispatchBelowADInplaceOrView no_autograd;
  const Tf32Scope tf32(numerics_);  // this model's TF32 setting while it runs (CUDA)
  // Placement: stage s runs on its device with a copy of the first stage's context.
  std::vector<StepContext> staged;
  staged.reserve(placement_.stages.size());
  staged.push_back(Prepare(tokens, cache, attention_mask));
  at::Tensor hidden = Embed(tokens);
  Observe(observer, ObservationPoint::kEmbedding, -1, hidden);
  for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
    if (layer == placement_.stages[staged.size() - 1].end_layer) {  // a stage boundary
      const c10::Device device = placement_.stages[staged.size()].device;
      staged.push_back(MoveContext(staged.front(), device));
      hidden = ToStage(hidden, device);
    }
    const StepContext& context = staged.back();
    QueryKeyValue qkv;
    const at::Tensor residual = PreAttention(layer, hidden, context.rotary, qkv);
    const at::Tensor attention = Attend(layer, qkv, cache, context);
    hidden = PostAttention(layer, residual, attention, observer);
  }
  at::Tensor logits = Head(hidden, observer);
  Finish(cache, staged.front());
  return logits;
}

}  // namespace parity::forward
