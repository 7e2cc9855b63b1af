#include "harness/compare/run_result.h"

#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <variant>

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

// ---------------------------------------------------------------------------------------------
// Field tables. Each struct's scalar fields are listed once, with their JSON keys; its writer and
// its reader both walk that table, so a field cannot be added to one side only, and every field
// of one C++ type is written and read one way: double as a number (null when not finite, read
// back as NaN), optional<T> as T or null, the rest as themselves. Nested objects and arrays of
// objects stay in the functions that walk the table.

template <typename S>
struct Field {
  using Member =
      std::variant<double S::*, std::optional<double> S::*, int64_t S::*,
                   std::optional<int64_t> S::*, uint64_t S::*, bool S::*,
                   std::optional<bool> S::*, std::string S::*, std::optional<std::string> S::*,
                   std::vector<int64_t> S::*, std::vector<double> S::*,
                   std::vector<std::string> S::*>;
  const char* key;
  Member member;
  bool may_be_absent = false;  // files written before the field existed lack it: keep the default
};

json FieldJson(double v) { return Number(v); }
json FieldJson(const std::optional<double>& v) { return Number(v); }
json FieldJson(int64_t v) { return v; }
json FieldJson(const std::optional<int64_t>& v) { return OrNull(v); }
json FieldJson(uint64_t v) { return v; }
json FieldJson(bool v) { return v; }
json FieldJson(const std::optional<bool>& v) { return OrNull(v); }
json FieldJson(const std::string& v) { return v; }
json FieldJson(const std::optional<std::string>& v) { return OrNull(v); }
json FieldJson(const std::vector<int64_t>& v) { return v; }
json FieldJson(const std::vector<std::string>& v) { return v; }
json FieldJson(const std::vector<double>& v) {
  json out = json::array();
  for (double x : v) out.push_back(Number(x));
  return out;
}

void ReadField(const Reader& r, const char* key, double& v) { v = r.Double(key); }
void ReadField(const Reader& r, const char* key, std::optional<double>& v) {
  v = r.OptionalDouble(key);
}
void ReadField(const Reader& r, const char* key, int64_t& v) { v = r.Int(key); }
void ReadField(const Reader& r, const char* key, std::optional<int64_t>& v) {
  v = r.OptionalInt(key);
}
void ReadField(const Reader& r, const char* key, uint64_t& v) {
  v = static_cast<uint64_t>(r.Int(key));
}
void ReadField(const Reader& r, const char* key, bool& v) { v = r.Bool(key); }
void ReadField(const Reader& r, const char* key, std::optional<bool>& v) {
  v = r.OptionalBool(key);
}
void ReadField(const Reader& r, const char* key, std::string& v) { v = r.String(key); }
void ReadField(const Reader& r, const char* key, std::optional<std::string>& v) {
  v = r.OptionalString(key);
}
void ReadField(const Reader& r, const char* key, std::vector<int64_t>& v) { v = r.Ints(key); }
void ReadField(const Reader& r, const char* key, std::vector<double>& v) { v = r.Doubles(key); }
void ReadField(const Reader& r, const char* key, std::vector<std::string>& v) {
  v = r.Strings(key);
}

template <typename S>
json WriteFields(const S& s, const std::vector<Field<S>>& fields, json out = json::object()) {
  for (const Field<S>& f : fields) {
    std::visit([&](auto member) { out[f.key] = FieldJson(s.*member); }, f.member);
  }
  return out;
}
template <typename S>
void ReadFields(const Reader& r, S& s, const std::vector<Field<S>>& fields) {
  for (const Field<S>& f : fields) {
    if (f.may_be_absent && !r.Has(f.key)) continue;
    std::visit([&](auto member) { ReadField(r, f.key, s.*member); }, f.member);
  }
}

template <typename S>
const std::vector<Field<S>>& FieldsOf();

template <>
const std::vector<Field<StepRecord>>& FieldsOf<StepRecord>() {
  using S = StepRecord;
  static const std::vector<Field<S>> fields = {
      {"run", &S::run},
      {"step", &S::step},
      {"position", &S::position},
      {"same_context", &S::same_context},
      {"token_a", &S::token_a},
      {"token_b", &S::token_b},
      {"max_abs_diff", &S::max_abs_diff},
      {"rms_diff", &S::rms_diff},
      {"kl", &S::kl},
      {"kl_reverse", &S::kl_reverse},
      {"js", &S::js},
      {"nmse", &S::nmse},
      {"cosine", &S::cosine},
      {"top1_agree", &S::top1_agree},
      {"topk_overlap", &S::topk_overlap},
      {"rank_b_in_a", &S::rank_b_in_a},
      {"rank_a_in_b", &S::rank_a_in_b},
      {"margin_a", &S::margin_a},
      {"margin_b", &S::margin_b},
      {"noise", &S::noise},
      {"err_a_fp64", &S::err_a_fp64},
      {"err_b_fp64", &S::err_b_fp64},
      {"nonfinite_a", &S::nonfinite_a, true},
      {"nonfinite_b", &S::nonfinite_b, true},
      {"logprob_max_abs_diff", &S::logprob_max_abs_diff, true},
      {"shared_ids", &S::shared_ids, true},
  };
  return fields;
}

template <>
const std::vector<Field<SideSpec>>& FieldsOf<SideSpec>() {
  using S = SideSpec;
  static const std::vector<Field<S>> fields = {
      {"model", &S::model},
      {"precision", &S::precision},
      {"numerics", &S::numerics},
      {"emulated", &S::emulated},
  };
  return fields;
}

template <>
const std::vector<Field<VerdictEvidence>>& FieldsOf<VerdictEvidence>() {
  using S = VerdictEvidence;
  static const std::vector<Field<S>> fields = {
      {"source", &S::source},
      {"reason", &S::reason},
      {"precision", &S::precision},
      {"depth", &S::depth},
      {"fp64_rel_diff", &S::fp64_rel_diff},
      {"fp64_token_a", &S::fp64_token_a},
      {"fp64_token_b", &S::fp64_token_b},
      {"fp64_agrees_with", &S::fp64_agrees_with},
      {"a_err_vs_fp64", &S::a_err_vs_fp64},
      {"b_err_vs_fp64", &S::b_err_vs_fp64},
      {"budget_a", &S::budget_a},
      {"budget_b", &S::budget_b},
      {"noise_steps", &S::noise_steps},
      {"observed_noise", &S::observed_noise},
      {"rel_diff", &S::rel_diff},
      {"rounding_budget", &S::rounding_budget},
      {"failing_side", &S::failing_side},
      {"overflow_point", &S::overflow_point},
  };
  return fields;
}

// The scalar fields of first_divergence (kind, parsed, and evidence are the reader's own).
template <>
const std::vector<Field<FirstDivergence>>& FieldsOf<FirstDivergence>() {
  using S = FirstDivergence;
  static const std::vector<Field<S>> fields = {
      {"step", &S::step},
      {"position", &S::position},
      {"token_a", &S::token_a},
      {"token_b", &S::token_b},
      {"text_a", &S::text_a},
      {"text_b", &S::text_b},
      {"context", &S::context},
      {"margin_a", &S::margin_a},
      {"margin_b", &S::margin_b},
      {"noise", &S::noise},
      {"flip_gap", &S::flip_gap},
      {"tolerance", &S::tolerance},
      {"after_newline", &S::after_newline},
  };
  return fields;
}

template <>
const std::vector<Field<AfterSplitMetrics>>& FieldsOf<AfterSplitMetrics>() {
  using S = AfterSplitMetrics;
  static const std::vector<Field<S>> fields = {
      {"steps", &S::steps},
      {"mean_kl", &S::mean_kl},
      {"max_kl", &S::max_kl},
      {"top1_agreement", &S::top1_agreement},
  };
  return fields;
}

// RunMetrics without after_split (a nested object).
template <>
const std::vector<Field<RunMetrics>>& FieldsOf<RunMetrics>() {
  using S = RunMetrics;
  static const std::vector<Field<S>> fields = {
      {"steps", &S::steps},
      {"same_context_steps", &S::same_context_steps},
      {"max_abs_logit_diff", &S::max_abs_logit_diff},
      {"rms_logit_diff_mean", &S::rms_logit_diff_mean},
      {"max_kl", &S::max_kl},
      {"mean_kl", &S::mean_kl},
      {"p50_kl", &S::p50_kl},
      {"p90_kl", &S::p90_kl},
      {"p99_kl", &S::p99_kl},
      {"mean_js", &S::mean_js},
      {"max_nmse", &S::max_nmse},
      {"min_cosine", &S::min_cosine},
      {"top1_agreement", &S::top1_agreement},
      {"topk_overlap_mean", &S::topk_overlap_mean},
      {"first_divergence_step", &S::first_divergence_step},
      {"nonfinite_steps", &S::nonfinite_steps, true},
      {"max_logprob_diff", &S::max_logprob_diff, true},
  };
  return fields;
}

template <>
const std::vector<Field<OracleResult>>& FieldsOf<OracleResult>() {
  using S = OracleResult;
  static const std::vector<Field<S>> fields = {
      {"reference_model", &S::reference_model},
      {"a_rms_error_vs_fp64", &S::a_rms_error_vs_fp64},
      {"b_rms_error_vs_fp64", &S::b_rms_error_vs_fp64},
      {"comparable_steps", &S::comparable_steps},
      {"a_rms_error_vs_reference", &S::a_rms_error_vs_reference},
      {"b_rms_error_vs_reference", &S::b_rms_error_vs_reference},
      {"fp64_models_rms_diff", &S::fp64_models_rms_diff},
      {"multiplier", &S::multiplier},
      {"acceptable", &S::acceptable},
      {"rule", &S::rule},
  };
  return fields;
}

// RangePoint's stored fields (fraction and out_of_range are derived: written, not read).
template <>
const std::vector<Field<RangePoint>>& FieldsOf<RangePoint>() {
  using S = RangePoint;
  static const std::vector<Field<S>> fields = {
      {"name", &S::name},
      {"precision", &S::precision},
      {"largest_finite", &S::largest_finite},
      {"max_abs", &S::max_abs},
      {"non_finite", &S::non_finite},
      {"saturating", &S::saturating},
      {"first_out_of_range_step", &S::first_out_of_range_step},
  };
  return fields;
}

// RangeWatch without its points (an array of objects).
template <>
const std::vector<Field<RangeWatch>>& FieldsOf<RangeWatch>() {
  using S = RangeWatch;
  static const std::vector<Field<S>> fields = {
      {"policy", &S::policy},
      {"saturation_fraction", &S::saturation_fraction},
      {"first_out_of_range", &S::first_out_of_range},
      {"first_non_finite", &S::first_non_finite},
      {"first_saturating", &S::first_saturating},
      {"largest_fraction_point", &S::largest_fraction_point},
      {"largest_fraction", &S::largest_fraction},
  };
  return fields;
}

template <>
const std::vector<Field<Thresholds>>& FieldsOf<Thresholds>() {
  using S = Thresholds;
  static const std::vector<Field<S>> fields = {
      {"max_kl", &S::max_kl},
      {"mean_kl", &S::mean_kl},
      {"p99_kl", &S::p99_kl},
      {"max_abs_logit_diff", &S::max_abs_logit_diff},
      {"min_top1_agreement", &S::min_top1_agreement},
      {"min_first_divergence_step", &S::min_first_divergence_step},
      {"fail_on_real_divergence", &S::fail_on_real_divergence},
      {"require_oracle_acceptable", &S::require_oracle_acceptable},
  };
  return fields;
}

template <>
const std::vector<Field<Failure>>& FieldsOf<Failure>() {
  using S = Failure;
  static const std::vector<Field<S>> fields = {
      {"run", &S::run},
      {"gate", &S::gate},
      {"value", &S::value},
      {"threshold", &S::threshold},
      {"message", &S::message},
  };
  return fields;
}

template <>
const std::vector<Field<Settings>>& FieldsOf<Settings>() {
  using S = Settings;
  static const std::vector<Field<S>> fields = {
      {"device", &S::device},
      {"mode", &S::mode},
      {"teacher", &S::teacher},
      {"max_new_tokens", &S::max_new_tokens},
      {"seed", &S::seed},
      {"chat", &S::chat},
      {"top_k", &S::top_k},
      {"near_tie_ulps", &S::near_tie_ulps},
      {"oracle", &S::oracle},
      {"oracle_device", &S::oracle_device, true},
      {"range_watch", &S::range_watch, true},
      {"saturation_fraction", &S::saturation_fraction, true},
      {"cuda_graphs", &S::cuda_graphs, true},
      {"deterministic_algorithms", &S::deterministic_algorithms},
      {"num_threads", &S::num_threads},
  };
  return fields;
}

// ModelInfo without config (free JSON, kept as it is).
template <>
const std::vector<Field<ModelInfo>>& FieldsOf<ModelInfo>() {
  using S = ModelInfo;
  static const std::vector<Field<S>> fields = {
      {"path", &S::path},
      {"architecture", &S::architecture},
      {"convert_from", &S::convert_from},
      {"variants", &S::variants},
  };
  return fields;
}

// PairSummary without its pair (a nested object).
template <>
const std::vector<Field<PairSummary>>& FieldsOf<PairSummary>() {
  using S = PairSummary;
  static const std::vector<Field<S>> fields = {
      {"id", &S::id},
      {"runs", &S::runs},
      {"mean_kl", &S::mean_kl},
      {"max_kl", &S::max_kl},
      {"top1_agreement", &S::top1_agreement},
      {"identical_fraction", &S::identical_fraction},
      {"pass", &S::pass},
  };
  return fields;
}

// Run's scalar fields and token lists (pair, first_divergence, verdict, metrics, oracle,
// thresholds, unavailable_metrics and range_watch are objects: written and read beside the table).
template <>
const std::vector<Field<Run>>& FieldsOf<Run>() {
  using S = Run;
  static const std::vector<Field<S>> fields = {
      {"id", &S::id},
      {"prompt_index", &S::prompt_index},
      {"prompt", &S::prompt},
      {"chat", &S::chat},
      {"prompt_tokens", &S::prompt_tokens},
      {"tokens_a", &S::tokens_a},
      {"tokens_b", &S::tokens_b},
      {"text_a", &S::text_a},
      {"text_b", &S::text_b},
      {"elapsed_s", &S::elapsed_s},
      {"pass", &S::pass},
  };
  return fields;
}

template <typename S>
json Write(const S& s) {
  return WriteFields(s, FieldsOf<S>());
}
template <typename S>
S Read(const Reader& r) {
  S s;
  ReadFields(r, s, FieldsOf<S>());
  return s;
}

// ---------------------------------------------------------------------------------------------
// Readers of the structs with nested parts.

SideSpec SideFrom(const Reader& r) { return Read<SideSpec>(r); }
Pair PairFrom(const Reader& r) { return {SideFrom(r.Child("a")), SideFrom(r.Child("b"))}; }

VerdictEvidence EvidenceFrom(const Reader& r) { return Read<VerdictEvidence>(r); }

FirstDivergence DivergenceFrom(const Reader& r) {
  FirstDivergence d = Read<FirstDivergence>(r);
  d.kind = r.String("kind");
  std::optional<DivergenceKind> kind = ParseDivergenceKind(d.kind);
  if (!kind) {
    r.Fail("kind", "\"rounding\", \"real\", \"precision_failure\" or \"undetermined\"",
           r.At("kind"));
  }
  d.kind = DivergenceKindName(*kind);  // schema 1's "near_tie" is "rounding"
  if (r.Has("evidence")) {
    d.evidence = EvidenceFrom(r.Child("evidence"));
  } else {  // schema 1: the ULP rule decided
    d.evidence.source = "ulp";
    d.evidence.reason = fmt::format("flip gap {:.3g} against a tolerance of {:.3g} (schema 1 file)",
                                    d.flip_gap, d.tolerance);
  }
  return d;
}

RunMetrics MetricsFrom(const Reader& r) {
  RunMetrics m = Read<RunMetrics>(r);
  if (r.Has("after_split")) m.after_split = Read<AfterSplitMetrics>(r.Child("after_split"));
  return m;
}

RangeWatch RangeWatchFrom(const Reader& r) {
  RangeWatch w = Read<RangeWatch>(r);
  for (const auto& [element, path] : r.Array("points")) {
    w.points.push_back(Read<RangePoint>(Reader(*element, path, r.source())));
  }
  return w;
}

Run RunFrom(const Reader& r) {
  Run run = Read<Run>(r);
  run.pair = PairFrom(r.Child("pair"));
  if (auto d = r.OptionalChild("first_divergence")) run.first_divergence = DivergenceFrom(*d);
  if (r.Has("verdict")) {
    if (auto v = r.OptionalChild("verdict")) {
      std::optional<DivergenceKind> kind = ParseDivergenceKind(v->String("kind"));
      if (!kind) v->Fail("kind", "a verdict kind", v->At("kind"));
      run.verdict_kind = DivergenceKindName(*kind);
      run.verdict_evidence = EvidenceFrom(v->Child("evidence"));
    }
  }
  run.metrics = MetricsFrom(r.Child("metrics"));
  if (auto o = r.OptionalChild("oracle")) run.oracle = Read<OracleResult>(*o);
  run.thresholds = Read<Thresholds>(r.Child("thresholds"));
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

Settings SettingsFrom(const Reader& r) {
  Settings s = Read<Settings>(r);
  if (s.mode != "free" && s.mode != "teacher_forced") {
    r.Fail("mode", "\"free\" or \"teacher_forced\"", r.At("mode"));
  }
  if (s.range_watch != "on" && s.range_watch != "off" && s.range_watch != "auto") {
    r.Fail("range_watch", "\"on\", \"off\" or \"auto\"", r.At("range_watch"));
  }
  if (s.cuda_graphs != "auto" && s.cuda_graphs != "off") {
    r.Fail("cuda_graphs", "\"auto\" or \"off\"", r.At("cuda_graphs"));
  }
  // Free JSON (the backend's own description), beside the table; null in older files.
  if (r.Has("attention_backend")) s.attention_backend = r.At("attention_backend");
  return s;
}

ModelInfo ModelFrom(const Reader& r) {
  ModelInfo m = Read<ModelInfo>(r);
  m.config = r.At("config");
  return m;
}

PairSummary PairSummaryFrom(const Reader& r) {
  PairSummary p = Read<PairSummary>(r);
  p.pair = PairFrom(r.Child("pair"));
  return p;
}

json UnavailableJson(const std::vector<UnavailableMetric>& items) {
  json out = json::array();
  for (const UnavailableMetric& u : items) out.push_back({{"metric", u.metric}, {"reason", u.reason}});
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writing

json ToJson(const SideSpec& s) {
  json side = Write(s);
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
json ToJson(const VerdictEvidence& e) { return Write(e); }

json ToJson(const FirstDivergence& d) {
  json out = Write(d);
  out["kind"] = d.kind;
  out["evidence"] = ToJson(d.evidence);
  return out;
}

json ToJson(const RunMetrics& m) {
  json out = Write(m);
  out["after_split"] = Write(m.after_split);
  return out;
}

json ToJson(const OracleResult& o) { return Write(o); }

json ToJson(const RangeWatch& w) {
  json points = json::array();
  for (const RangePoint& p : w.points) {
    json point = Write(p);
    point["fraction"] = Number(p.fraction());
    point["out_of_range"] = p.out_of_range();
    points.push_back(point);
  }
  json out = Write(w);
  out["points"] = points;
  return out;
}

json ToJson(const Run& r) {
  json out = Write(r);
  out["pair"] = ToJson(r.pair);
  out["first_divergence"] = r.first_divergence ? ToJson(*r.first_divergence) : json(nullptr);
  out["verdict"] = r.verdict_kind ? json{{"kind", *r.verdict_kind},
                                         {"evidence", ToJson(r.verdict_evidence)}}
                                  : json(nullptr);
  out["metrics"] = ToJson(r.metrics);
  out["oracle"] = r.oracle ? ToJson(*r.oracle) : json(nullptr);
  out["thresholds"] = ToJson(r.thresholds);
  out["unavailable_metrics"] = UnavailableJson(r.unavailable_metrics);
  out["range_watch"] = r.range_a || r.range_b
                           ? json{{"a", r.range_a ? ToJson(*r.range_a) : json(nullptr)},
                                  {"b", r.range_b ? ToJson(*r.range_b) : json(nullptr)}}
                           : json(nullptr);
  out["engine"] = r.engine_a.empty() && r.engine_b.empty()
                      ? json(nullptr)
                      : json{{"a", r.engine_a}, {"b", r.engine_b}};
  out["attention"] = r.attention_a.is_null() && r.attention_b.is_null()
                         ? json(nullptr)
                         : json{{"a", r.attention_a}, {"b", r.attention_b}};
  return out;
}

json ToJson(const Failure& f) { return Write(f); }
json ToJson(const Settings& s) {
  json out = Write(s);
  out["attention_backend"] = s.attention_backend;
  return out;
}

json ToJson(const ModelInfo& m) {
  json out = Write(m);
  out["config"] = m.config;
  return out;
}

json ToJson(const PairSummary& p) {
  json out = Write(p);
  out["pair"] = ToJson(p.pair);
  return out;
}

nlohmann::json ToJson(const StepRecord& s) { return Write(s); }

StepRecord StepRecordFromJson(const nlohmann::json& json, const std::string& source) {
  return Read<StepRecord>(Reader(json, "", source));
}

bool AnyGate(const Thresholds& t) {
  return t.max_kl || t.mean_kl || t.p99_kl || t.max_abs_logit_diff || t.min_top1_agreement ||
         t.min_first_divergence_step || t.fail_on_real_divergence || t.require_oracle_acceptable;
}

nlohmann::json ToJson(const Thresholds& t) { return Write(t); }

RangeWatch RangeWatchFromJson(const nlohmann::json& json, const std::string& source) {
  return RangeWatchFrom(Reader(json, "", source));
}

Thresholds ThresholdsFromJson(const nlohmann::json& json, const std::string& source) {
  return Read<Thresholds>(Reader(json, "thresholds", source));
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
  s.settings = SettingsFrom(r.Child("settings"));
  Reader models = r.Child("models");
  for (const auto& item : models.object().items()) {
    s.models[item.key()] = ModelFrom(models.Child(item.key()));
  }
  s.thresholds = Read<Thresholds>(r.Child("thresholds"));
  Reader verdict = r.Child("verdict");
  s.verdict.pass = verdict.Bool("pass");
  if (verdict.Has("gated")) s.verdict.gated = verdict.Bool("gated");
  for (const auto& [element, path] : verdict.Array("failures")) {
    s.verdict.failures.push_back(Read<Failure>(Reader(*element, path, source)));
  }
  for (const auto& [element, path] : r.Array("runs")) {
    s.runs.push_back(RunFrom(Reader(*element, path, source)));
  }
  for (const auto& [element, path] : r.Array("pairs")) {
    s.pairs.push_back(PairSummaryFrom(Reader(*element, path, source)));
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
