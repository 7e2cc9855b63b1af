#include "harness/compare/suite.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "harness/compare/metrics.h"
#include "harness/core/error.h"
#include "harness/core/interrupt.h"
#include "harness/core/version.h"
#include "harness/decode/tokenizer.h"
#include "harness/model/config.h"
#include "harness/report/terminal.h"
#include "harness/session/inputs.h"
#include "harness/session/model_store.h"

namespace parity::compare {
namespace {

// Oracle figures of one run, from the side logits and both FP64 runs (all [n, V] FP64).
OracleResult MeasureOracle(const at::Tensor& logits_a, const at::Tensor& logits_b,
                           const at::Tensor& a64, const at::Tensor& b64, int64_t comparable,
                           const RunRequest& request) {
  OracleResult o;
  o.reference_model = request.pair.a.model;
  o.a_rms_error_vs_fp64 = RmsDiff(logits_a, a64);
  o.b_rms_error_vs_fp64 = RmsDiff(logits_b, b64);
  o.comparable_steps = comparable;
  o.a_rms_error_vs_reference = RmsDiff(logits_a.slice(0, 0, comparable), a64.slice(0, 0, comparable));
  o.b_rms_error_vs_reference = RmsDiff(logits_b.slice(0, 0, comparable), a64.slice(0, 0, comparable));
  o.fp64_models_rms_diff = RmsDiff(a64.slice(0, 0, comparable), b64.slice(0, 0, comparable));
  o.multiplier = request.precision_b == forward::Precision::kFP32 ? 2.0 : 3.0;
  o.rule = fmt::format("rms(b - fp64 of {}) <= {} * rms(a - fp64 of {}) over the comparable steps",
                       request.pair.a.model, o.multiplier, request.pair.a.model);
  if (request.precision_a == request.precision_b) {
    o.acceptable = o.b_rms_error_vs_reference <= o.multiplier * o.a_rms_error_vs_reference;
  } else {
    o.rule += " (not applied: a and b differ in precision)";
  }
  return o;
}

// Per-row RMS of x - y ([n, V] each): [n].
std::vector<double> RowRms(const at::Tensor& x, const at::Tensor& y) {
  at::Tensor rms = (x - y).pow(2).mean(1).sqrt().contiguous();
  const double* data = rms.data_ptr<double>();
  return std::vector<double>(data, data + rms.numel());
}

std::string FormatValue(double value) { return fmt::format("{:.4g}", value); }

}  // namespace

TextDecoder IdTextDecoder() {
  TextDecoder decoder;
  decoder.token_text = [](int64_t id) { return fmt::format("<{}>", id); };
  decoder.decode = [](const std::vector<int64_t>& ids) {
    std::string out;
    for (int64_t id : ids) out += fmt::format("<{}>", id);
    return out;
  };
  return decoder;
}

std::string PairId(const Pair& pair) {
  return fmt::format("{}@{}/{}@{}", pair.a.model, pair.a.precision, pair.b.model, pair.b.precision);
}

std::string RunId(int64_t prompt_index, const Pair& pair) {
  return fmt::format("p{}/{}", prompt_index, PairId(pair));
}

RunOutcome RunPair(forward::CausalLM& model_a, forward::CausalLM& model_b, const RunRequest& request,
                   const TextDecoder& text, const OracleModels* oracle) {
  auto start = std::chrono::steady_clock::now();
  RunOutcome outcome;
  Run& run = outcome.run;
  run.id = request.id;
  run.prompt_index = request.prompt_index;
  run.prompt = request.prompt_text;
  run.chat = request.chat;
  run.prompt_tokens = request.prompt_tokens;
  run.pair = request.pair;
  run.thresholds = request.thresholds;

  const bool keep_logits = oracle != nullptr;
  const bool teacher_forced = request.greedy.mode == decode::GreedyMode::kTeacherForced;
  const forward::Precision flip_precision =
      CoarserPrecision(request.precision_a, request.precision_b);
  std::vector<at::Tensor> rows_a, rows_b;
  std::vector<int64_t> context;  // tokens both sides read before the current step, while the same

  auto on_step = [&](const decode::GreedyStep& step) {
    std::vector<double> a = ToDoubleVector(step.logits_a);
    std::vector<double> b = ToDoubleVector(step.logits_b);
    StepRecord record = CompareLogits(a, b, request.top_k);
    record.run = request.id;
    record.step = step.step;
    record.position = step.position;
    record.same_context = step.same_context;
    if (!record.top1_agree && !run.first_divergence) {
      FlipAnalysis flip = AnalyzeFlip(a, b, record.token_a, record.token_b, flip_precision,
                                      request.near_tie_ulps);
      FirstDivergence d;
      d.step = step.step;
      d.position = step.position;
      d.token_a = record.token_a;
      d.token_b = record.token_b;
      d.text_a = text.token_text(record.token_a);
      d.text_b = text.token_text(record.token_b);
      d.context = text.decode(context);
      d.margin_a = record.margin_a;
      d.margin_b = record.margin_b;
      d.noise = record.noise;
      d.flip_gap = flip.flip_gap;
      d.tolerance = flip.tolerance;
      d.kind = flip.near_tie ? "near_tie" : "real";
      int64_t previous = context.empty() ? request.prompt_tokens.back() : context.back();
      d.after_newline = text.token_text(previous).find('\n') != std::string::npos;
      run.first_divergence = d;
    }
    bool teacher_a = !teacher_forced || request.greedy.teacher_is_a;
    context.push_back(teacher_a ? record.token_a : record.token_b);
    if (keep_logits) {
      rows_a.push_back(step.logits_a.to(at::kDouble));
      rows_b.push_back(step.logits_b.to(at::kDouble));
    }
    outcome.steps.push_back(std::move(record));
  };
  decode::GreedyResult result =
      decode::RunLockstep(model_a, model_b, request.prompt_tokens, request.greedy, on_step);

  run.tokens_a = result.tokens_a;
  run.tokens_b = result.tokens_b;
  auto strip_eos = [&](std::vector<int64_t> ids) {
    const auto& eos = request.greedy.eos_ids;
    ids.erase(std::remove_if(ids.begin(), ids.end(),
                             [&](int64_t id) { return std::find(eos.begin(), eos.end(), id) != eos.end(); }),
              ids.end());
    return ids;
  };
  run.text_a = text.decode(strip_eos(result.tokens_a));
  run.text_b = text.decode(strip_eos(result.tokens_b));
  run.metrics = SummarizeSteps(outcome.steps);

  const int64_t n = static_cast<int64_t>(outcome.steps.size());
  if (oracle != nullptr && n > 0) {
    at::Tensor logits_a = at::stack(rows_a), logits_b = at::stack(rows_b);
    at::Tensor a64 = decode::TeacherForcedLogits(*oracle->a64, request.prompt_tokens,
                                                 result.input_a, n).to(at::kDouble);
    at::Tensor b64 = (oracle->b64 == oracle->a64 && result.input_a == result.input_b)
                         ? a64
                         : decode::TeacherForcedLogits(*oracle->b64, request.prompt_tokens,
                                                       result.input_b, n).to(at::kDouble);
    std::vector<double> err_a = RowRms(logits_a, a64), err_b = RowRms(logits_b, b64);
    for (int64_t i = 0; i < n; ++i) {
      outcome.steps[i].err_a_fp64 = err_a[i];
      outcome.steps[i].err_b_fp64 = err_b[i];
    }
    run.oracle = MeasureOracle(logits_a, logits_b, a64, b64, run.metrics.same_context_steps, request);
  }
  run.pass = CheckGates(run, request.thresholds).empty();
  run.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return outcome;
}

std::vector<Failure> CheckGates(const Run& run, const Thresholds& t) {
  std::vector<Failure> failures;
  // `!(value <= limit)` so that a NaN measurement fails the gate instead of slipping through.
  auto at_most = [&](const char* gate, double value, const std::optional<double>& limit) {
    if (limit && !(value <= *limit)) {
      failures.push_back({run.id, gate, value, *limit,
                          fmt::format("{}: {} {} > {}", run.id, gate, FormatValue(value),
                                      FormatValue(*limit))});
    }
  };
  const RunMetrics& m = run.metrics;
  at_most("max_kl", m.max_kl, t.max_kl);
  at_most("mean_kl", m.mean_kl, t.mean_kl);
  at_most("p99_kl", m.p99_kl, t.p99_kl);
  at_most("max_abs_logit_diff", m.max_abs_logit_diff, t.max_abs_logit_diff);
  if (t.min_top1_agreement && !(m.top1_agreement >= *t.min_top1_agreement)) {
    failures.push_back({run.id, "min_top1_agreement", m.top1_agreement, *t.min_top1_agreement,
                        fmt::format("{}: top1_agreement {} < {}", run.id,
                                    FormatValue(m.top1_agreement),
                                    FormatValue(*t.min_top1_agreement))});
  }
  if (t.min_first_divergence_step && run.first_divergence &&
      run.first_divergence->step < *t.min_first_divergence_step) {
    failures.push_back({run.id, "min_first_divergence_step",
                        static_cast<double>(run.first_divergence->step),
                        static_cast<double>(*t.min_first_divergence_step),
                        fmt::format("{}: first divergence at step {} < {}", run.id,
                                    run.first_divergence->step, *t.min_first_divergence_step)});
  }
  if (t.fail_on_real_divergence && run.first_divergence && run.first_divergence->kind == "real") {
    const FirstDivergence& d = *run.first_divergence;
    failures.push_back({run.id, "fail_on_real_divergence", std::nullopt, std::nullopt,
                        fmt::format("{}: real divergence at step {} (flip gap {} > tolerance {})",
                                    run.id, d.step, FormatValue(d.flip_gap),
                                    FormatValue(d.tolerance))});
  }
  if (t.require_oracle_acceptable && run.oracle && run.oracle->acceptable == false) {
    const OracleResult& o = *run.oracle;
    failures.push_back({run.id, "require_oracle_acceptable", std::nullopt, std::nullopt,
                        fmt::format("{}: FP64 oracle: b error {} > {} x a error {}", run.id,
                                    FormatValue(o.b_rms_error_vs_reference), o.multiplier,
                                    FormatValue(o.a_rms_error_vs_reference))});
  }
  return failures;
}

std::vector<PairSummary> SummarizePairs(const std::vector<Run>& runs,
                                        const std::vector<StepRecord>& steps,
                                        int64_t max_new_tokens) {
  struct Totals {
    double sum_kl = 0, max_kl = 0;
    int64_t count = 0, agree = 0;
  };
  std::map<std::string, Totals> by_run;
  for (const StepRecord& s : steps) {
    Totals& t = by_run[s.run];
    t.sum_kl += s.kl;
    t.max_kl = std::max(t.max_kl, s.kl);
    ++t.count;
    if (s.top1_agree) ++t.agree;
  }
  std::vector<PairSummary> pairs;
  std::map<std::string, size_t> index;
  std::map<std::string, Totals> totals;
  for (const Run& run : runs) {
    std::string id = PairId(run.pair);
    if (!index.count(id)) {
      index[id] = pairs.size();
      PairSummary p;
      p.id = id;
      p.pair = run.pair;
      pairs.push_back(p);
    }
    PairSummary& p = pairs[index[id]];
    p.runs.push_back(run.id);
    p.pass = p.pass && run.pass;
    Totals& sum = totals[id];
    const Totals& r = by_run[run.id];
    sum.sum_kl += r.sum_kl;
    sum.max_kl = std::max(sum.max_kl, r.max_kl);
    sum.count += r.count;
    sum.agree += r.agree;
  }
  for (PairSummary& p : pairs) {
    const Totals& sum = totals[p.id];
    p.mean_kl = sum.count ? sum.sum_kl / sum.count : 0;
    p.max_kl = sum.max_kl;
    p.top1_agreement = sum.count ? static_cast<double>(sum.agree) / sum.count : 1.0;
    for (int64_t t = 0; t < max_new_tokens; ++t) {
      int64_t identical = 0;
      for (const Run& run : runs) {
        if (PairId(run.pair) != p.id) continue;
        if (!run.first_divergence || run.first_divergence->step > t) ++identical;
      }
      p.identical_fraction.push_back(static_cast<double>(identical) / p.runs.size());
    }
  }
  return pairs;
}

namespace {

nlohmann::json ConfigSummary(const model::ModelConfig& config) {
  return {{"vocab_size", config.vocab_size},
          {"hidden_size", config.hidden_size},
          {"num_layers", config.num_layers},
          {"num_heads", config.num_heads},
          {"num_kv_heads", config.num_kv_heads},
          {"head_dim", config.head_dim},
          {"intermediate_size", config.intermediate_size},
          {"torch_dtype", config.torch_dtype},
          {"rope_theta", config.rope_theta}};
}

// A case's models in the session store, by label: the store knows them by what they are (source
// content, conversion); the labels only name them in the outputs.
class CaseModels {
 public:
  CaseModels(const Case& c, session::ModelStore& store, c10::Device device)
      : store_(store), device_(device) {
    // Models with a path first: they are the sources of the converted ones, and opening them checks
    // their tensors against their configs before anything is converted.
    for (const CaseModel& model : c.models) {
      if (!model.convert_from) models_[model.label] = store_.Open(model.path);
    }
  }
  // Converts (through the store's cache) the case's convert_from models. Called once the prompts
  // and the device have been checked, so that bad input costs no conversion.
  void Convert(const Case& c) {
    for (const CaseModel& model : c.models) {
      if (!model.convert_from) continue;
      models_[model.label] = store_.OpenConverted(models_.at(*model.convert_from)->source_path,
                                                  "internlm2-to-llama");
    }
  }
  bool Has(const std::string& label) const { return models_.count(label) > 0; }
  const session::StoredModel& Get(const std::string& label) const { return *models_.at(label); }
  // The config of `label`; a converted model's vocabulary and sizes are its source's.
  const model::ModelConfig& config(const Case& c, const std::string& label) const {
    const CaseModel& model = c.Model(label);
    return models_.at(model.convert_from ? *model.convert_from : label)->config;
  }
  forward::CausalLM& Load(const std::string& label, forward::Precision precision) {
    return store_.Get(Get(label), precision, device_);
  }
  std::string LoadKey(const std::string& label, forward::Precision precision) const {
    return session::ModelStore::LoadKey(Get(label), precision, device_);
  }

 private:
  session::ModelStore& store_;
  c10::Device device_;
  std::map<std::string, std::shared_ptr<const session::StoredModel>> models_;
};

SideSpec MakeSide(const CaseSide& side, c10::Device device) {
  forward::Numerics numerics = forward::MakeNumerics(side.precision, device);
  return {side.model, forward::PrecisionName(side.precision), numerics.Describe(),
          numerics.emulated};
}

}  // namespace


RunOutputs RunCase(const Case& c, const SuiteOptions& options) {
  c10::Device device(c.device);
  // Deterministic kernels where libtorch has a choice; warn-only, so an op without a deterministic
  // variant still runs. cuBLAS is deterministic only with a fixed workspace (set before its first
  // use; an explicit setting by the user wins).
  ::setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", 0);
  at::globalContext().setDeterministicAlgorithms(true, true);

  RunOutputs outputs;
  Summary& summary = outputs.summary;
  summary.parity_version = ParityVersion();
  summary.libtorch_version = LibtorchVersion();
  summary.case_ref = {c.name, c.path};
  if (c.path) summary.case_ref.path = std::filesystem::absolute(*c.path).lexically_normal().string();
  Settings& s = summary.settings;
  s.device = c.device;
  s.mode = decode::GreedyModeName(c.mode);
  s.teacher = c.teacher_is_a ? "a" : "b";
  s.max_new_tokens = c.max_new_tokens;
  s.seed = c.seed;
  s.chat = c.chat;
  s.top_k = c.top_k;
  s.near_tie_ulps = c.near_tie_ulps;
  s.oracle = c.oracle;
  s.deterministic_algorithms = at::globalContext().deterministicAlgorithms();
  s.num_threads = at::get_num_threads();
  summary.thresholds = c.thresholds;

  // Bad input is refused before anything expensive: the device, then the models' files (opening
  // checks tensors against configs), then the prompts; only then are models converted.
  for (const CasePair& case_pair : c.pairs) {
    forward::MakeNumerics(case_pair.a.precision, device);
    forward::MakeNumerics(case_pair.b.precision, device);
  }
  session::ModelStore store(options.cache_dir);
  CaseModels models(c, store, device);

  // The tokenizer of the first model that has one (a converted copy carries its source's).
  std::optional<decode::Tokenizer> tokenizer;
  for (const CaseModel& model : c.models) {
    if (!models.Has(model.label)) continue;
    const std::string& dir = models.Get(model.label).path;
    if (session::HasTokenizer(dir)) {
      tokenizer = decode::Tokenizer::Load(dir);
      break;
    }
  }
  TextDecoder text = IdTextDecoder();
  std::vector<int64_t> eos_ids = models.config(c, c.models.front().label).eos_token_ids;
  if (tokenizer) {
    text.token_text = [&](int64_t id) { return tokenizer->TokenText(id); };
    text.decode = [&](const std::vector<int64_t>& ids) { return tokenizer->Decode(ids); };
    if (!tokenizer->eos_ids().empty()) eos_ids = tokenizer->eos_ids();
  }

  const std::string where = c.path.value_or(c.name);
  auto included = [&](size_t i) {
    return !options.include_prompt || options.include_prompt(static_cast<int64_t>(i));
  };
  std::vector<std::vector<int64_t>> prompt_tokens(c.prompts.size());
  int64_t included_prompts = 0;
  for (size_t i = 0; i < c.prompts.size(); ++i) {
    if (!included(i)) continue;
    ++included_prompts;
    const CasePrompt& prompt = c.prompts[i];
    std::vector<int64_t> ids = prompt.tokens;
    if (prompt.text) {
      if (!tokenizer) {
        throw InputError(fmt::format("{}: prompts[{}]: a text prompt needs a tokenizer.model in a "
                                     "model directory; give token ids instead", where, i));
      }
      ids = prompt.chat ? tokenizer->EncodeChat(*prompt.text) : tokenizer->Encode(*prompt.text, true);
    }
    for (const CaseModel& model : c.models) {
      session::CheckTokenIds(ids, models.config(c, model.label).vocab_size, model.label,
                             fmt::format("{}: prompts[{}]", where, i));
    }
    prompt_tokens[i] = ids;
  }

  if (options.claim_output) summary.run_id = options.claim_output();
  models.Convert(c);
  for (const CaseModel& model : c.models) {
    const session::StoredModel& stored = models.Get(model.label);
    ModelInfo info;
    info.path = stored.path;
    info.architecture = model::ArchitectureName(stored.config.arch);
    info.convert_from = model.convert_from;
    info.variants = forward::DescribeVariants(forward::ReferenceVariants(stored.config.arch));
    info.config = ConfigSummary(stored.config);
    summary.models[model.label] = info;
  }

  const int64_t total_runs = static_cast<int64_t>(c.pairs.size()) * included_prompts;
  int64_t done = 0;
  for (const CasePair& case_pair : c.pairs) {
    Pair pair{MakeSide(case_pair.a, device), MakeSide(case_pair.b, device)};
    const bool oracle = c.oracle && case_pair.a.precision != forward::Precision::kFP64 &&
                        case_pair.b.precision != forward::Precision::kFP64;
    if (summary.interrupted) break;
    std::set<std::string> keep = {models.LoadKey(case_pair.a.model, case_pair.a.precision),
                                  models.LoadKey(case_pair.b.model, case_pair.b.precision)};
    if (oracle) {
      keep.insert(models.LoadKey(case_pair.a.model, forward::Precision::kFP64));
      keep.insert(models.LoadKey(case_pair.b.model, forward::Precision::kFP64));
    }
    store.KeepOnly(keep);
    forward::CausalLM& model_a = models.Load(case_pair.a.model, case_pair.a.precision);
    forward::CausalLM& model_b = models.Load(case_pair.b.model, case_pair.b.precision);
    OracleModels oracle_models;
    if (oracle) {
      oracle_models.a64 = &models.Load(case_pair.a.model, forward::Precision::kFP64);
      oracle_models.b64 = &models.Load(case_pair.b.model, forward::Precision::kFP64);
    }
    for (size_t i = 0; i < c.prompts.size(); ++i) {
      if (!included(i)) continue;
      RunRequest request;
      request.prompt_index = static_cast<int64_t>(i);
      request.id = RunId(request.prompt_index, pair);
      request.prompt_text = c.prompts[i].text;
      request.chat = c.prompts[i].text && c.prompts[i].chat;
      request.prompt_tokens = prompt_tokens[i];
      request.pair = pair;
      request.precision_a = case_pair.a.precision;
      request.precision_b = case_pair.b.precision;
      request.greedy.mode = c.mode;
      request.greedy.max_new_tokens = c.max_new_tokens;
      request.greedy.eos_ids = eos_ids;
      request.greedy.teacher_is_a = c.teacher_is_a;
      request.top_k = c.top_k;
      request.near_tie_ulps = c.near_tie_ulps;
      request.thresholds = case_pair.thresholds;
      at::manual_seed(c.seed);
      RunOutcome outcome;
      try {
        outcome = RunPair(model_a, model_b, request, text, oracle ? &oracle_models : nullptr);
      } catch (const Interrupted&) {
        // SIGINT: the unfinished run is dropped; the finished ones are kept and written.
        summary.interrupted = true;
        spdlog::warn("interrupted during {}: keeping the {} finished run(s) of {}", request.id,
                     done, total_runs);
        break;
      }
      ++done;
      const Run& run = outcome.run;
      spdlog::info("[{}/{}] {}: {} steps, {}, max KL {:.3g}, {:.1f} s", done, total_runs, run.id,
                   run.metrics.steps,
                   run.first_divergence
                       ? fmt::format("first divergence at step {} ({})", run.first_divergence->step,
                                     run.first_divergence->kind)
                       : std::string("no divergence"),
                   run.metrics.max_kl, run.elapsed_s);
      for (Failure& failure : CheckGates(run, request.thresholds)) {
        summary.verdict.failures.push_back(std::move(failure));
      }
      summary.runs.push_back(run);
      outputs.steps.insert(outputs.steps.end(), outcome.steps.begin(), outcome.steps.end());
    }
  }
  store.KeepOnly({});
  summary.verdict.pass = summary.verdict.failures.empty();
  summary.pairs = SummarizePairs(summary.runs, outputs.steps, c.max_new_tokens);
  summary.created_utc = NowUtc();
  return outputs;
}

int FinishRun(const std::string& out_dir, const RunOutputs& outputs, bool print_table) {
  WriteRunOutputs(out_dir, outputs);
  if (print_table) std::cout << report::FormatSummaryTable(outputs.summary) << std::flush;
  spdlog::info("wrote {}/summary.json and {}/steps.jsonl", out_dir, out_dir);
  if (outputs.summary.interrupted) {
    spdlog::warn("interrupted: {} holds the {} run(s) that finished, marked interrupted",
                 out_dir, outputs.summary.runs.size());
    return kExitInterrupted;
  }
  return outputs.summary.verdict.pass ? kExitOk : kExitDifferent;
}

}  // namespace parity::compare
