#include "harness/decode/engine_check.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <memory>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/decode/greedy.h"
#include "harness/decode/piecewise.h"
#include "harness/decode/pipeline.h"
#include "harness/forward/causal_lm.h"
#include "harness/forward/ops.h"
#include "harness/forward/weights.h"
#include "harness/model/arch.h"
#include "harness/model/config.h"

namespace parity::decode {
namespace {

using forward::KVCache;

constexpr int64_t kSteps = 12;
const std::vector<int64_t> kPrompt = {1, 17, 42, 99, 3, 250, 8};

// GQA 2:1, head_dim 16, max_position_embeddings 16 with dynamic NTK: prompt + steps run past it,
// so both rotary styles take their dynamic path.
model::ModelConfig CheckConfig(const char* arch) {
  model::ModelConfig c;
  c.arch = model::Architecture(arch);
  c.source = std::string("engine-check ") + arch;
  c.vocab_size = 300;
  c.hidden_size = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.intermediate_size = 96;
  c.max_position_embeddings = 16;
  c.rope_scaling = {model::RopeScaling::Type::kDynamic, 2.0};
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.bias = false;
  c.tie_word_embeddings = false;
  return c;
}

// Every tensor the family's table lists, seeded: matrices N(0, 1/fan_in) (the LM head 4x wider, for
// logits with a realistic spread), norms 1 + N(0, 0.01), biases N(0, 0.01), embedding N(0, 1).
forward::Weights RandomWeights(const model::ModelConfig& config, uint64_t seed) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  forward::Weights weights;
  for (const model::ExpectedTensor& expected : model::ExpectedTensors(config)) {
    at::Tensor noise = at::randn(expected.shape, generator, at::TensorOptions().dtype(at::kDouble));
    const std::string& name = expected.name;
    at::Tensor value;
    if (name.find("norm") != std::string::npos) {
      value = 1 + noise * 0.1;
    } else if (expected.shape.size() == 1) {
      value = noise * 0.1;
    } else if (expected.role == model::Role::kEmbedding) {
      value = noise;
    } else {
      const double scale = expected.role == model::Role::kLmHead ? 4.0 : 1.0;
      value = noise * (scale / std::sqrt(static_cast<double>(expected.shape.back())));
    }
    weights.Set(expected.role, expected.layer, expected.expert, value.to(at::kFloat));
  }
  return weights;
}

// The first line of an error message, at most 200 characters.
std::string FirstLine(const std::string& text) {
  return text.substr(0, std::min<size_t>(text.find('\n'), 200));
}

// Runs `check`, which fills `row`. An error is rethrown where `rethrow` (a path that must not fail:
// the check stops), else it becomes a failed row naming its first line.
void RunRow(EngineCheckRow& row, bool rethrow, const std::function<void()>& check) {
  try {
    check();
  } catch (const std::exception& error) {
    if (rethrow) throw;
    row.bitwise = false;
    row.note = FirstLine(std::string("error: ") + error.what());
  }
}

at::Tensor Bits(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return c.element_size() == 8 ? c.view(at::kLong) : c.view(at::kInt);
}

// Adds the comparison of `a` and `b` (same shape, bit for bit) to `row`.
void Compare(const at::Tensor& a, const at::Tensor& b, EngineCheckRow& row) {
  const at::Tensor ca = a.to(at::kCPU), cb = b.to(at::kCPU);
  if (ca.sizes() != cb.sizes() || ca.scalar_type() != cb.scalar_type()) {
    row.bitwise = false;
    row.note = fmt::format("shapes/dtypes differ: {} vs {}", fmt::join(ca.sizes(), "x"),
                           fmt::join(cb.sizes(), "x"));
    return;
  }
  row.compared += ca.dim() >= 2 ? ca.numel() / ca.size(-1) : 1;
  if (at::equal(Bits(ca), Bits(cb))) return;
  row.bitwise = false;
  const double diff =
      at::nan_to_num(ca.to(at::kDouble) - cb.to(at::kDouble), 0.0).abs().max().item<double>();
  row.max_abs_diff = std::max(row.max_abs_diff, diff);
}

// Prompt + kSteps greedy steps with `cache`; the logits of each Forward call, the tokens fed from
// the argmax of `tokens_from` (or of this run when empty).
std::vector<at::Tensor> Decode(forward::CausalLM& model, KVCache cache,
                               std::vector<int64_t>* tokens) {
  std::vector<at::Tensor> out;
  std::vector<int64_t> ids = kPrompt;
  const bool follow = !tokens->empty();
  for (int64_t step = 0; step <= kSteps; ++step) {
    at::Tensor input = at::tensor(at::ArrayRef<int64_t>(ids), at::kLong).view({1, -1});
    at::Tensor logits = model.Forward(input, cache);
    out.push_back(logits.to(at::kCPU));
    const int64_t next = follow ? (*tokens)[step] : GreedyArgmax(logits[0][logits.size(1) - 1]);
    if (!follow) tokens->push_back(next);
    ids = {next};
  }
  return out;
}

KVCache MakeCache(KVCache::Layout layout, int64_t hint) {
  KVCache cache;
  cache.layout = layout;
  cache.capacity_hint = hint;
  return cache;
}

// Decode's steps through PiecewiseStep in `mode`, following `tokens` (the reference run's), on a
// stream of its own (CUDA graphs are recorded on a non-default stream). `status`: how it ran.
std::vector<at::Tensor> DecodePiecewise(forward::CausalLM& model, KVCache cache,
                                        const std::vector<int64_t>& tokens, GraphMode mode,
                                        std::string* status) {
  const c10::Device device = model.numerics().device;
  std::unique_ptr<c10::StreamGuard> guard;
  if (!device.is_cpu()) {
    guard = std::make_unique<c10::StreamGuard>(
        c10::impl::VirtualGuardImpl(device.type()).getStreamFromGlobalPool(device, false));
  }
  PiecewiseStep steps(model, mode);
  std::vector<at::Tensor> out;
  std::vector<int64_t> ids = kPrompt;
  for (int64_t step = 0; step <= kSteps; ++step) {
    at::Tensor input = at::tensor(at::ArrayRef<int64_t>(ids), at::kLong).view({1, -1});
    const StepOutput result = steps.Step(input, cache);
    out.push_back(result.logits.to(at::kCPU));  // waits for the step: the next one overwrites it
    if (step < kSteps) ids = {tokens[step]};
  }
  *status = steps.Status();
  return out;
}

// Piecewise (GraphMode::kPieces: the split, eagerly) or recorded (kAuto: CUDA graphs) steps against
// Forward's, with the static cache growing by doubling (capacity hint 0).
void CheckPiecewise(forward::CausalLM& model, const std::vector<at::Tensor>& reference,
                    const std::vector<int64_t>& tokens, GraphMode mode, EngineCheckRow& row) {
  std::string status;
  const auto piecewise =
      DecodePiecewise(model, MakeCache(KVCache::Layout::kStatic, 0), tokens, mode, &status);
  for (size_t i = 0; i < reference.size(); ++i) Compare(reference[i], piecewise[i], row);
  row.note = status;
  if (mode == GraphMode::kAuto && status.rfind("cuda graphs: on", 0) != 0) {
    row.tested = false;  // no graph ran: nothing was checked beyond Forward against itself
  }
}

struct Recorded {
  GreedyResult result;
  std::vector<at::Tensor> rows;  // logits_a, logits_b of every callback, in order
  std::vector<int64_t> meta;     // step, position, same_context, token_a, token_b per callback
};

Recorded Lockstep(forward::CausalLM& a, forward::CausalLM& b, GreedyOptions options, bool pipelined) {
  options.pipelined = pipelined;
  Recorded r;
  r.result = RunLockstep(a, b, kPrompt, options, [&](const GreedyStep& s) {
    r.rows.push_back(s.logits_a.clone());
    r.rows.push_back(s.logits_b.clone());
    r.meta.insert(r.meta.end(), {s.step, s.position, int64_t(s.same_context), s.token_a, s.token_b});
  });
  return r;
}

void CheckPipelined(forward::CausalLM& a, forward::CausalLM& b, GraphMode graphs,
                    EngineCheckRow& row) {
  GreedyOptions options;
  options.graphs = graphs;
  options.max_new_tokens = kSteps;
  // An EOS that A emits part-way, so that the finishing paths run too.
  Recorded probe = Lockstep(a, b, options, false);
  options.eos_ids = {probe.result.tokens_a.at(4)};
  for (int mode = 0; mode < 3; ++mode) {
    options.mode = mode == 0 ? GreedyMode::kFree : GreedyMode::kTeacherForced;
    options.teacher_is_a = mode != 2;
    const Recorded sync = Lockstep(a, b, options, false);
    const Recorded fast = Lockstep(a, b, options, true);
    const GreedyResult &x = sync.result, &y = fast.result;
    if (x.tokens_a != y.tokens_a || x.tokens_b != y.tokens_b || x.input_a != y.input_a ||
        x.input_b != y.input_b || x.same_context != y.same_context || sync.meta != fast.meta ||
        sync.rows.size() != fast.rows.size()) {
      row.bitwise = false;
      row.note = fmt::format("tokens or steps differ (mode {})", mode);
      return;
    }
    for (size_t i = 0; i < sync.rows.size(); ++i) Compare(sync.rows[i], fast.rows[i], row);
    row.note = "A " + y.engine_a + "; B " + y.engine_b;
  }
}

}  // namespace

std::vector<EngineCheckRow> CheckEngine(c10::Device device, bool graphs) {
  std::vector<EngineCheckRow> rows;
  const bool was_deterministic = at::globalContext().deterministicAlgorithms();
  const bool was_filling = pipeline::FillsUninitializedMemory();
  at::globalContext().setDeterministicAlgorithms(true, true);
  // The three precisions, and a precision policy with per-layer dtypes (layer 1's MLP in FP32, the
  // norms and the LM head in FP32, the rest BF16): the pieces carry each module's own numerics.
  const std::vector<std::string> policies = {"fp32", "bf16", "fp16",
                                             "bf16+fp32:norm,lm_head,mlp[1-1]"};
  for (const char* arch : {"internlm2", "llama", "qwen2", "qwen3"}) {
    const model::ModelConfig config = CheckConfig(arch);
    const forward::Weights weights = RandomWeights(config, 7);
    for (const std::string& policy : policies) {
      const forward::Numerics numerics =
          forward::MakeNumerics(forward::ParsePrecisionPolicy(policy), device);
      const bool mixed = !numerics.policy.Uniform();
      for (bool sdpa : {false, true}) {
        EngineCheckRow base;
        base.arch = arch;
        base.precision = policy;
        base.attention = sdpa ? "sdpa" : "eager";
        if (sdpa && !forward::ops::SdpaAvailable()) continue;
        if (sdpa && mixed) continue;  // the policy row: eager attention is enough
        forward::Variants variants = forward::ReferenceVariants(config.arch);
        variants.sdpa_attention = sdpa;
        auto model = forward::MakeCausalLM(config, weights, numerics, &variants);

        EngineCheckRow cache_row = base;
        cache_row.check = "static_cache";
        std::vector<int64_t> tokens;
        const auto reference = Decode(*model, MakeCache(KVCache::Layout::kGrowing, 0), &tokens);
        const auto grown = Decode(*model, MakeCache(KVCache::Layout::kStatic, 0), &tokens);
        const auto hinted =
            Decode(*model, MakeCache(KVCache::Layout::kStatic, int64_t(kPrompt.size()) + kSteps),
                   &tokens);
        for (size_t i = 0; i < reference.size(); ++i) {
          Compare(reference[i], grown[i], cache_row);
          Compare(reference[i], hinted[i], cache_row);
        }
        rows.push_back(cache_row);

        EngineCheckRow pieces_row = base;
        pieces_row.check = "pieces";
        if (!device.is_cpu() && !graphs) {
          // On a device the piecewise step only serves the graphs: checked with them.
          pieces_row.tested = false;
          pieces_row.note = "on a device with the graph rows (bench --check without --graphs off)";
        } else {
          RunRow(pieces_row, device.is_cpu(), [&] {
            CheckPiecewise(*model, grown, tokens, GraphMode::kPieces, pieces_row);
          });
        }
        rows.push_back(pieces_row);

        EngineCheckRow graphs_row = base;
        graphs_row.check = "graphs";
        if (!graphs) {
          graphs_row.tested = false;
          graphs_row.note = "cuda graphs off (bench --check --graphs off)";
        } else {
          RunRow(graphs_row, /*rethrow=*/false, [&] {
            CheckPiecewise(*model, grown, tokens, GraphMode::kAuto, graphs_row);
          });
        }
        rows.push_back(graphs_row);

        EngineCheckRow fill_row = base;
        fill_row.check = "no_fill";
        if (pipeline::SetFillUninitializedMemory(true)) {
          const auto filled =
              Decode(*model, MakeCache(KVCache::Layout::kStatic, 0), &tokens);
          pipeline::SetFillUninitializedMemory(false);
          const auto unfilled =
              Decode(*model, MakeCache(KVCache::Layout::kStatic, 0), &tokens);
          for (size_t i = 0; i < filled.size(); ++i) Compare(filled[i], unfilled[i], fill_row);
        } else {
          fill_row.tested = false;
          fill_row.note = "libtorch < 2.1: no fill switch (and no fill)";
        }
        rows.push_back(fill_row);

        EngineCheckRow lockstep_row = base;
        lockstep_row.check = "pipelined";
        forward::Variants other = variants;
        other.divide_scores_by_sqrt = !other.divide_scores_by_sqrt;  // a slightly different B
        auto model_b = forward::MakeCausalLM(config, weights, numerics, &other);
        // Forward's path (graphs off) must not fail; with graphs an error is a failed row.
        RunRow(lockstep_row, !graphs, [&] {
          CheckPipelined(*model, *model_b, graphs ? GraphMode::kAuto : GraphMode::kOff,
                         lockstep_row);
        });
        if (device.is_cpu()) {
          lockstep_row.tested = false;
          lockstep_row.note = "cpu: RunLockstep is synchronous either way";
        }
        rows.push_back(lockstep_row);
      }
    }
  }
  at::globalContext().setDeterministicAlgorithms(was_deterministic, true);
  pipeline::SetFillUninitializedMemory(was_filling);
  return rows;
}

std::string FormatEngineCheckRow(const EngineCheckRow& row) {
  const std::string head =
      fmt::format("{:<9} {:<4} {:<5} {:<12}", row.arch, row.precision, row.attention, row.check);
  if (!row.tested) return fmt::format("{} not tested: {}", head, row.note);
  if (row.bitwise) {
    return fmt::format("{} bitwise ({} rows){}", head, row.compared,
                       row.note.empty() ? "" : " [" + row.note + "]");
  }
  return fmt::format("{} DIFFERS max |a-b| {:.4g} ({} rows){}", head, row.max_abs_diff,
                     row.compared, row.note.empty() ? "" : " " + row.note);
}

}  // namespace parity::decode
