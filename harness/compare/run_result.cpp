#include "harness/compare/run_result.h"

#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>

#include "harness/compare/verdict.h"
#include "harness/core/atomic_file.h"
#include "harness/core/error.h"
#include "harness/forward/precision_policy.h"

namespace parity::compare {
namespace {

using nlohmann::json;

json Number(double value) { return std::isfinite(value) ? json(value) : json(nullptr); }
json Number(const std::optional<double>& value) { return value ? Number(*value) : json(nullptr); }
template <typename T>
json OrNull(const std::optional<T>& value) {
  return value ? json(*value) : json(nullptr);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writing

json ToJson(const SideSpec& s) {
  json side = {{"model", s.model}, {"precision", s.precision}, {"numerics", s.numerics},
               {"emulated", s.emulated}};
  // A precision policy, spelled out: which precision each overridden module runs in.
  if (auto policy = forward::TryParsePrecisionPolicy(s.precision); policy && !policy->Uniform()) {
    json overrides = json::array();
    for (const forward::PrecisionOverride& o : policy->overrides) {
      json layers = nullptr;
      if (o.layers) layers = {o.layers->first, o.layers->second};
      overrides.push_back({{"module", forward::ModuleName(o.module)},
                           {"layers", layers},
                           {"precision", forward::PrecisionName(o.precision)}});
    }
    side["policy"] = {{"base", forward::PrecisionName(policy->base)},
                      {"overrides", overrides},
                      {"tf32", policy->tf32}};
  }
  return side;
}
json ToJson(const Pair& p) { return {{"a", ToJson(p.a)}, {"b", ToJson(p.b)}}; }

json ToJson(const VerdictEvidence& e) {
  return {{"source", e.source},
          {"reason", e.reason},
          {"precision", e.precision},
          {"depth", e.depth},
          {"fp64_rel_diff", Number(e.fp64_rel_diff)},
          {"fp64_token_a", OrNull(e.fp64_token_a)},
          {"fp64_token_b", OrNull(e.fp64_token_b)},
          {"fp64_agrees_with", OrNull(e.fp64_agrees_with)},
          {"a_err_vs_fp64", Number(e.a_err_vs_fp64)},
          {"b_err_vs_fp64", Number(e.b_err_vs_fp64)},
          {"budget_a", Number(e.budget_a)},
          {"budget_b", Number(e.budget_b)},
          {"noise_steps", e.noise_steps},
          {"observed_noise", Number(e.observed_noise)},
          {"rel_diff", Number(e.rel_diff)},
          {"rounding_budget", Number(e.rounding_budget)},
          {"failing_side", OrNull(e.failing_side)},
          {"overflow_point", OrNull(e.overflow_point)}};
}

json ToJson(const FirstDivergence& d) {
  return {{"step", d.step},         {"position", d.position},   {"token_a", d.token_a},
          {"token_b", d.token_b},   {"text_a", d.text_a},       {"text_b", d.text_b},
          {"context", d.context},   {"margin_a", Number(d.margin_a)},
          {"margin_b", Number(d.margin_b)}, {"noise", Number(d.noise)},
          {"flip_gap", Number(d.flip_gap)}, {"tolerance", Number(d.tolerance)},
          {"kind", d.kind},         {"after_newline", d.after_newline},
          {"evidence", ToJson(d.evidence)}};
}

json ToJson(const RunMetrics& m) {
  return {{"steps", m.steps},
          {"same_context_steps", m.same_context_steps},
          {"max_abs_logit_diff", Number(m.max_abs_logit_diff)},
          {"rms_logit_diff_mean", Number(m.rms_logit_diff_mean)},
          {"max_kl", Number(m.max_kl)},
          {"mean_kl", Number(m.mean_kl)},
          {"p50_kl", Number(m.p50_kl)},
          {"p90_kl", Number(m.p90_kl)},
          {"p99_kl", Number(m.p99_kl)},
          {"mean_js", Number(m.mean_js)},
          {"max_nmse", Number(m.max_nmse)},
          {"min_cosine", Number(m.min_cosine)},
          {"top1_agreement", Number(m.top1_agreement)},
          {"topk_overlap_mean", Number(m.topk_overlap_mean)},
          {"first_divergence_step", OrNull(m.first_divergence_step)},
          {"nonfinite_steps", m.nonfinite_steps},
          {"after_split", {{"steps", m.after_split.steps},
                           {"mean_kl", Number(m.after_split.mean_kl)},
                           {"max_kl", Number(m.after_split.max_kl)},
                           {"top1_agreement", Number(m.after_split.top1_agreement)}}},
          {"max_logprob_diff", Number(m.max_logprob_diff)}};
}

json ToJson(const OracleResult& o) {
  return {{"reference_model", o.reference_model},
          {"a_rms_error_vs_fp64", Number(o.a_rms_error_vs_fp64)},
          {"b_rms_error_vs_fp64", Number(o.b_rms_error_vs_fp64)},
          {"comparable_steps", o.comparable_steps},
          {"a_rms_error_vs_reference", Number(o.a_rms_error_vs_reference)},
          {"b_rms_error_vs_reference", Number(o.b_rms_error_vs_reference)},
          {"fp64_models_rms_diff", Number(o.fp64_models_rms_diff)},
          {"multiplier", Number(o.multiplier)},
          {"acceptable", OrNull(o.acceptable)},
          {"rule", o.rule}};
}

json ToJson(const RangeWatch& w) {
  json points = json::array();
  for (const RangePoint& p : w.points) {
    points.push_back({{"name", p.name},
                      {"precision", p.precision},
                      {"largest_finite", Number(p.largest_finite)},
                      {"max_abs", Number(p.max_abs)},
                      {"fraction", Number(p.fraction())},
                      {"non_finite", p.non_finite},
                      {"out_of_range", p.out_of_range()},
                      {"saturating", p.saturating},
                      {"first_out_of_range_step", OrNull(p.first_out_of_range_step)}});
  }
  return {{"policy", w.policy},
          {"saturation_fraction", Number(w.saturation_fraction)},
          {"first_out_of_range", OrNull(w.first_out_of_range)},
          {"first_non_finite", OrNull(w.first_non_finite)},
          {"first_saturating", OrNull(w.first_saturating)},
          {"largest_fraction_point", OrNull(w.largest_fraction_point)},
          {"largest_fraction", Number(w.largest_fraction)},
          {"points", points}};
}

json UnavailableJson(const std::vector<UnavailableMetric>& items) {
  json out = json::array();
  for (const UnavailableMetric& u : items) out.push_back({{"metric", u.metric}, {"reason", u.reason}});
  return out;
}

json ToJson(const Run& r) {
  return {{"id", r.id},
          {"prompt_index", r.prompt_index},
          {"prompt", OrNull(r.prompt)},
          {"chat", r.chat},
          {"prompt_tokens", r.prompt_tokens},
          {"pair", ToJson(r.pair)},
          {"tokens_a", r.tokens_a},
          {"tokens_b", r.tokens_b},
          {"text_a", r.text_a},
          {"text_b", r.text_b},
          {"first_divergence", r.first_divergence ? ToJson(*r.first_divergence) : json(nullptr)},
          {"verdict", r.verdict_kind ? json{{"kind", *r.verdict_kind},
                                            {"evidence", ToJson(r.verdict_evidence)}}
                                     : json(nullptr)},
          {"metrics", ToJson(r.metrics)},
          {"oracle", r.oracle ? ToJson(*r.oracle) : json(nullptr)},
          {"thresholds", ToJson(r.thresholds)},
          {"elapsed_s", Number(r.elapsed_s)},
          {"pass", r.pass},
          {"unavailable_metrics", UnavailableJson(r.unavailable_metrics)},
          {"range_watch", r.range_a || r.range_b
                              ? json{{"a", r.range_a ? ToJson(*r.range_a) : json(nullptr)},
                                     {"b", r.range_b ? ToJson(*r.range_b) : json(nullptr)}}
                              : json(nullptr)},
          {"engine", r.engine_a.empty() && r.engine_b.empty()
                         ? json(nullptr)
                         : json{{"a", r.engine_a}, {"b", r.engine_b}}},
          {"attention", r.attention_a.is_null() && r.attention_b.is_null()
                            ? json(nullptr)
                            : json{{"a", r.attention_a}, {"b", r.attention_b}}}};
}

json ToJson(const Failure& f) {
  return {{"run", f.run}, {"gate", f.gate}, {"value", Number(f.value)},
          {"threshold", Number(f.threshold)}, {"message", f.message}};
}

json ToJson(const Settings& s) {
  return {{"device", s.device},
          {"mode", s.mode},
          {"teacher", s.teacher},
          {"max_new_tokens", s.max_new_tokens},
          {"seed", s.seed},
          {"chat", s.chat},
          {"top_k", s.top_k},
          {"near_tie_ulps", Number(s.near_tie_ulps)},
          {"oracle", s.oracle},
          {"oracle_device", s.oracle_device},
          {"range_watch", s.range_watch},
          {"saturation_fraction", Number(s.saturation_fraction)},
          {"deterministic_algorithms", s.deterministic_algorithms},
          {"num_threads", s.num_threads},
          {"attention_backend", s.attention_backend}};
}

json ToJson(const ModelInfo& m) {
  return {{"path", m.path}, {"architecture", m.architecture},
          {"convert_from", OrNull(m.convert_from)}, {"variants", m.variants},
          {"config", m.config}};
}

json ToJson(const PairSummary& p) {
  json fractions = json::array();
  for (double f : p.identical_fraction) fractions.push_back(Number(f));
  return {{"id", p.id},
          {"pair", ToJson(p.pair)},
          {"runs", p.runs},
          {"mean_kl", Number(p.mean_kl)},
          {"max_kl", Number(p.max_kl)},
          {"top1_agreement", Number(p.top1_agreement)},
          {"identical_fraction", fractions},
          {"pass", p.pass}};
}

namespace {

// ---------------------------------------------------------------------------------------------
// Reading: every accessor names the source file and the field path in its error.

class Reader {
 public:
  Reader(const json& object, std::string path, const std::string& source)
      : object_(object), path_(std::move(path)), source_(source) {
    if (!object_.is_object()) Fail("", "an object", object_);
  }

  Reader Child(const std::string& key) const { return Reader(At(key), Path(key), source_); }
  std::optional<Reader> OptionalChild(const std::string& key) const {
    const json& value = At(key);
    if (value.is_null()) return std::nullopt;
    return Reader(value, Path(key), source_);
  }
  const json& At(const std::string& key) const {
    auto it = object_.find(key);
    if (it == object_.end()) {
      throw InputError(fmt::format("{}: {}: missing field", source_, Path(key)));
    }
    return *it;
  }
  // Elements of an array field, each with its "[i]" path.
  std::vector<std::pair<const json*, std::string>> Array(const std::string& key) const {
    const json& value = At(key);
    if (!value.is_array()) Fail(key, "an array", value);
    std::vector<std::pair<const json*, std::string>> out;
    for (size_t i = 0; i < value.size(); ++i) {
      out.push_back({&value[i], fmt::format("{}[{}]", Path(key), i)});
    }
    return out;
  }

  double Double(const std::string& key) const {
    const json& value = At(key);
    if (value.is_null()) return std::numeric_limits<double>::quiet_NaN();
    if (!value.is_number()) Fail(key, "a number", value);
    return value.get<double>();
  }
  std::optional<double> OptionalDouble(const std::string& key) const {
    const json& value = At(key);
    if (value.is_null()) return std::nullopt;
    return Double(key);
  }
  int64_t Int(const std::string& key) const {
    const json& value = At(key);
    if (!value.is_number_integer()) Fail(key, "an integer", value);
    return value.get<int64_t>();
  }
  std::optional<int64_t> OptionalInt(const std::string& key) const {
    if (At(key).is_null()) return std::nullopt;
    return Int(key);
  }
  bool Bool(const std::string& key) const {
    const json& value = At(key);
    if (!value.is_boolean()) Fail(key, "true or false", value);
    return value.get<bool>();
  }
  std::optional<bool> OptionalBool(const std::string& key) const {
    if (At(key).is_null()) return std::nullopt;
    return Bool(key);
  }
  std::string String(const std::string& key) const {
    const json& value = At(key);
    if (!value.is_string()) Fail(key, "a string", value);
    return value.get<std::string>();
  }
  std::optional<std::string> OptionalString(const std::string& key) const {
    if (At(key).is_null()) return std::nullopt;
    return String(key);
  }
  std::vector<int64_t> Ints(const std::string& key) const {
    std::vector<int64_t> out;
    for (const auto& [element, path] : Array(key)) {
      if (!element->is_number_integer()) {
        throw InputError(fmt::format("{}: {}: expected an integer, got {}", source_, path,
                                     element->dump()));
      }
      out.push_back(element->get<int64_t>());
    }
    return out;
  }
  std::vector<std::string> Strings(const std::string& key) const {
    std::vector<std::string> out;
    for (const auto& [element, path] : Array(key)) {
      if (!element->is_string()) {
        throw InputError(
            fmt::format("{}: {}: expected a string, got {}", source_, path, element->dump()));
      }
      out.push_back(element->get<std::string>());
    }
    return out;
  }
  std::vector<double> Doubles(const std::string& key) const {
    std::vector<double> out;
    for (const auto& [element, path] : Array(key)) {
      if (element->is_null()) {
        out.push_back(std::numeric_limits<double>::quiet_NaN());
      } else if (element->is_number()) {
        out.push_back(element->get<double>());
      } else {
        throw InputError(
            fmt::format("{}: {}: expected a number, got {}", source_, path, element->dump()));
      }
    }
    return out;
  }

  bool Has(const std::string& key) const { return object_.contains(key); }
  const json& object() const { return object_; }
  const std::string& source() const { return source_; }
  std::string Path(const std::string& key) const {
    if (path_.empty()) return key;
    return key.empty() ? path_ : path_ + "." + key;
  }

  [[noreturn]] void Fail(const std::string& key, const char* expected, const json& got) const {
    std::string where = Path(key);
    throw InputError(fmt::format("{}: {}{}expected {}, got {}", source_, where,
                                 where.empty() ? "" : ": ", expected, got.dump()));
  }

 private:
  const json& object_;
  std::string path_;
  const std::string& source_;
};

SideSpec SideFromJson(const Reader& r) {
  SideSpec s;
  s.model = r.String("model");
  s.precision = r.String("precision");
  s.numerics = r.String("numerics");
  s.emulated = r.Bool("emulated");
  return s;
}
Pair PairFromJson(const Reader& r) { return {SideFromJson(r.Child("a")), SideFromJson(r.Child("b"))}; }

VerdictEvidence EvidenceFromJson(const Reader& e);

FirstDivergence DivergenceFromJson(const Reader& r) {
  FirstDivergence d;
  d.step = r.Int("step");
  d.position = r.Int("position");
  d.token_a = r.Int("token_a");
  d.token_b = r.Int("token_b");
  d.text_a = r.String("text_a");
  d.text_b = r.String("text_b");
  d.context = r.String("context");
  d.margin_a = r.Double("margin_a");
  d.margin_b = r.Double("margin_b");
  d.noise = r.Double("noise");
  d.flip_gap = r.Double("flip_gap");
  d.tolerance = r.Double("tolerance");
  d.kind = r.String("kind");
  std::optional<DivergenceKind> kind = ParseDivergenceKind(d.kind);
  if (!kind) {
    r.Fail("kind", "\"rounding\", \"real\", \"precision_failure\" or \"undetermined\"",
           r.At("kind"));
  }
  d.kind = DivergenceKindName(*kind);  // schema 1's "near_tie" is "rounding"
  d.after_newline = r.Bool("after_newline");
  if (r.Has("evidence")) {
    d.evidence = EvidenceFromJson(r.Child("evidence"));
  } else {  // schema 1: the ULP rule decided
    d.evidence.source = "ulp";
    d.evidence.reason = fmt::format("flip gap {:.3g} against a tolerance of {:.3g} (schema 1 file)",
                                    d.flip_gap, d.tolerance);
  }
  return d;
}

VerdictEvidence EvidenceFromJson(const Reader& e) {
  {
    VerdictEvidence v;
    v.source = e.String("source");
    v.reason = e.String("reason");
    v.precision = e.String("precision");
    v.depth = e.Int("depth");
    v.fp64_rel_diff = e.OptionalDouble("fp64_rel_diff");
    v.fp64_token_a = e.OptionalInt("fp64_token_a");
    v.fp64_token_b = e.OptionalInt("fp64_token_b");
    v.fp64_agrees_with = e.OptionalString("fp64_agrees_with");
    v.a_err_vs_fp64 = e.OptionalDouble("a_err_vs_fp64");
    v.b_err_vs_fp64 = e.OptionalDouble("b_err_vs_fp64");
    v.budget_a = e.OptionalDouble("budget_a");
    v.budget_b = e.OptionalDouble("budget_b");
    v.noise_steps = e.Int("noise_steps");
    v.observed_noise = e.OptionalDouble("observed_noise");
    v.rel_diff = e.OptionalDouble("rel_diff");
    v.rounding_budget = e.OptionalDouble("rounding_budget");
    v.failing_side = e.OptionalString("failing_side");
    v.overflow_point = e.OptionalString("overflow_point");
    return v;
  }
}

RunMetrics MetricsFromJson(const Reader& r) {
  RunMetrics m;
  m.steps = r.Int("steps");
  m.same_context_steps = r.Int("same_context_steps");
  m.max_abs_logit_diff = r.Double("max_abs_logit_diff");
  m.rms_logit_diff_mean = r.Double("rms_logit_diff_mean");
  m.max_kl = r.Double("max_kl");
  m.mean_kl = r.Double("mean_kl");
  m.p50_kl = r.Double("p50_kl");
  m.p90_kl = r.Double("p90_kl");
  m.p99_kl = r.Double("p99_kl");
  m.mean_js = r.Double("mean_js");
  m.max_nmse = r.OptionalDouble("max_nmse");
  m.min_cosine = r.OptionalDouble("min_cosine");
  m.top1_agreement = r.Double("top1_agreement");
  m.topk_overlap_mean = r.Double("topk_overlap_mean");
  m.first_divergence_step = r.OptionalInt("first_divergence_step");
  if (r.Has("nonfinite_steps")) m.nonfinite_steps = r.Int("nonfinite_steps");
  if (r.Has("after_split")) {
    Reader a = r.Child("after_split");
    m.after_split.steps = a.Int("steps");
    m.after_split.mean_kl = a.Double("mean_kl");
    m.after_split.max_kl = a.Double("max_kl");
    m.after_split.top1_agreement = a.Double("top1_agreement");
  }
  if (r.Has("max_logprob_diff")) m.max_logprob_diff = r.OptionalDouble("max_logprob_diff");
  return m;
}

OracleResult OracleFromJson(const Reader& r) {
  OracleResult o;
  o.reference_model = r.String("reference_model");
  o.a_rms_error_vs_fp64 = r.Double("a_rms_error_vs_fp64");
  o.b_rms_error_vs_fp64 = r.Double("b_rms_error_vs_fp64");
  o.comparable_steps = r.Int("comparable_steps");
  o.a_rms_error_vs_reference = r.Double("a_rms_error_vs_reference");
  o.b_rms_error_vs_reference = r.Double("b_rms_error_vs_reference");
  o.fp64_models_rms_diff = r.Double("fp64_models_rms_diff");
  o.multiplier = r.Double("multiplier");
  o.acceptable = r.OptionalBool("acceptable");
  o.rule = r.String("rule");
  return o;
}

RangeWatch RangeWatchFrom(const Reader& r) {
  RangeWatch w;
  w.policy = r.String("policy");
  w.saturation_fraction = r.Double("saturation_fraction");
  w.first_out_of_range = r.OptionalString("first_out_of_range");
  w.first_non_finite = r.OptionalString("first_non_finite");
  w.first_saturating = r.OptionalString("first_saturating");
  w.largest_fraction_point = r.OptionalString("largest_fraction_point");
  w.largest_fraction = r.Double("largest_fraction");
  for (const auto& [element, path] : r.Array("points")) {
    Reader p(*element, path, r.source());
    RangePoint point;
    point.name = p.String("name");
    point.precision = p.String("precision");
    point.largest_finite = p.Double("largest_finite");
    point.max_abs = p.Double("max_abs");
    point.non_finite = p.Int("non_finite");
    point.saturating = p.Bool("saturating");
    point.first_out_of_range_step = p.OptionalInt("first_out_of_range_step");
    w.points.push_back(std::move(point));
  }
  return w;
}

Thresholds ThresholdsFrom(const Reader& r) {
  Thresholds t;
  t.max_kl = r.OptionalDouble("max_kl");
  t.mean_kl = r.OptionalDouble("mean_kl");
  t.p99_kl = r.OptionalDouble("p99_kl");
  t.max_abs_logit_diff = r.OptionalDouble("max_abs_logit_diff");
  t.min_top1_agreement = r.OptionalDouble("min_top1_agreement");
  t.min_first_divergence_step = r.OptionalInt("min_first_divergence_step");
  t.fail_on_real_divergence = r.Bool("fail_on_real_divergence");
  t.require_oracle_acceptable = r.Bool("require_oracle_acceptable");
  return t;
}

Run RunFromJson(const Reader& r) {
  Run run;
  run.id = r.String("id");
  run.prompt_index = r.Int("prompt_index");
  run.prompt = r.OptionalString("prompt");
  run.chat = r.Bool("chat");
  run.prompt_tokens = r.Ints("prompt_tokens");
  run.pair = PairFromJson(r.Child("pair"));
  run.tokens_a = r.Ints("tokens_a");
  run.tokens_b = r.Ints("tokens_b");
  run.text_a = r.String("text_a");
  run.text_b = r.String("text_b");
  if (auto d = r.OptionalChild("first_divergence")) run.first_divergence = DivergenceFromJson(*d);
  if (r.Has("verdict")) {
    if (auto v = r.OptionalChild("verdict")) {
      std::optional<DivergenceKind> kind = ParseDivergenceKind(v->String("kind"));
      if (!kind) v->Fail("kind", "a verdict kind", v->At("kind"));
      run.verdict_kind = DivergenceKindName(*kind);
      run.verdict_evidence = EvidenceFromJson(v->Child("evidence"));
    }
  }
  run.metrics = MetricsFromJson(r.Child("metrics"));
  if (auto o = r.OptionalChild("oracle")) run.oracle = OracleFromJson(*o);
  run.thresholds = ThresholdsFrom(r.Child("thresholds"));
  run.elapsed_s = r.Double("elapsed_s");
  run.pass = r.Bool("pass");
  if (r.Has("unavailable_metrics")) {
    for (const auto& [element, path] : r.Array("unavailable_metrics")) {
      Reader u(*element, path, r.source());
      run.unavailable_metrics.push_back({u.String("metric"), u.String("reason")});
    }
  }
  if (r.Has("range_watch")) {
    if (auto w = r.OptionalChild("range_watch")) {
      if (auto a = w->OptionalChild("a")) run.range_a = RangeWatchFrom(*a);
      if (auto b = w->OptionalChild("b")) run.range_b = RangeWatchFrom(*b);
    }
  }
  if (auto e = r.Has("engine") ? r.OptionalChild("engine") : std::nullopt) {
    run.engine_a = e->String("a");
    run.engine_b = e->String("b");
  }
  if (r.Has("attention") && r.At("attention").is_object()) {
    run.attention_a = r.At("attention").value("a", json(nullptr));
    run.attention_b = r.At("attention").value("b", json(nullptr));
  }
  return run;
}

Settings SettingsFromJson(const Reader& r) {
  Settings s;
  s.device = r.String("device");
  s.mode = r.String("mode");
  if (s.mode != "free" && s.mode != "teacher_forced") {
    r.Fail("mode", "\"free\" or \"teacher_forced\"", r.At("mode"));
  }
  s.teacher = r.String("teacher");
  s.max_new_tokens = r.Int("max_new_tokens");
  s.seed = static_cast<uint64_t>(r.Int("seed"));
  s.chat = r.Bool("chat");
  s.top_k = r.Int("top_k");
  s.near_tie_ulps = r.Double("near_tie_ulps");
  s.oracle = r.Bool("oracle");
  if (r.Has("oracle_device")) s.oracle_device = r.String("oracle_device");
  if (r.Has("range_watch")) {
    s.range_watch = r.String("range_watch");
    if (s.range_watch != "on" && s.range_watch != "off" && s.range_watch != "auto") {
      r.Fail("range_watch", "\"on\", \"off\" or \"auto\"", r.At("range_watch"));
    }
  }
  if (r.Has("saturation_fraction")) s.saturation_fraction = r.Double("saturation_fraction");
  s.deterministic_algorithms = r.Bool("deterministic_algorithms");
  s.num_threads = r.Int("num_threads");
  if (r.Has("attention_backend")) s.attention_backend = r.At("attention_backend");
  return s;
}

ModelInfo ModelFromJson(const Reader& r) {
  ModelInfo m;
  m.path = r.String("path");
  m.architecture = r.String("architecture");
  m.convert_from = r.OptionalString("convert_from");
  m.variants = r.String("variants");
  m.config = r.At("config");
  return m;
}

PairSummary PairSummaryFromJson(const Reader& r) {
  PairSummary p;
  p.id = r.String("id");
  p.pair = PairFromJson(r.Child("pair"));
  p.runs = r.Strings("runs");
  p.mean_kl = r.Double("mean_kl");
  p.max_kl = r.Double("max_kl");
  p.top1_agreement = r.Double("top1_agreement");
  p.identical_fraction = r.Doubles("identical_fraction");
  p.pass = r.Bool("pass");
  return p;
}

}  // namespace

nlohmann::json ToJson(const StepRecord& s) {
  return {{"run", s.run},
          {"step", s.step},
          {"position", s.position},
          {"same_context", s.same_context},
          {"token_a", s.token_a},
          {"token_b", s.token_b},
          {"max_abs_diff", Number(s.max_abs_diff)},
          {"rms_diff", Number(s.rms_diff)},
          {"kl", Number(s.kl)},
          {"kl_reverse", Number(s.kl_reverse)},
          {"js", Number(s.js)},
          {"nmse", Number(s.nmse)},
          {"cosine", Number(s.cosine)},
          {"top1_agree", s.top1_agree},
          {"topk_overlap", Number(s.topk_overlap)},
          {"rank_b_in_a", s.rank_b_in_a},
          {"rank_a_in_b", s.rank_a_in_b},
          {"margin_a", Number(s.margin_a)},
          {"margin_b", Number(s.margin_b)},
          {"noise", Number(s.noise)},
          {"err_a_fp64", Number(s.err_a_fp64)},
          {"err_b_fp64", Number(s.err_b_fp64)},
          {"nonfinite_a", s.nonfinite_a},
          {"nonfinite_b", s.nonfinite_b},
          {"logprob_max_abs_diff", Number(s.logprob_max_abs_diff)},
          {"shared_ids", OrNull(s.shared_ids)}};
}

StepRecord StepRecordFromJson(const nlohmann::json& json, const std::string& source) {
  Reader r(json, "", source);
  StepRecord s;
  s.run = r.String("run");
  s.step = r.Int("step");
  s.position = r.Int("position");
  s.same_context = r.Bool("same_context");
  s.token_a = r.Int("token_a");
  s.token_b = r.Int("token_b");
  s.max_abs_diff = r.Double("max_abs_diff");
  s.rms_diff = r.Double("rms_diff");
  s.kl = r.Double("kl");
  s.kl_reverse = r.Double("kl_reverse");
  s.js = r.Double("js");
  s.nmse = r.OptionalDouble("nmse");
  s.cosine = r.OptionalDouble("cosine");
  s.top1_agree = r.Bool("top1_agree");
  s.topk_overlap = r.Double("topk_overlap");
  s.rank_b_in_a = r.Int("rank_b_in_a");
  s.rank_a_in_b = r.Int("rank_a_in_b");
  s.margin_a = r.Double("margin_a");
  s.margin_b = r.Double("margin_b");
  s.noise = r.Double("noise");
  s.err_a_fp64 = r.OptionalDouble("err_a_fp64");
  s.err_b_fp64 = r.OptionalDouble("err_b_fp64");
  if (r.Has("nonfinite_a")) s.nonfinite_a = r.Int("nonfinite_a");
  if (r.Has("nonfinite_b")) s.nonfinite_b = r.Int("nonfinite_b");
  if (r.Has("logprob_max_abs_diff")) s.logprob_max_abs_diff = r.OptionalDouble("logprob_max_abs_diff");
  if (r.Has("shared_ids")) s.shared_ids = r.OptionalInt("shared_ids");
  return s;
}

bool AnyGate(const Thresholds& t) {
  return t.max_kl || t.mean_kl || t.p99_kl || t.max_abs_logit_diff || t.min_top1_agreement ||
         t.min_first_divergence_step || t.fail_on_real_divergence || t.require_oracle_acceptable;
}

nlohmann::json ToJson(const Thresholds& t) {
  return {{"max_kl", Number(t.max_kl)},
          {"mean_kl", Number(t.mean_kl)},
          {"p99_kl", Number(t.p99_kl)},
          {"max_abs_logit_diff", Number(t.max_abs_logit_diff)},
          {"min_top1_agreement", Number(t.min_top1_agreement)},
          {"min_first_divergence_step", OrNull(t.min_first_divergence_step)},
          {"fail_on_real_divergence", t.fail_on_real_divergence},
          {"require_oracle_acceptable", t.require_oracle_acceptable}};
}

RangeWatch RangeWatchFromJson(const nlohmann::json& json, const std::string& source) {
  return RangeWatchFrom(Reader(json, "", source));
}

Thresholds ThresholdsFromJson(const nlohmann::json& json, const std::string& source) {
  return ThresholdsFrom(Reader(json, "thresholds", source));
}

nlohmann::json ToJson(const Summary& s) {
  json models = json::object();
  for (const auto& [label, info] : s.models) models[label] = ToJson(info);
  json runs = json::array();
  for (const Run& run : s.runs) runs.push_back(ToJson(run));
  json pairs = json::array();
  for (const PairSummary& pair : s.pairs) pairs.push_back(ToJson(pair));
  json traces = json::array();
  for (const SavedTrace& t : s.traces) {
    traces.push_back({{"path", t.path}, {"format", t.format}, {"side", t.side}, {"pair", t.pair},
                      {"model", t.model}, {"runs", t.runs}});
  }
  json failures = json::array();
  for (const Failure& failure : s.verdict.failures) failures.push_back(ToJson(failure));
  return {{"schema_version", s.schema_version},
          {"parity_version", s.parity_version},
          {"libtorch_version", s.libtorch_version},
          {"created_utc", s.created_utc},
          {"run_id", s.run_id},
          {"interrupted", s.interrupted},
          {"case", {{"name", s.case_ref.name}, {"path", OrNull(s.case_ref.path)}}},
          {"settings", ToJson(s.settings)},
          {"models", models},
          {"thresholds", ToJson(s.thresholds)},
          {"verdict", {{"pass", s.verdict.pass}, {"gated", s.verdict.gated},
                       {"failures", failures}}},
          {"runs", runs},
          {"pairs", pairs},
          {"traces", traces},
          {"placements", s.placements}};
}

Summary SummaryFromJson(const nlohmann::json& json, const std::string& source) {
  Reader r(json, "", source);
  Summary s;
  s.schema_version = static_cast<int>(r.Int("schema_version"));
  if (s.schema_version != kSchemaVersion && s.schema_version != 1) {
    throw InputError(fmt::format("{}: schema_version: expected 1 or {}, got {}", source,
                                 kSchemaVersion, s.schema_version));
  }
  s.parity_version = r.String("parity_version");
  s.libtorch_version = r.String("libtorch_version");
  s.created_utc = r.String("created_utc");
  // Optional: summaries written before these fields existed have neither.
  if (json.is_object()) {
    if (auto it = json.find("run_id"); it != json.end() && it->is_string()) s.run_id = *it;
    if (auto it = json.find("interrupted"); it != json.end() && it->is_boolean()) {
      s.interrupted = *it;
    }
    if (auto it = json.find("placements"); it != json.end() && it->is_array()) s.placements = *it;
  }
  Reader case_ref = r.Child("case");
  s.case_ref.name = case_ref.String("name");
  s.case_ref.path = case_ref.OptionalString("path");
  s.settings = SettingsFromJson(r.Child("settings"));
  Reader models = r.Child("models");
  for (const auto& item : models.object().items()) {
    s.models[item.key()] = ModelFromJson(models.Child(item.key()));
  }
  s.thresholds = ThresholdsFrom(r.Child("thresholds"));
  Reader verdict = r.Child("verdict");
  s.verdict.pass = verdict.Bool("pass");
  if (verdict.Has("gated")) s.verdict.gated = verdict.Bool("gated");
  for (const auto& [element, path] : verdict.Array("failures")) {
    Reader f(*element, path, source);
    s.verdict.failures.push_back({f.String("run"), f.String("gate"), f.OptionalDouble("value"),
                                  f.OptionalDouble("threshold"), f.String("message")});
  }
  for (const auto& [element, path] : r.Array("runs")) {
    s.runs.push_back(RunFromJson(Reader(*element, path, source)));
  }
  for (const auto& [element, path] : r.Array("pairs")) {
    s.pairs.push_back(PairSummaryFromJson(Reader(*element, path, source)));
  }
  if (r.Has("traces")) {
    for (const auto& [element, path] : r.Array("traces")) {
      Reader t(*element, path, source);
      SavedTrace saved{t.String("path"), t.String("format"), t.String("side"), t.String("pair"),
                       t.String("model"), {}};
      for (const auto& [run, run_path] : t.Array("runs")) {
        if (!run->is_string()) t.Fail("runs", "an array of run ids", *run);
        saved.runs.push_back(run->get<std::string>());
      }
      s.traces.push_back(std::move(saved));
    }
  }
  return s;
}

std::string StepsToJsonl(const std::vector<StepRecord>& steps) {
  std::string out;
  for (const StepRecord& step : steps) {
    out += ToJson(step).dump();
    out += '\n';
  }
  return out;
}

std::vector<StepRecord> StepsFromJsonl(const std::string& text, const std::string& source) {
  std::vector<StepRecord> steps;
  std::istringstream in(text);
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    std::string where = fmt::format("{}:{}", source, number);
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw InputError(fmt::format("{}: not valid JSON: {}", where, e.what()));
    }
    steps.push_back(StepRecordFromJson(json, where));
  }
  return steps;
}

void WriteRunOutputs(const std::string& dir, const RunOutputs& outputs) {
  std::filesystem::path base(dir);
  WriteFileAtomic((base / "steps.jsonl").string(), StepsToJsonl(outputs.steps));
  WriteFileAtomic((base / "summary.json").string(), ToJson(outputs.summary).dump(2) + "\n");
}

RunOutputs ReadRunOutputs(const std::string& dir) {
  std::filesystem::path base(dir);
  auto read = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(fmt::format("cannot read '{}'", path));
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
  };
  std::string summary_path = (base / "summary.json").string();
  std::string steps_path = (base / "steps.jsonl").string();
  nlohmann::json summary_json;
  try {
    summary_json = nlohmann::json::parse(read(summary_path));
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(fmt::format("{}: not valid JSON: {}", summary_path, e.what()));
  }
  RunOutputs outputs;
  outputs.summary = SummaryFromJson(summary_json, summary_path);
  outputs.steps = StepsFromJsonl(read(steps_path), steps_path);
  return outputs;
}

std::string NowUtc() {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

}  // namespace parity::compare
