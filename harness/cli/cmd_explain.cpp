// `parity explain A B --prompt TEXT [--dtype fp16,bf16] [--side b|a|both] [--json|--markdown]` or
// `parity explain CASE`: rerun the pair flipping one implementation variant at a time and report
// which switch moves or removes the first divergence and how the per-step KL changes
// (harness/diagnose/explain.h). With a case file: its first pair's models, its first prompt, its
// dtypes (fp64 left out), its max_new_tokens; models the case converts at run time come from the
// session store's conversion cache (--cache-dir). Exit 0, 2 for bad input.
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
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

// A case model from the session store, converted through its cache when the case says
// convert_from (never a stale copy: the cache is keyed by the source's content).
std::shared_ptr<const session::StoredModel> CaseModel(const compare::Case& c,
                                                      const std::string& label,
                                                      session::ModelStore& store) {
  const compare::CaseModel& model = c.Model(label);
  if (!model.convert_from) return store.Open(model.path);
  return store.OpenConverted(c.Model(*model.convert_from).path, "internlm2-to-llama");
}

// The directory a case model is read from, or converted from.
std::string SourceDir(const compare::Case& c, const std::string& label) {
  const compare::CaseModel& model = c.Model(label);
  return model.convert_from ? c.Model(*model.convert_from).path : model.path;
}

int RunExplain(const ExplainArgs& args) {
  if (!args.out.empty()) session::PrepareOutputDir(args.out, "--out");
  session::ModelStore store(args.cache_dir);
  std::shared_ptr<const session::StoredModel> model_a, model_b;
  std::string label_a, label_b;
  std::optional<compare::Case> c;  // with a case file
  diagnose::ExplainOptions options;
  options.max_new_tokens = args.max_new_tokens > 0 ? args.max_new_tokens : 32;
  options.device = c10::Device(args.device);
  diagnose::PromptSpec prompt = args.prompt;
  std::vector<std::string> dtypes = args.dtypes;
  if (args.inputs.size() == 1) {
    if (std::filesystem::is_directory(args.inputs[0])) {
      throw InputError(fmt::format("explain: '{}' is a directory; give two checkpoint directories "
                                   "(A B) or one case file (CASE)", args.inputs[0]));
    }
    c = compare::LoadCase(args.inputs[0]);
    if (c->pairs.empty() || c->prompts.empty()) {
      throw InputError(args.inputs[0] + ": the case has no pairs or no prompts");
    }
    label_a = c->pairs[0].a.model;
    label_b = c->pairs[0].b.model;
    if (label_a == label_b) std::tie(label_a, label_b) = std::make_pair("a", "b");
    // The sources only for now (a converted model has its source's tokenizer and vocabulary):
    // conversions wait until the prompt has been checked.
    model_a = store.Open(SourceDir(*c, c->pairs[0].a.model));
    model_b = store.Open(SourceDir(*c, c->pairs[0].b.model));
    if (prompt.text.empty() && prompt.token_ids.empty()) {
      const compare::CasePrompt& p = c->prompts[0];
      if (p.text) {
        prompt.text = *p.text;
        prompt.chat = p.chat;
      } else {
        for (int64_t id : p.tokens) {
          prompt.token_ids += (prompt.token_ids.empty() ? "" : ",") + std::to_string(id);
        }
      }
    }
    if (dtypes.empty()) {
      for (forward::Precision p : c->dtypes) {
        if (p != forward::Precision::kFP64) dtypes.push_back(forward::PrecisionName(p));
      }
    }
    if (args.max_new_tokens == 0) options.max_new_tokens = c->max_new_tokens;
    if (args.device == "cpu") options.device = c10::Device(c->device);
  } else if (args.inputs.size() == 2) {
    model_a = store.Open(args.inputs[0]);
    model_b = store.Open(args.inputs[1]);
    std::tie(label_a, label_b) = session::DistinctLabels(args.inputs[0], args.inputs[1]);
  } else {
    throw InputError("explain: give two checkpoint directories (A B) or one case file");
  }
  if (dtypes.empty()) dtypes = {"fp32"};
  options.precisions.clear();
  for (const std::string& d : dtypes) options.precisions.push_back(forward::ParsePrecision(d));
  options.sides = args.side == "both" ? std::vector<std::string>{"a", "b"}
                                      : std::vector<std::string>{args.side};
  options.variants = args.variants;
  diagnose::ResolvedPrompt resolved =
      diagnose::ResolvePrompt(prompt, {model_a->source_path, model_b->source_path});
  options.eos_ids = resolved.eos_ids;
  session::CheckTokenIds(resolved.tokens, model_a->config.vocab_size, "A", "the prompt");
  session::CheckTokenIds(resolved.tokens, model_b->config.vocab_size, "B", "the prompt");
  if (c) {
    model_a = CaseModel(*c, c->pairs[0].a.model, store);
    model_b = CaseModel(*c, c->pairs[0].b.model, store);
  }
  diagnose::ModelSource a = diagnose::StoreSource(model_a, label_a);
  diagnose::ModelSource b = diagnose::StoreSource(model_b, label_b);
  diagnose::ExplainResult result = diagnose::Explain(a, b, resolved.tokens, options);
  nlohmann::ordered_json json = diagnose::ExplainToJson(result);
  if (!args.out.empty()) {
    WriteFileAtomic((std::filesystem::path(args.out) / "explain.json").string(),
                    json.dump(2) + "\n");
    WriteFileAtomic((std::filesystem::path(args.out) / "explain.md").string(),
                    diagnose::FormatExplain(result, true));
  }
  if (args.json) {
    PrintJson(json.dump(2));
  } else {
    std::cout << diagnose::FormatExplain(result, args.markdown);
  }
  return kExitOk;
}

CommandRegistrar explain_command("explain", [](CLI::App& app, Action& action) {
  auto o = std::make_shared<ExplainArgs>();
  CLI::App* command = app.add_subcommand(
      "explain",
      "Rerun a pair flipping one implementation variant at a time (fused_qkv, sdpa_attention, "
      "lm_head_all_positions, rotary_precomputed, kv_cache) and report which moves or removes the "
      "first divergence and how the per-step KL changes");
  command->add_option("INPUTS", o->inputs, "A B (checkpoint directories) or CASE (a case file)")
      ->required()
      ->expected(1, 2);
  command->add_option("--prompt", o->prompt.text, "Prompt text");
  command->add_flag("--chat", o->prompt.chat, "Wrap the prompt in the ChatML template");
  command->add_option("--tokens", o->prompt.token_ids, "Prompt as comma-separated token ids");
  command->add_option("--dtype,--dtypes", o->dtypes, "Precisions, comma-separated (default fp32)")
      ->delimiter(',');
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
  command->add_option("--out", o->out, "Also write OUT/explain.json and OUT/explain.md");
  command->add_option("--cache-dir", o->cache_dir,
                      "Where a case's converted models are cached (default $PARITY_CACHE, else "
                      "~/.cache/parity)");
  command->callback([o, &action] { action = [o] { return RunExplain(*o); }; });
});

}  // namespace
}  // namespace parity::cli
