#include "harness/diagnose/explain.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "harness/compare/metrics.h"
#include "harness/core/error.h"
#include "harness/decode/greedy.h"
#include "harness/forward/memory_plan.h"

namespace parity::diagnose {

namespace {

bool* Field(forward::Variants& v, const std::string& name) {
  if (name == "fused_qkv") return &v.fused_qkv;
  if (name == "sdpa_attention") return &v.sdpa_attention;
  if (name == "lm_head_all_positions") return &v.lm_head_all_positions;
  if (name == "rotary_precomputed") return &v.rotary_precomputed;
  if (name == "kv_cache") return &v.kv_cache;
  if (name == "divide_scores_by_sqrt") return &v.divide_scores_by_sqrt;
  throw InputError(fmt::format("variant \"{}\": expected one of fused_qkv, sdpa_attention, "
                               "lm_head_all_positions, rotary_precomputed, kv_cache, "
                               "divide_scores_by_sqrt, {}", name, kAllVariants));
}

std::string StepText(const std::optional<int64_t>& step) {
  return step ? std::to_string(*step) : std::string("none");
}

nlohmann::ordered_json StatsJson(const PairStats& s) {
  nlohmann::ordered_json json;
  json["first_divergence"] =
      s.first_divergence ? nlohmann::ordered_json(*s.first_divergence) : nlohmann::ordered_json();
  json["steps"] = s.steps;
  json["mean_kl"] = s.mean_kl;
  json["max_kl"] = s.max_kl;
  return json;
}

}  // namespace

const std::vector<std::string>& VariantNames() {
  static const std::vector<std::string> names = {"fused_qkv", "sdpa_attention",
                                                 "lm_head_all_positions", "rotary_precomputed",
                                                 "kv_cache", "divide_scores_by_sqrt"};
  return names;
}

forward::Variants FlipVariant(const forward::Variants& variants, const std::string& name) {
  forward::Variants flipped = variants;
  bool* field = Field(flipped, name);
  *field = !*field;
  return flipped;
}

bool VariantValue(const forward::Variants& variants, const std::string& name) {
  forward::Variants copy = variants;
  return *Field(copy, name);
}

PairStats RunPairStats(forward::CausalLM& a, forward::CausalLM& b,
                       const std::vector<int64_t>& prompt, int64_t max_new_tokens,
                       const std::vector<int64_t>& eos_ids) {
  decode::GreedyOptions greedy;
  greedy.mode = decode::GreedyMode::kTeacherForced;
  greedy.teacher_is_a = true;
  greedy.max_new_tokens = max_new_tokens;
  greedy.eos_ids = eos_ids;
  PairStats stats;
  double kl_sum = 0;
  decode::RunLockstep(a, b, prompt, greedy, [&](const decode::GreedyStep& step) {
    const double kl = compare::CompareLogits(step.logits_a, step.logits_b, 1).kl;
    kl_sum += kl;
    // NaN (non-finite logits) never vanishes from the maximum: it sticks.
    if (!std::isnan(stats.max_kl) && (std::isnan(kl) || kl > stats.max_kl)) stats.max_kl = kl;
    ++stats.steps;
    if (!stats.first_divergence && step.token_a != step.token_b) stats.first_divergence = step.step;
  });
  stats.mean_kl = stats.steps > 0 ? kl_sum / stats.steps : 0;
  return stats;
}

std::string DivergenceEffect(const PairStats& baseline, const PairStats& flipped) {
  if (baseline.first_divergence == flipped.first_divergence) return "unchanged";
  if (!flipped.first_divergence) return "removed";
  if (!baseline.first_divergence) return "introduced";
  return *flipped.first_divergence > *baseline.first_divergence ? "moved later" : "moved earlier";
}

ExplainResult Explain(const ModelSource& a, const ModelSource& b,
                      const std::vector<int64_t>& prompt, const ExplainOptions& options) {
  std::vector<std::string> names = options.variants;
  if (names.empty()) {
    names = VariantNames();
    names.push_back(kAllVariants);
  }
  for (const std::string& name : names) {
    if (name != kAllVariants) FlipVariant(forward::Variants(), name);  // validates
  }
  for (const std::string& side : options.sides) {
    if (side != "a" && side != "b") {
      throw InputError(fmt::format("--side: expected a, b or both, got \"{}\"", side));
    }
  }
  if (!options.precisions_b.empty() && options.precisions_b.size() != options.precisions.size()) {
    throw InputError("explain: precisions_b must be empty or as long as precisions");
  }
  const forward::Variants base_a = forward::ReferenceVariants(a.config.arch);
  const forward::Variants base_b = forward::ReferenceVariants(b.config.arch);
  ExplainResult result;
  result.label_a = a.label;
  result.label_b = b.label;
  result.variants_a = forward::DescribeVariants(base_a);
  result.variants_b = forward::DescribeVariants(base_b);
  result.max_new_tokens = options.max_new_tokens;

  for (size_t pi = 0; pi < options.precisions.size(); ++pi) {
    const forward::PrecisionPolicy& precision = options.precisions[pi];
    const forward::PrecisionPolicy& precision_b =
        options.precisions_b.empty() ? precision : options.precisions_b[pi];
    const forward::Numerics numerics = forward::MakeNumerics(precision, options.device);
    const forward::Numerics numerics_b = forward::MakeNumerics(precision_b, options.device);
    ExplainPrecision baseline;
    baseline.precision = precision.Text();
    if (precision_b != precision) {
      baseline.precision += std::string("/") + precision_b.Text();
    }
    baseline.numerics = numerics.Describe();
    if (precision_b != precision) baseline.numerics += " / " + numerics_b.Describe();
    // Resident at once: both models and one side rebuilt with a variant flipped (the larger
    // side, as either may be rebuilt). Planned before loading, as compare and localize do.
    {
      const int64_t length = static_cast<int64_t>(prompt.size()) + options.max_new_tokens;
      forward::ModelFootprint fa =
          forward::EstimateFootprint(a.config, precision.Widest(), options.device, length,
                                     a.label + "@" + precision.Text());
      forward::ModelFootprint fb =
          forward::EstimateFootprint(b.config, precision_b.Widest(), options.device, length,
                                     b.label + "@" + precision_b.Text());
      forward::ModelFootprint flipped = fa.total() >= fb.total() ? fa : fb;
      flipped.label += " (variant flipped)";
      forward::RequireFits({fa, fb, flipped}, options.device, "explain " + baseline.precision);
    }
    std::unique_ptr<forward::CausalLM> model_a = a.Build(numerics, &base_a);
    std::unique_ptr<forward::CausalLM> model_b = b.Build(numerics_b, &base_b);
    baseline.baseline =
        RunPairStats(*model_a, *model_b, prompt, options.max_new_tokens, options.eos_ids);
    spdlog::info("explain {}: baseline first divergence {}", baseline.precision,
                 StepText(baseline.baseline.first_divergence));
    for (const std::string& side : options.sides) {
      const ModelSource& source = side == "a" ? a : b;
      const forward::Variants& base = side == "a" ? base_a : base_b;
      const forward::Variants& other = side == "a" ? base_b : base_a;
      for (const std::string& name : names) {
        VariantRow row;
        row.precision = baseline.precision;
        row.variant = name;
        row.side = side;
        forward::Variants flipped;
        if (name == kAllVariants) {
          flipped = other;
          row.from_variants = forward::DescribeVariants(base);
          row.to_variants = forward::DescribeVariants(other);
        } else {
          row.from = VariantValue(base, name);
          flipped = FlipVariant(base, name);
        }
        std::unique_ptr<forward::CausalLM> changed;
        try {
          changed = source.Build(side == "a" ? numerics : numerics_b, &flipped);
        } catch (const InputError& e) {
          row.available = false;
          row.note = e.what();
          row.effect = "unavailable";
          result.rows.push_back(row);
          continue;
        }
        row.flipped = side == "a" ? RunPairStats(*changed, *model_b, prompt,
                                                 options.max_new_tokens, options.eos_ids)
                                  : RunPairStats(*model_a, *changed, prompt,
                                                 options.max_new_tokens, options.eos_ids);
        row.effect = DivergenceEffect(baseline.baseline, row.flipped);
        result.rows.push_back(row);
      }
    }
    result.baselines.push_back(baseline);
  }
  return result;
}

nlohmann::ordered_json ExplainToJson(const ExplainResult& r) {
  nlohmann::ordered_json json;
  json["a"] = r.label_a;
  json["b"] = r.label_b;
  json["variants_a"] = r.variants_a;
  json["variants_b"] = r.variants_b;
  json["max_new_tokens"] = r.max_new_tokens;
  json["mode"] = "teacher_forced";
  json["baselines"] = nlohmann::ordered_json::array();
  for (const ExplainPrecision& p : r.baselines) {
    json["baselines"].push_back(
        {{"precision", p.precision}, {"numerics", p.numerics}, {"stats", StatsJson(p.baseline)}});
  }
  json["rows"] = nlohmann::ordered_json::array();
  for (const VariantRow& row : r.rows) {
    nlohmann::ordered_json item;
    item["precision"] = row.precision;
    item["variant"] = row.variant;
    item["side"] = row.side;
    if (row.variant == kAllVariants) {
      item["from"] = row.from_variants;
      item["to"] = row.to_variants;
    } else {
      item["from"] = row.from;
      item["to"] = !row.from;
    }
    item["available"] = row.available;
    item["note"] = row.note;
    item["effect"] = row.effect;
    for (const ExplainPrecision& p : r.baselines) {
      if (p.precision == row.precision) item["baseline"] = StatsJson(p.baseline);
    }
    item["flipped"] = row.available ? StatsJson(row.flipped) : nlohmann::ordered_json();
    json["rows"].push_back(item);
  }
  return json;
}

std::string FormatExplain(const ExplainResult& r, bool markdown) {
  std::string out;
  out += fmt::format("{0}explain {1} vs {2}{0}: teacher-forced on A's greedy stream, {3} steps at "
                     "most\n", markdown ? "**" : "", r.label_a, r.label_b, r.max_new_tokens);
  if (markdown) out += "\n";
  out += fmt::format("{}A: {}\n{}B: {}\n", markdown ? "- " : "  ", r.variants_a,
                     markdown ? "- " : "  ", r.variants_b);
  for (const ExplainPrecision& p : r.baselines) {
    out += fmt::format("{}baseline {} ({}): first divergence {}, mean KL {:.3e}, max KL {:.3e}\n",
                       markdown ? "- " : "  ", p.precision, p.numerics,
                       StepText(p.baseline.first_divergence), p.baseline.mean_kl,
                       p.baseline.max_kl);
  }
  out += "\n";
  auto cells = [&](const VariantRow& row) {
    const PairStats* base = nullptr;
    for (const ExplainPrecision& p : r.baselines) {
      if (p.precision == row.precision) base = &p.baseline;
    }
    std::vector<std::string> c = {
        row.precision, row.variant,
        row.variant == kAllVariants
            ? fmt::format("{} := {}", row.side, row.side == "a" ? "b" : "a")
            : fmt::format("{} {}->{}", row.side, int(row.from), int(!row.from))};
    if (!row.available) {
      c.insert(c.end(), {"-", "unavailable", "-", "-"});
      return c;
    }
    c.push_back(fmt::format("{} -> {}", StepText(base->first_divergence),
                            StepText(row.flipped.first_divergence)));
    c.push_back(row.effect);
    c.push_back(fmt::format("{:.2e} -> {:.2e}", base->mean_kl, row.flipped.mean_kl));
    c.push_back(fmt::format("{:.2e} -> {:.2e}", base->max_kl, row.flipped.max_kl));
    return c;
  };
  const std::vector<std::string> header = {"dtype", "variant", "flip", "first divergence",
                                           "effect", "mean KL", "max KL"};
  const std::vector<size_t> widths = {9, 21, 6, 16, 13, 20, 20};
  auto line = [&](const std::vector<std::string>& c) {
    std::string s;
    for (size_t i = 0; i < c.size(); ++i) {
      s += markdown ? fmt::format("| {} ", c[i]) : fmt::format("{:<{}} ", c[i], widths[i]);
    }
    return s + (markdown ? "|\n" : "\n");
  };
  out += line(header);
  if (markdown) out += "|---|---|---|---|---|---|---|\n";
  for (const VariantRow& row : r.rows) out += line(cells(row));
  for (const VariantRow& row : r.rows) {
    if (!row.available) {
      out += fmt::format("{}{} {}: {}\n", markdown ? "\n" : "", row.precision, row.variant,
                         row.note);
    }
  }
  return out;
}

std::string ExplainSummary(const ExplainRun& run) {
  std::string out;
  const ExplainResult& r = run.result;
  for (const ExplainPrecision& p : r.baselines) {
    std::string line = fmt::format("{}, prompt {}, {}: ", run.pair, run.prompt_index, p.precision);
    if (!p.baseline.first_divergence) {
      line += fmt::format("no divergence in {} steps", p.baseline.steps);
    } else {
      line += fmt::format("baseline diverges at step {}", *p.baseline.first_divergence);
      std::vector<std::string> effects;
      for (const VariantRow& row : r.rows) {
        if (row.precision != p.precision || !row.available || row.effect == "unchanged") continue;
        effects.push_back(fmt::format("{} ({}) {}", row.variant, row.side, row.effect));
      }
      line += effects.empty() ? "; no switch moves it" : "; " + fmt::format("{}", fmt::join(effects, ", "));
      for (const VariantRow& row : r.rows) {
        if (row.precision == p.precision && row.variant == kAllVariants && row.available &&
            row.flipped.first_divergence) {
          line += "; it survives all_variants: the implementations do not explain it";
        }
      }
    }
    out += line + "\n";
  }
  return out;
}

nlohmann::ordered_json ExplainRunsToJson(const std::vector<ExplainRun>& runs) {
  nlohmann::ordered_json json;
  json["command"] = "explain";
  json["runs"] = nlohmann::ordered_json::array();
  json["summary"] = nlohmann::ordered_json::array();
  for (const ExplainRun& run : runs) {
    nlohmann::ordered_json item;
    item["pair"] = run.pair;
    item["prompt_index"] = run.prompt_index;
    item["prompt"] = run.prompt;
    const nlohmann::ordered_json result = ExplainToJson(run.result);
    for (const auto& [key, value] : result.items()) item[key] = value;
    json["runs"].push_back(item);
    std::string summary = ExplainSummary(run);
    size_t start = 0;
    while (start < summary.size()) {
      const size_t end = summary.find('\n', start);
      json["summary"].push_back(summary.substr(start, end - start));
      start = end + 1;
    }
  }
  return json;
}

std::string FormatExplainRuns(const std::vector<ExplainRun>& runs, bool markdown) {
  std::string out;
  for (const ExplainRun& run : runs) {
    if (runs.size() > 1) {
      out += fmt::format("{}{}, prompt {}: {}{}\n", markdown ? "### " : "== ", run.pair,
                         run.prompt_index, run.prompt, markdown ? "" : " ==");
      if (markdown) out += "\n";
    }
    out += FormatExplain(run.result, markdown) + "\n";
  }
  if (runs.size() > 1) {
    out += markdown ? "### Summary\n\n" : "summary:\n";
    for (const ExplainRun& run : runs) {
      std::string summary = ExplainSummary(run);
      size_t start = 0;
      while (start < summary.size()) {
        const size_t end = summary.find('\n', start);
        out += (markdown ? "- " : "  ") + summary.substr(start, end - start) + "\n";
        start = end + 1;
      }
    }
  }
  return out;
}

}  // namespace parity::diagnose
