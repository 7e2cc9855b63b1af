// The verdict rule (compare/verdict.h) measured on a labelled set built here: pairs that compute the
// same function (an exact InternLM2 -> Llama conversion; one model at two precisions) and planted
// faults (one MLP weight scaled by 1.05, two layers' tensors swapped, a square tensor transposed, a
// tensor's rows permuted, rope_theta and rms_norm_eps changed), over two depths and two logit
// scales, at FP32 and BF16, several prompts, 48 steps. Each divergence is classified with the run's
// own evidence (observed noise + dtype + depth) and again with the FP64 oracle (a run without a flip
// gets the pair's verdict on its logits); the old fixed 4-ULP rule is tabulated beside them. The confusion tables are printed; the test fails on any `real`
// verdict for a same-function pair (a false alarm), and when the 1.05-scaled MLP weight is not
// called `real` by the oracle (or, at FP32, by the run's own evidence).
//
// The models are BF16 checkpoints (weights rounded to BF16, as a published checkpoint stores them)
// with a realistic logit scale: random init with projections 1/sqrt(fan_in) (activations O(1)) and
// an LM head scaled so that the logits' standard deviation is `logit_scale` (2-4 in released LLMs).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/compare/metrics.h"
#include "harness/compare/suite.h"
#include "harness/compare/verdict.h"
#include "harness/convert/qkv_split.h"
#include "harness/forward/causal_lm.h"
#include "harness/forward/weights.h"
#include "harness/io/safetensors.h"
#include "harness/model/arch.h"
#include "tests/test_util.h"

namespace parity {
namespace {

using forward::Precision;
using model::Architecture;
using model::Role;

constexpr int64_t kSteps = 48;

model::ModelConfig Config(Architecture arch, int64_t layers) {
  model::ModelConfig c;
  c.arch = arch;
  c.source = "labelled";
  c.vocab_size = 512;
  c.hidden_size = 128;
  c.num_layers = layers;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 32;
  c.intermediate_size = 352;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.bias = false;
  return c;
}

at::Tensor Bf16(at::Tensor x) { return x.to(at::kBFloat16); }

// Seeded random InternLM2 weights, stored in BF16.
forward::Weights RandomModel(const model::ModelConfig& c, double logit_scale, uint64_t seed) {
  at::manual_seed(seed);
  auto randn = [](std::vector<int64_t> shape, double scale) {
    return Bf16(at::randn(shape, at::kDouble) * scale);
  };
  const double in = 1.0 / std::sqrt(double(c.hidden_size));
  const int64_t qkv_rows = c.num_kv_heads * (c.group_size() + 2) * c.head_dim;
  forward::Weights w;
  w.Set(Role::kEmbedding, -1, randn({c.vocab_size, c.hidden_size}, 1.0));
  w.Set(Role::kFinalNorm, -1, Bf16(1.0 + at::randn({c.hidden_size}, at::kDouble) * 0.1));
  w.Set(Role::kLmHead, -1, randn({c.vocab_size, c.hidden_size}, logit_scale * in));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    w.Set(Role::kAttentionNorm, i, Bf16(1.0 + at::randn({c.hidden_size}, at::kDouble) * 0.1));
    w.Set(Role::kQkv, i, randn({qkv_rows, c.hidden_size}, in));
    w.Set(Role::kO, i, randn({c.hidden_size, c.num_heads * c.head_dim}, in));
    w.Set(Role::kMlpNorm, i, Bf16(1.0 + at::randn({c.hidden_size}, at::kDouble) * 0.1));
    w.Set(Role::kGate, i, randn({c.intermediate_size, c.hidden_size}, in));
    w.Set(Role::kUp, i, randn({c.intermediate_size, c.hidden_size}, in));
    w.Set(Role::kDown, i, randn({c.hidden_size, c.intermediate_size},
                                1.0 / std::sqrt(double(c.intermediate_size))));
  }
  return w;
}

// convert2llama's renaming and wqkv split, in memory (bit-for-bit slices).
forward::Weights ToLlama(const model::ModelConfig& c, const forward::Weights& w) {
  forward::Weights out;
  for (const auto& [key, tensor] : w.tensors) {
    if (key.first != Role::kQkv) out.tensors[key] = tensor;
  }
  for (int64_t i = 0; i < c.num_layers; ++i) {
    convert::SplitQkv split =
        convert::SplitPackedQkv(w.Get(Role::kQkv, i), convert::QkvLayoutOf(c), "wqkv");
    out.Set(Role::kQ, i, split.q);
    out.Set(Role::kK, i, split.k);
    out.Set(Role::kV, i, split.v);
  }
  return out;
}

struct Variant {
  std::string name;
  bool same_function;
  model::ModelConfig config;
  forward::Weights weights;
  Precision precision_b;  // B's precision when it differs from A's (precision pairs)
  bool precision_pair = false;
};

std::vector<Variant> Variants(const model::ModelConfig& c, const forward::Weights& w) {
  std::vector<Variant> out;
  auto copy = [](const forward::Weights& from) {
    forward::Weights to;
    for (const auto& [key, tensor] : from.tensors) to.tensors[key] = tensor.clone();
    return to;
  };
  const int64_t mid = c.num_layers / 2;
  model::ModelConfig llama = c;
  llama.arch = Architecture::kLlama;
  out.push_back({"conversion", true, llama, ToLlama(c, w), Precision::kFP32});
  out.push_back({"@fp32 vs @bf16", true, c, copy(w), Precision::kBF16, true});
  out.push_back({"@fp32 vs @fp16", true, c, copy(w), Precision::kFP16, true});
  {
    forward::Weights f = copy(w);
    f.Set(Role::kDown, mid, Bf16(f.Get(Role::kDown, mid).to(at::kDouble) * 1.05));
    out.push_back({"mlp x1.05", false, c, std::move(f), Precision::kFP32});
  }
  {
    forward::Weights f = copy(w);
    at::Tensor up = f.Get(Role::kUp, mid);
    f.Set(Role::kUp, mid, f.Get(Role::kUp, mid + 1));
    f.Set(Role::kUp, mid + 1, up);
    out.push_back({"swapped", false, c, std::move(f), Precision::kFP32});
  }
  {
    forward::Weights f = copy(w);
    f.Set(Role::kO, mid, f.Get(Role::kO, mid).t().contiguous());
    out.push_back({"transposed", false, c, std::move(f), Precision::kFP32});
  }
  {
    forward::Weights f = copy(w);
    at::Tensor gate = f.Get(Role::kGate, mid);
    at::Tensor perm = at::roll(at::arange(gate.size(0)), 1);  // rows shifted by one
    f.Set(Role::kGate, mid, gate.index_select(0, perm).contiguous());
    out.push_back({"permuted", false, c, std::move(f), Precision::kFP32});
  }
  {
    model::ModelConfig theta = c;
    theta.rope_theta = 20000.0;
    out.push_back({"rope_theta", false, theta, copy(w), Precision::kFP32});
  }
  {
    model::ModelConfig eps = c;
    eps.rms_norm_eps = 1e-3;
    out.push_back({"rms_norm_eps", false, eps, copy(w), Precision::kFP32});
  }
  return out;
}

std::vector<std::vector<int64_t>> Prompts(int64_t count) {
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t p = 0; p < count; ++p) {
    std::vector<int64_t> ids = {1};
    for (int64_t i = 0; i < 6 + p; ++i) ids.push_back((37 * (p + 1) + 101 * i) % 500 + 3);
    prompts.push_back(ids);
  }
  return prompts;
}

// Rows: label; columns: verdict ("none" = no divergence in kSteps).
using Table = std::map<std::string, std::map<std::string, int>>;

std::string FormatTable(const std::string& title, const Table& table) {
  const std::vector<std::string> columns = {"rounding", "real", "precision_failure",
                                            "undetermined", "none"};
  std::string out = title + "\n" + fmt::format("  {:<16}", "label");
  for (const std::string& c : columns) out += fmt::format("{:>18}", c);
  out += "\n";
  for (const auto& [label, counts] : table) {
    out += fmt::format("  {:<16}", label);
    for (const std::string& c : columns) {
      auto it = counts.find(c);
      out += fmt::format("{:>18}", it == counts.end() ? 0 : it->second);
    }
    out += "\n";
  }
  return out;
}

TEST(VerdictLabelledTest, ConfusionTablesOverSameFunctionPairsAndPlantedFaults) {
  struct Setting {
    int64_t layers;
    double logit_scale;
    int64_t prompts;
  };
  // The 24-layer, logit-scale-3 model is the main case (3 prompts, every variant); the others add
  // a flatter logit scale and a shallow model with fewer prompts (and no emulated FP16, the
  // slowest), keeping the test near 30 s of CPU time on 2 cores.
  const std::vector<Setting> settings = {{24, 3.0, 3}, {24, 1.5, 1}, {6, 3.0, 2}};
  Table ulp_rule, noise_rule, oracle_rule;
  std::map<std::string, int> flips, runs;
  std::map<std::string, Table> per_variant_oracle;
  std::vector<std::string> false_alarms, misses;
  std::map<std::string, double> largest_same_function_rel;  // by the pair's coarser precision
  for (const Setting& setting : settings) {
    const model::ModelConfig config = Config(Architecture::kInternLM2, setting.layers);
    const forward::Weights weights = RandomModel(config, setting.logit_scale, 7);
    const std::vector<Variant> variants = Variants(config, weights);
    const auto prompts = Prompts(setting.prompts);
    for (const Precision precision : {Precision::kFP32, Precision::kBF16}) {
      const auto numerics = forward::MakeNumerics(precision, c10::kCPU);
      auto model_a = forward::MakeCausalLM(config, weights, numerics);
      auto model_a64 =
          forward::MakeCausalLM(config, weights, forward::MakeNumerics(Precision::kFP64, c10::kCPU));
      for (const Variant& v : variants) {
        if (v.precision_pair && precision != Precision::kFP32) continue;
        if (v.precision_b == Precision::kFP16 && v.precision_pair && setting.prompts < 3) continue;
        const Precision precision_b = v.precision_pair ? v.precision_b : precision;
        auto model_b = forward::MakeCausalLM(v.config, v.weights,
                                             forward::MakeNumerics(precision_b, c10::kCPU));
        auto model_b64 = forward::MakeCausalLM(v.config, v.weights,
                                               forward::MakeNumerics(Precision::kFP64, c10::kCPU));
        const std::string label = (v.same_function ? "same: " : "fault: ") + v.name;
        for (size_t p = 0; p < prompts.size(); ++p) {
          ++runs[label];
          compare::RunRequest request;
          request.id = fmt::format("L{}s{}/{}/{}/p{}", setting.layers, setting.logit_scale,
                                   forward::PrecisionName(precision), v.name, p);
          request.prompt_tokens = prompts[p];
          request.pair = {{"a", forward::PrecisionName(precision), "", false},
                          {"b", forward::PrecisionName(precision_b), "", false}};
          request.precision_a = precision;
          request.precision_b = precision_b;
          request.greedy.max_new_tokens = kSteps;
          request.keep_logits = true;
          compare::RunOutcome out =
              compare::RunPair(*model_a, *model_b, request, compare::IdTextDecoder());
          // Each run's verdict: its first divergence's, or without a flip whether the logits
          // differ by more than rounding; the ULP rule has a verdict only for a flip.
          std::string ulp_kind = "none";
          std::string noise_kind = out.run.verdict_kind.value_or("none");
          if (out.run.first_divergence) {
            const compare::FirstDivergence& d = *out.run.first_divergence;
            ulp_kind = d.flip_gap <= d.tolerance ? "rounding" : "real";
          }
          const bool flipped = out.run.first_divergence.has_value();
          if (v.same_function) {
            double& largest = largest_same_function_rel[forward::PrecisionName(
                compare::CoarserPrecision(precision, precision_b))];
            for (const compare::StepRecord& s : out.steps) {
              if (s.same_context && s.nmse) largest = std::max(largest, std::sqrt(*s.nmse));
            }
          }
          at::Tensor a64 = compare::OracleLogits(*model_a64, out, request, true);
          at::Tensor b64 = compare::OracleLogits(*model_b64, out, request, false);
          compare::ApplyOracle(out, a64, b64, request);
          std::string oracle_kind = out.run.verdict_kind.value_or("none");
          if (flipped) ++flips[label];
          ulp_rule[label][ulp_kind]++;
          noise_rule[label][noise_kind]++;
          oracle_rule[label][oracle_kind]++;
          if (v.same_function && (noise_kind == "real" || oracle_kind == "real")) {
            false_alarms.push_back(request.id + ": " + out.run.verdict_evidence.reason);
          }
          if (v.name == "mlp x1.05") {
            // The oracle must call it real; at FP32 so must the run's own evidence.
            if (oracle_kind != "real" || (precision == Precision::kFP32 && noise_kind != "real")) {
              misses.push_back(fmt::format("{}: noise {} / oracle {}: {}", request.id, noise_kind,
                                           oracle_kind, out.run.verdict_evidence.reason));
            }
          }
        }
      }
    }
  }
  std::string flip_counts = "runs with a flip in 48 steps:";
  for (const auto& [label, count] : runs) {
    flip_counts += fmt::format(" {} {}/{};", label, flips[label], count);
  }
  std::cout << FormatTable("Old rule, flips only (flip gap <= 4 ULPs -> near-tie, else real):",
                           ulp_rule)
            << FormatTable("Run verdicts from the run's own evidence (observed noise + dtype + "
                           "depth, then ULPs):", noise_rule)
            << FormatTable("Run verdicts with the FP64 oracle:", oracle_rule) << flip_counts << "\n"
            << "largest same-function relative difference (sqrt nmse) by coarser precision, "
               "against the rounding budget at 24 layers:\n";
  for (const auto& [precision, largest] : largest_same_function_rel) {
    std::cout << fmt::format("  {}: {:.3g} (budget {:.3g})\n", precision, largest,
                             compare::RoundingBudget(forward::ParsePrecision(precision), 24));
  }
  for (const std::string& f : false_alarms) ADD_FAILURE() << "false alarm: " << f;
  for (const std::string& m : misses) ADD_FAILURE() << "miss: " << m;
  EXPECT_EQ(oracle_rule["fault: mlp x1.05"]["real"], runs["fault: mlp x1.05"]);
}

}  // namespace
}  // namespace parity
