#include "harness/diagnose/precision_bisect.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "harness/core/error.h"
#include "harness/diagnose/explain.h"

namespace parity::diagnose {

namespace {

using forward::Module;
using forward::PrecisionOverride;
using forward::PrecisionPolicy;
using Set = std::vector<PrecisionOverride>;

int Bits(forward::Precision precision) {
  switch (precision) {
    case forward::Precision::kBF16: return 8;
    case forward::Precision::kFP16: return 11;
    case forward::Precision::kFP32: return 24;
    case forward::Precision::kFP64: return 53;
  }
  return 24;
}

std::string ItemText(const PrecisionOverride& o) {
  std::string text = forward::ModuleName(o.module);
  if (o.layers) {
    text += o.layers->first == o.layers->second
                ? fmt::format("[{}]", o.layers->first)
                : fmt::format("[{}-{}]", o.layers->first, o.layers->second);
  }
  return text;
}

std::string SetText(const Set& set) {
  if (set.empty()) return "(none)";
  std::string text;
  for (const PrecisionOverride& o : set) text += (text.empty() ? "" : ",") + ItemText(o);
  return text;
}

// "layers 20-23 MLP", "layer 5 MLP", "the MLP (every layer)", "the LM head".
std::string ItemWords(const PrecisionOverride& o) {
  std::string what;
  switch (o.module) {
    case Module::kEmbedding: what = "embedding"; break;
    case Module::kAttentionProjections: what = "attention projections"; break;
    case Module::kAttentionScores: what = "attention scores/softmax"; break;
    case Module::kRotary: what = "rotary"; break;
    case Module::kNorm: what = "norms"; break;
    case Module::kMlp: what = "MLP"; break;
    case Module::kRouter: what = "router"; break;
    case Module::kResidual: what = "residual stream"; break;
    case Module::kLmHead: what = "LM head"; break;
    case Module::kAll: what = "every module"; break;
  }
  if (o.layers) {
    if (o.layers->first == o.layers->second) return fmt::format("layer {} {}", o.layers->first, what);
    return fmt::format("layers {}-{} {}", o.layers->first, o.layers->second, what);
  }
  if (forward::ModuleIsPerLayer(o.module) && o.module != Module::kAll) {
    return fmt::format("the {} of every layer{}", what,
                       o.module == Module::kNorm ? " and the final norm" : "");
  }
  return "the " + what;
}

std::string SetWords(const Set& set) {
  std::string text;
  for (size_t i = 0; i < set.size(); ++i) {
    if (i > 0) text += i + 1 == set.size() ? " and " : ", ";
    text += ItemWords(set[i]);
  }
  return text;
}

std::string StepText(const std::optional<int64_t>& step) {
  return step ? fmt::format("step {}", *step) : "none";
}

// Runs candidate sets, memoized by the two sides' policies; keeps one built model per side.
class Searcher {
 public:
  Searcher(const ModelSource& a, const ModelSource& b, const std::vector<int64_t>& prompt,
           const BisectOptions& options, BisectResult& result)
      : a_(a), b_(b), prompt_(prompt), options_(options), result_(result) {}

  // Whether `set` suffices; runs it unless a run with the same policies exists.
  bool Suffices(const Set& set, const std::string& phase) { return Run(set, phase).suffices; }

  const BisectRun& Run(const Set& set, const std::string& phase) {
    const PrecisionPolicy pa = WithUpgrade(options_.precision_a, set, options_.upgrade);
    const PrecisionPolicy pb = WithUpgrade(options_.precision_b, set, options_.upgrade);
    const std::string key = pa.Text() + " / " + pb.Text();
    if (auto it = memo_.find(key); it != memo_.end()) return result_.runs[it->second];
    forward::CausalLM& model_a = Model(a_, pa, model_a_, key_a_);
    forward::CausalLM& model_b = Model(b_, pb, model_b_, key_b_);
    const PairStats stats = RunPairStats(model_a, model_b, prompt_, options_.max_new_tokens,
                                         options_.eos_ids);
    BisectRun run;
    run.index = static_cast<int64_t>(result_.runs.size()) + 1;
    run.phase = phase;
    run.candidate = set.size() == 1 && set[0].module == Module::kAll ? "all" : SetText(set);
    run.policy_a = pa.Text();
    run.policy_b = pb.Text();
    run.first_divergence = stats.first_divergence;
    run.max_kl = stats.max_kl;
    run.mean_kl = stats.mean_kl;
    // Non-finite logits (NaN KL) never suffice.
    run.suffices = !stats.first_divergence && std::isfinite(stats.max_kl) &&
                   std::isfinite(stats.mean_kl) &&
                   (!options_.max_kl || stats.max_kl <= *options_.max_kl);
    spdlog::info("bisect-precision run {} ({}): {}: first split {}, max KL {:.3g}", run.index,
                 phase, run.candidate, StepText(run.first_divergence), run.max_kl);
    memo_[key] = result_.runs.size();
    result_.runs.push_back(run);
    return result_.runs.back();
  }

 private:
  forward::CausalLM& Model(const ModelSource& source, const PrecisionPolicy& policy,
                           std::unique_ptr<forward::CausalLM>& slot, std::string& key) {
    if (!slot || key != policy.Text()) {
      slot.reset();  // free the previous build first
      slot = source.Build(forward::MakeNumerics(policy, options_.device));
      key = policy.Text();
    }
    return *slot;
  }

  const ModelSource& a_;
  const ModelSource& b_;
  const std::vector<int64_t>& prompt_;
  const BisectOptions& options_;
  BisectResult& result_;
  std::map<std::string, size_t> memo_;
  std::unique_ptr<forward::CausalLM> model_a_, model_b_;
  std::string key_a_, key_b_;
};

Set Without(const Set& set, size_t index) {
  Set out = set;
  out.erase(out.begin() + static_cast<std::ptrdiff_t>(index));
  return out;
}

// Kinds: halve while a half suffices, then drop kinds one at a time until none can go.
Set ReduceKinds(Set set, Searcher& search) {
  while (set.size() > 1) {
    const size_t half = set.size() / 2;
    const Set first(set.begin(), set.begin() + static_cast<std::ptrdiff_t>(half));
    const Set second(set.begin() + static_cast<std::ptrdiff_t>(half), set.end());
    if (search.Suffices(first, "kinds")) {
      set = first;
    } else if (search.Suffices(second, "kinds")) {
      set = second;
    } else {
      break;
    }
  }
  for (bool changed = true; changed && set.size() > 1;) {
    changed = false;
    for (size_t i = 0; i < set.size() && set.size() > 1; ++i) {
      if (search.Suffices(Without(set, i), "kinds")) {
        set = Without(set, i);
        changed = true;
        break;
      }
    }
  }
  return set;
}

// Narrows set[index] (a per-layer kind over every layer) to a layer range, the rest fixed.
void NarrowLayers(Set& set, size_t index, int64_t layers, Searcher& search) {
  auto with = [&](int64_t first, int64_t last) {
    Set out = set;
    out[index].layers = std::make_pair(first, last);
    return out;
  };
  // The final norm belongs to the unranged norm only: the full range must be shown to suffice.
  if (set[index].module == Module::kNorm && !search.Suffices(with(0, layers - 1), "layers")) return;
  int64_t lo = 0, hi = layers - 1;  // layers lo..L-1 suffice
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (search.Suffices(with(mid, layers - 1), "layers")) lo = mid; else hi = mid - 1;
  }
  const int64_t first = lo;
  lo = first;
  hi = layers - 1;  // layers first..hi suffice
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (search.Suffices(with(first, mid), "layers")) hi = mid; else lo = mid + 1;
  }
  set = with(first, hi);
}

// Smaller neighbours of `set`: each element removed; each range trimmed at either end.
std::vector<std::pair<Set, std::string>> Neighbours(const Set& set) {
  std::vector<std::pair<Set, std::string>> out;
  for (size_t i = 0; i < set.size(); ++i) {
    out.push_back({Without(set, i), "without " + ItemWords(set[i])});
    const auto& range = set[i].layers;
    if (range && range->first < range->second) {
      Set first = set, last = set;
      first[i].layers = std::make_pair(range->first + 1, range->second);
      last[i].layers = std::make_pair(range->first, range->second - 1);
      out.push_back({first, fmt::format("without layer {} of the {}", range->first,
                                        forward::ModuleName(set[i].module))});
      out.push_back({last, fmt::format("without layer {} of the {}", range->second,
                                       forward::ModuleName(set[i].module))});
    }
  }
  return out;
}

}  // namespace

PrecisionPolicy WithUpgrade(const PrecisionPolicy& policy, const Set& modules,
                            forward::Precision upgrade) {
  if (Bits(policy.Coarsest()) >= Bits(upgrade)) return policy;
  PrecisionPolicy out = policy;
  for (PrecisionOverride o : modules) {
    o.precision = upgrade;
    out.overrides.push_back(o);
  }
  return out;
}

BisectResult BisectPrecision(const ModelSource& a, const ModelSource& b,
                             const std::vector<int64_t>& prompt, const BisectOptions& options) {
  if (a.config.num_layers != b.config.num_layers) {
    throw InputError(fmt::format("bisect-precision: A has {} layers and B {}; layer ranges need "
                                 "the same depth", a.config.num_layers, b.config.num_layers));
  }
  if (options.max_new_tokens < 1) throw InputError("bisect-precision: max_new_tokens must be >= 1");
  for (const forward::PrecisionPolicy* policy : {&options.precision_a, &options.precision_b}) {
    if (policy->tf32) {
      throw InputError(fmt::format(
          "bisect-precision: '{}' runs every FP32 matmul as TF32 (a whole-model mode); bisection "
          "raises modules to FP32 and cannot switch TF32 off per module: compare it with "
          "`parity compare` instead", policy->Text()));
    }
  }
  BisectResult result;
  result.label_a = a.label;
  result.label_b = b.label;
  result.precision_a = options.precision_a.Text();
  result.precision_b = options.precision_b.Text();
  result.max_new_tokens = options.max_new_tokens;
  result.max_kl = options.max_kl;
  result.layers = a.config.num_layers;
  const bool moe = a.config.num_experts > 0 || b.config.num_experts > 0;
  Set kinds;
  for (Module m : forward::AllModules()) {
    if (m == Module::kRouter && !moe) continue;
    kinds.push_back({options.upgrade, m, std::nullopt});
    result.module_instances += forward::ModuleIsPerLayer(m) ? result.layers : 1;
  }
  result.module_instances += 1;  // the final norm, besides each layer's
  result.module_kinds = static_cast<int64_t>(kinds.size());
  Searcher search(a, b, prompt, options, result);
  const std::string upgrade = forward::PrecisionName(options.upgrade);

  const BisectRun baseline = search.Run({}, "baseline");
  result.baseline_split = baseline.first_divergence;
  if (baseline.suffices) {
    result.status = "no_divergence";
    result.sentence = fmt::format("{} vs {} does not diverge within {} steps{}: nothing to bisect.",
                                  result.precision_a, result.precision_b, options.max_new_tokens,
                                  options.max_kl ? fmt::format(" (max KL {:.3g} <= {:.3g})",
                                                               baseline.max_kl, *options.max_kl)
                                                 : "");
    return result;
  }
  const std::string split = baseline.first_divergence
                                ? fmt::format("the split at step {}", *baseline.first_divergence)
                                : fmt::format("max KL {:.3g}", baseline.max_kl);
  const BisectRun all = search.Run({{options.upgrade, Module::kAll, std::nullopt}}, "all");
  if (!all.suffices) {
    result.status = "not_precision";
    result.sentence = fmt::format(
        "raising every module to {} does not remove {} (first split then {}, max KL {:.3g}): the "
        "divergence is not a precision effect of these modules.", upgrade, split,
        StepText(all.first_divergence), all.max_kl);
    return result;
  }

  Set answer = ReduceKinds(kinds, search);
  for (size_t i = 0; i < answer.size(); ++i) {
    if (forward::ModuleIsPerLayer(answer[i].module)) NarrowLayers(answer, i, result.layers, search);
  }
  // Verify: every smaller neighbour must fail; one that suffices replaces the answer.
  std::vector<std::string> failed_neighbours;
  for (bool shrunk = true; shrunk;) {
    shrunk = false;
    failed_neighbours.clear();
    for (const auto& [neighbour, words] : Neighbours(answer)) {
      const BisectRun run = search.Run(neighbour, "verify");
      if (run.suffices && !neighbour.empty()) {
        answer = neighbour;
        shrunk = true;
        break;
      }
      failed_neighbours.push_back(fmt::format("{}: first split {}, max KL {:.3g} (run {})", words,
                                              StepText(run.first_divergence), run.max_kl,
                                              run.index));
    }
  }
  const BisectRun final_run = search.Run(answer, "verify");
  result.status = "found";
  result.answer = answer;
  result.answer_text = SetText(answer);

  int64_t instances = 0;
  for (const PrecisionOverride& o : answer) {
    if (o.layers) instances += o.layers->second - o.layers->first + 1;
    else if (forward::ModuleIsPerLayer(o.module)) instances += result.layers;
    else instances += 1;
  }
  result.shown.push_back(fmt::format("without an upgrade the pair splits: first split {}, max KL "
                                     "{:.3g} (run 1)", StepText(baseline.first_divergence),
                                     baseline.max_kl));
  result.shown.push_back(fmt::format("raising {} to {} removes it: no split in {} steps, max KL "
                                     "{:.3g} (run {})", SetWords(answer), upgrade,
                                     options.max_new_tokens, final_run.max_kl, final_run.index));
  for (const std::string& line : failed_neighbours) result.shown.push_back(line);
  std::string minimality;
  if (instances == 1) {
    minimality = "nothing smaller does (the only smaller set is no upgrade, run 1)";
  } else {
    minimality = "dropping any one of its kinds";
    if (std::any_of(answer.begin(), answer.end(), [](const PrecisionOverride& o) {
          return o.layers && o.layers->first < o.layers->second;
        })) {
      minimality += " or the first or last layer of a range";
    }
    minimality += " brings the split back; smaller sets of other modules were not all tried";
    result.not_shown.push_back(
        "that no smaller set exists: only the answer's one-step-smaller neighbours were run, and "
        "kinds by halving and elimination, not every subset");
  }
  if (std::any_of(answer.begin(), answer.end(), [](const PrecisionOverride& o) {
        return o.layers && o.layers->first < o.layers->second;
      })) {
    result.not_shown.push_back(
        "that the layers inside a range are each needed: only the range's ends were trimmed");
  }
  if (std::any_of(answer.begin(), answer.end(), [](const PrecisionOverride& o) {
        return o.module == Module::kNorm && !o.layers;
      })) {
    result.not_shown.push_back("which layers' norms matter: raising layers 0.." +
                               std::to_string(result.layers - 1) +
                               " without the final norm did not suffice, so norms were kept whole");
  }
  result.sentence = fmt::format("raising {} to {} removes {}; {} ({} runs for {} module instances "
                                "in {} kinds).", SetWords(answer), upgrade, split, minimality,
                                result.runs.size(), result.module_instances, result.module_kinds);
  return result;
}

nlohmann::ordered_json BisectToJson(const BisectResult& r) {
  nlohmann::ordered_json json;
  json["a"] = {{"label", r.label_a}, {"precision", r.precision_a}};
  json["b"] = {{"label", r.label_b}, {"precision", r.precision_b}};
  json["max_new_tokens"] = r.max_new_tokens;
  json["max_kl"] = r.max_kl ? nlohmann::ordered_json(*r.max_kl) : nlohmann::ordered_json(nullptr);
  json["layers"] = r.layers;
  json["module_kinds"] = r.module_kinds;
  json["module_instances"] = r.module_instances;
  json["status"] = r.status;
  json["baseline_split"] = r.baseline_split ? nlohmann::ordered_json(*r.baseline_split)
                                            : nlohmann::ordered_json(nullptr);
  nlohmann::ordered_json answer = nlohmann::ordered_json::array();
  for (const PrecisionOverride& o : r.answer) {
    nlohmann::ordered_json layers = nullptr;
    if (o.layers) layers = {o.layers->first, o.layers->second};
    answer.push_back({{"module", forward::ModuleName(o.module)}, {"layers", layers},
                      {"precision", forward::PrecisionName(o.precision)}});
  }
  json["answer"] = answer;
  json["answer_text"] = r.answer_text;
  json["sentence"] = r.sentence;
  json["shown"] = r.shown;
  json["not_shown"] = r.not_shown;
  json["runs_taken"] = r.runs.size();
  nlohmann::ordered_json runs = nlohmann::ordered_json::array();
  for (const BisectRun& run : r.runs) {
    runs.push_back({{"run", run.index},
                    {"phase", run.phase},
                    {"candidate", run.candidate},
                    {"policy_a", run.policy_a},
                    {"policy_b", run.policy_b},
                    {"first_divergence", run.first_divergence
                                             ? nlohmann::ordered_json(*run.first_divergence)
                                             : nlohmann::ordered_json(nullptr)},
                    {"max_kl", run.max_kl},
                    {"mean_kl", run.mean_kl},
                    {"suffices", run.suffices}});
  }
  json["runs"] = runs;
  return json;
}

std::string FormatBisect(const BisectResult& r) {
  std::string out = fmt::format("bisect-precision {}@{} vs {}@{}, {} steps{}, {} layers\n",
                                r.label_a, r.precision_a, r.label_b, r.precision_b,
                                r.max_new_tokens,
                                r.max_kl ? fmt::format(", max KL <= {:.3g}", *r.max_kl) : "",
                                r.layers);
  size_t width = 13;
  for (const BisectRun& run : r.runs) width = std::max(width, run.candidate.size());
  out += fmt::format("{:>4}  {:<9} {:<{}}  {:<12} {:>10}  {}\n", "run", "phase", "candidate set",
                     width, "first split", "max KL", "result");
  for (const BisectRun& run : r.runs) {
    out += fmt::format("{:>4}  {:<9} {:<{}}  {:<12} {:>10.3g}  {}\n", run.index, run.phase,
                       run.candidate, width, StepText(run.first_divergence), run.max_kl,
                       run.suffices ? "removes it" : "splits");
  }
  out += "\n" + r.sentence + "\n";
  for (const std::string& line : r.shown) out += "  shown: " + line + "\n";
  for (const std::string& line : r.not_shown) out += "  not shown: " + line + "\n";
  return out;
}

}  // namespace parity::diagnose
