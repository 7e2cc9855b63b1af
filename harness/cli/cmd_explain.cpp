// `parity explain A B --prompt TEXT [--dtype fp16,bf16] [--side b|a|both] [--json|--markdown]` or
// `parity explain CASE`: rerun the pair flipping one implementation variant at a time (and all of
// them at once) and report which switch moves or removes the first divergence and how the per-step
// KL changes (harness/diagnose/explain.h). With a case file: every pair (each at its own sides'
// precisions; with --dtype only pairs whose both sides are listed, a precision policy side counting
// as listed when its policy is, or its base precision is as a plain precision, so that --dtype bf16
// keeps A@bf16 vs A@bf16+fp32:norm; FP64-only pairs left out)
// on every prompt, its max_new_tokens; models the case converts at run time come from the session
// store's conversion cache (--cache-dir), keyed by the source's content, so never a stale copy.
// Every prompt is checked before anything is converted. OUT/explain.json holds every run.
// With two directories, each may name its own precision or policy as compare's sides do
// (`DIR@bf16+fp32:norm`): that side runs at it, the other at each --dtype (default fp32).
// Exit 0, 2 for bad input.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "harness/cli/command.h"
#include "harness/compare/case.h"
#include "harness/core/atomic_file.h"
#include "harness/core/error.h"
#include "harness/diagnose/explain.h"
#include "harness/diagnose/model_source.h"
#include "harness/session/inputs.h"
#include "harness/session/model_store.h"
#include "harness/session/out_dir.h"

namespace parity::cli {
namespace {

struct ExplainArgs {
  std::vector<std::string> inputs;  // A B, or CASE
  diagnose::PromptSpec prompt;
  std::vector<std::string> dtypes;
  std::string side = "b";
  std::vector<std::string> variants;
  std::string device = "cpu";
  int64_t max_new_tokens = 0;  // 0: the case's max_new_tokens, else 32
  bool json = false;
  bool markdown = false;
  std::string out;
  std::string cache_dir;
};

// The directory a case model is read from, or converted from (its tokenizer and vocabulary).
std::string SourceDir(const compare::Case& c, const std::string& label) {
  const compare::CaseModel& model = c.Model(label);
  return model.convert_from ? c.Model(*model.convert_from).path : model.path;
}

// A case model from the session store, converted through its cache when the case says convert_from.
std::shared_ptr<const session::StoredModel> CaseModel(const compare::Case& c,
                                                      const std::string& label,
                                                      session::ModelStore& store) {
  const compare::CaseModel& model = c.Model(label);
  if (!model.convert_from) return store.Open(model.path);
  return store.OpenConverted(c.Model(*model.convert_from).path, "internlm2-to-llama");
}

// The prompt's tokens, checked against both models' vocabularies (InputError naming the token).
diagnose::ResolvedPrompt CheckedPrompt(const diagnose::PromptSpec& prompt,
                                       const session::StoredModel& a,
                                       const session::StoredModel& b) {
  diagnose::ResolvedPrompt resolved = diagnose::ResolvePrompt(prompt, {a.source_path, b.source_path});
  session::CheckTokenIds(resolved.tokens, a.config.vocab_size, "A", "the prompt");
  session::CheckTokenIds(resolved.tokens, b.config.vocab_size, "B", "the prompt");
  return resolved;
}

std::string PromptIds(const std::vector<int64_t>& tokens) {
  std::string ids;
  for (int64_t id : tokens) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  return ids;
}

// One explain run of the pair (dir_a, dir_b) on one prompt.
diagnose::ExplainRun ExplainOne(const std::string& pair,
                                std::shared_ptr<const session::StoredModel> model_a,
                                std::shared_ptr<const session::StoredModel> model_b,
                                const std::pair<std::string, std::string>& labels,
                                const diagnose::PromptSpec& prompt, int64_t prompt_index,
                                diagnose::ExplainOptions options) {
  diagnose::ResolvedPrompt resolved = CheckedPrompt(prompt, *model_a, *model_b);
  options.eos_ids = resolved.eos_ids;
  diagnose::ModelSource a = diagnose::StoreSource(model_a, labels.first);
  diagnose::ModelSource b = diagnose::StoreSource(model_b, labels.second);
  diagnose::ExplainRun run;
  run.pair = pair;
  run.prompt_index = prompt_index;
  run.prompt = prompt.token_ids.empty() ? prompt.text : prompt.token_ids;
  spdlog::info("explain {}, prompt {}", pair, prompt_index);
  run.result = diagnose::Explain(a, b, resolved.tokens, options);
  return run;
}

// "DIR" or "DIR@POLICY" (when the whole text is not a directory): the directory and the policy.
std::pair<std::string, std::optional<forward::PrecisionPolicy>> SplitSide(const std::string& text) {
  const size_t at = text.rfind('@');
  if (at == std::string::npos || std::filesystem::is_directory(text)) return {text, std::nullopt};
  return {text.substr(0, at), forward::ParsePrecisionPolicy(text.substr(at + 1))};
}

// Whether a case side at `policy` is one of `dtypes` (see the file comment).
bool Listed(const forward::PrecisionPolicy& policy,
            const std::vector<forward::PrecisionPolicy>& dtypes) {
  if (dtypes.empty()) return policy != forward::PrecisionPolicy(forward::Precision::kFP64);
  return std::any_of(dtypes.begin(), dtypes.end(), [&](const forward::PrecisionPolicy& d) {
    return d == policy || (d.Uniform() && d.base == policy.base);
  });
}

int RunExplain(const ExplainArgs& args) {
  if (!args.out.empty()) session::PrepareOutputDir(args.out, "--out");
  session::ModelStore store(args.cache_dir);
  diagnose::ExplainOptions options;
  options.max_new_tokens = args.max_new_tokens > 0 ? args.max_new_tokens : 32;
  options.device = c10::Device(args.device);
  options.sides = args.side == "both" ? std::vector<std::string>{"a", "b"}
                                      : std::vector<std::string>{args.side};
  options.variants = args.variants;
  // Precisions or policies; a policy's module list has commas of its own (SplitPolicyList).
  std::vector<forward::PrecisionPolicy> dtypes;
  for (const std::string& item : args.dtypes) {
    for (const std::string& one : forward::SplitPolicyList(item)) {
      dtypes.push_back(forward::ParsePrecisionPolicy(one));
    }
  }
  std::vector<diagnose::ExplainRun> runs;
  if (args.inputs.size() == 1) {
    // Every pair (both precisions in --dtype when given; FP64-only pairs left out: FP64 runs of
    // the same function do not diverge) on every prompt of the case (or on --prompt / --tokens).
    if (std::filesystem::is_directory(args.inputs[0])) {
      throw InputError(fmt::format("explain: '{}' is a directory; give two checkpoint directories "
                                   "(A B) or one case file (CASE)", args.inputs[0]));
    }
    const compare::Case c = compare::LoadCase(args.inputs[0]);
    if (c.pairs.empty() || c.prompts.empty()) {
      throw InputError(args.inputs[0] + ": the case has no pairs or no prompts");
    }
    if (args.max_new_tokens == 0) options.max_new_tokens = c.max_new_tokens;
    if (args.device == "cpu") options.device = c10::Device(c.device);
    std::vector<std::pair<diagnose::PromptSpec, int64_t>> prompts;
    if (!args.prompt.text.empty() || !args.prompt.token_ids.empty()) {
      prompts.push_back({args.prompt, 0});
    } else {
      for (size_t i = 0; i < c.prompts.size(); ++i) {
        diagnose::PromptSpec spec;
        if (c.prompts[i].text) {
          spec.text = *c.prompts[i].text;
          spec.chat = c.prompts[i].chat;
        } else {
          spec.token_ids = PromptIds(c.prompts[i].tokens);
        }
        prompts.push_back({spec, static_cast<int64_t>(i)});
      }
    }
    auto wanted = [&dtypes](const forward::PrecisionPolicy& p) { return Listed(p, dtypes); };
    // Every prompt against every source model first: bad input costs no conversion.
    for (const compare::CasePair& pair : c.pairs) {
      if (!wanted(pair.a.precision) || !wanted(pair.b.precision)) continue;
      for (const auto& [spec, index] : prompts) {
        CheckedPrompt(spec, *store.Open(SourceDir(c, pair.a.model)),
                      *store.Open(SourceDir(c, pair.b.model)));
      }
    }
    for (const compare::CasePair& pair : c.pairs) {
      if (!wanted(pair.a.precision) || !wanted(pair.b.precision)) continue;
      const auto model_a = CaseModel(c, pair.a.model, store);
      const auto model_b = CaseModel(c, pair.b.model, store);
      const auto labels = pair.a.model == pair.b.model
                              ? std::make_pair(std::string("a"), std::string("b"))
                              : std::make_pair(pair.a.model, pair.b.model);
      diagnose::ExplainOptions pair_options = options;
      pair_options.precisions = {pair.a.precision};
      pair_options.precisions_b = {pair.b.precision};
      const std::string label =
          compare::SideLabel(pair.a) + " vs " + compare::SideLabel(pair.b);
      for (const auto& [spec, index] : prompts) {
        runs.push_back(ExplainOne(label, model_a, model_b, labels, spec, index, pair_options));
      }
    }
    if (runs.empty()) {
      throw InputError(args.inputs[0] + ": no pair of the case runs at the precisions given");
    }
  } else if (args.inputs.size() == 2) {
    const auto [dir_a, policy_a] = SplitSide(args.inputs[0]);
    const auto [dir_b, policy_b] = SplitSide(args.inputs[1]);
    if (policy_a && policy_b && !dtypes.empty()) {
      throw InputError("explain: both sides name their precision ('@'); --dtype would be unused");
    }
    // One run per --dtype for a side that names none; a single one when both name theirs.
    std::vector<forward::PrecisionPolicy> each = dtypes;
    if (each.empty() || (policy_a && policy_b)) each = {forward::Precision::kFP32};
    options.precisions.clear();
    options.precisions_b.clear();
    for (const forward::PrecisionPolicy& d : each) {
      options.precisions.push_back(policy_a.value_or(d));
      options.precisions_b.push_back(policy_b.value_or(d));
    }
    auto labels = session::DistinctLabels(dir_a, dir_b);
    if ((policy_a || policy_b) && std::filesystem::absolute(dir_a).lexically_normal() ==
                                      std::filesystem::absolute(dir_b).lexically_normal()) {
      labels = {"a", "b"};  // one model at two precisions, as a case's same-model pairs
    }
    runs.push_back(ExplainOne(args.inputs[0] + " vs " + args.inputs[1], store.Open(dir_a),
                              store.Open(dir_b), labels, args.prompt, 0, options));
  } else {
    throw InputError("explain: give two checkpoint directories (A B) or one case file");
  }
  nlohmann::ordered_json json = diagnose::ExplainRunsToJson(runs);
  if (!args.out.empty()) {
    WriteFileAtomic((std::filesystem::path(args.out) / "explain.json").string(),
                    json.dump(2) + "\n");
    WriteFileAtomic((std::filesystem::path(args.out) / "explain.md").string(),
                    diagnose::FormatExplainRuns(runs, true));
  }
  if (args.json) {
    PrintJson(json.dump(2));
  } else {
    std::cout << diagnose::FormatExplainRuns(runs, args.markdown);
  }
  return kExitOk;
}

CommandRegistrar explain_command("explain", [](CLI::App& app, Action& action) {
  auto o = std::make_shared<ExplainArgs>();
  CLI::App* command = app.add_subcommand(
      "explain",
      "Rerun a pair flipping one implementation variant at a time (fused_qkv, sdpa_attention, "
      "lm_head_all_positions, rotary_precomputed, kv_cache, divide_scores_by_sqrt) and all of them "
      "at once (all_variants), and report which moves or removes the first divergence and how the "
      "per-step KL changes; with a case file, for every pair and prompt");
  command->add_option("INPUTS", o->inputs, "A B (checkpoint directories) or CASE (a case file)")
      ->required()
      ->expected(1, 2);
  command->add_option("--prompt", o->prompt.text, "Prompt text");
  command->add_flag("--chat", o->prompt.chat, "Wrap the prompt in the ChatML template");
  command->add_option("--tokens", o->prompt.token_ids, "Prompt as comma-separated token ids");
  command->add_option("--dtype,--dtypes", o->dtypes,
                      "Precisions or precision policies, comma-separated (default fp32; with a "
                      "case, keeps the pairs whose both sides run at these: a policy side counts "
                      "when its policy, or its base precision alone, is listed)");
  command->add_option("--side", o->side, "Whose switches to flip: a, b or both")
      ->check(CLI::IsMember({"a", "b", "both"}))
      ->capture_default_str();
  command->add_option("--variants", o->variants, "Only these variants, comma-separated")
      ->delimiter(',');
  command->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
  command->add_option("--max-new-tokens", o->max_new_tokens,
                      "Decode steps at most (default: the case's, else 32)")
      ->check(AtLeastOne());
  command->add_flag("--json", o->json, "Print one JSON object");
  command->add_flag("--markdown", o->markdown, "Print a markdown table (for a bug report)");
  command->add_option("--cache-dir", o->cache_dir,
                      "Where a case's converted models are cached (default $PARITY_CACHE, else "
                      "~/.cache/parity)");
  command->add_option("--out", o->out, "Also write OUT/explain.json and OUT/explain.md");
  command->callback([o, &action] { action = [o] { return RunExplain(*o); }; });
});

}  // namespace
}  // namespace parity::cli
