#include "harness/report/drift.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "harness/compare/verdict.h"
#include "harness/core/error.h"
#include "harness/forward/precision_policy.h"
#include "harness/io/checkpoint.h"
#include "harness/report/run_view.h"
#include "harness/report/text_util.h"

namespace parity::report {
namespace {

const compare::Run* FindRun(const compare::Summary& summary, const std::string& id) {
  for (const compare::Run& run : summary.runs) {
    if (run.id == id) return &run;
  }
  return nullptr;
}

const compare::PairSummary* FindPair(const compare::Summary& summary, const std::string& id) {
  for (const compare::PairSummary& pair : summary.pairs) {
    if (pair.id == id) return &pair;
  }
  return nullptr;
}

std::string PairIdOfRun(const compare::Summary& summary, const compare::Run& run) {
  for (const compare::PairSummary& pair : summary.pairs) {
    for (const std::string& id : pair.runs) {
      if (id == run.id) return pair.id;
    }
  }
  return run.pair.a.model + "@" + run.pair.a.precision + "/" + run.pair.b.model + "@" +
         run.pair.b.precision;
}

// The coarser precision of a run's pair (fewer significand bits), as its name; a side with a
// precision policy counts as its least precise module.
std::string CoarserPrecision(const compare::Run& run) {
  auto coarsest = [](const std::string& p) {
    const auto policy = forward::TryParsePrecisionPolicy(p);
    return forward::PrecisionName(policy ? compare::BudgetPrecision(*policy)
                                          : forward::Precision::kFP32);
  };
  auto bits = [](const std::string& p) {
    return p == "bf16" ? 8 : p == "fp16" ? 11 : p == "fp32" ? 24 : p == "fp64" ? 53 : 24;
  };
  const std::string a = coarsest(run.pair.a.precision), b = coarsest(run.pair.b.precision);
  return bits(a) <= bits(b) ? a : b;
}

void CompareKl(const char* metric, double base, double now, double floor, const DriftThresholds& t,
               const std::string& pair, const std::string& run, std::vector<DriftItem>* items) {
  if (std::isnan(base) && std::isnan(now)) return;
  double limit = t.kl_factor * std::max(std::isnan(base) ? 0.0 : base, floor);
  // A KL that became non-finite (null in the file) is always drift.
  bool trips = std::isnan(now) ? !std::isnan(base) : now > limit;
  if (!trips) return;
  items->push_back({metric, pair, run, base, now, limit, true,
                    fmt::format("{} {}: {} -> {} (limit {} = {} x max(baseline, floor {}))", run,
                                metric, FormatNumber(base), FormatNumber(now),
                                FormatNumber(limit), FormatNumber(t.kl_factor),
                                FormatNumber(floor))});
}

void CompareRun(const compare::Run& base, const compare::Run& now, const std::string& pair,
                const DriftThresholds& t, bool teacher_forced, std::vector<DriftItem>* items) {
  // First divergence: a baseline run that never diverged counts as diverging at its end.
  if (now.first_divergence) {
    int64_t now_step = now.first_divergence->step;
    int64_t base_step = base.first_divergence ? base.first_divergence->step : base.metrics.steps;
    int64_t limit = base_step - t.first_divergence_earlier_by;
    const std::string& kind = now.first_divergence->kind;
    if (now_step < limit) {
      std::string base_text = base.first_divergence
                                  ? fmt::format("step {}", base_step)
                                  : fmt::format("none in {} steps", base.metrics.steps);
      // A rounding flip moves with threads and kernels: reported, tripping only when asked.
      const bool trips = kind != "rounding" || t.fail_on_rounding_flip_move;
      items->push_back({"first_divergence_step", pair, now.id, static_cast<double>(base_step),
                        static_cast<double>(now_step), static_cast<double>(limit), trips,
                        fmt::format("{}{} first_divergence_step: {} -> step {} ({}; earlier by "
                                    "more than {} steps{})",
                                    trips ? "" : "note: ", now.id, base_text, now_step, kind,
                                    t.first_divergence_earlier_by,
                                    trips ? "" : "; a rounding flip moving is not drift unless "
                                                 "fail_on_rounding_flip_move")});
    }
    const bool bad_now = kind == "real" || kind == "precision_failure";
    const bool bad_before = base.first_divergence && (base.first_divergence->kind == "real" ||
                                                      base.first_divergence->kind ==
                                                          "precision_failure");
    if (bad_now && !bad_before) {
      items->push_back({"verdict", pair, now.id, std::nullopt, std::nullopt, std::nullopt, true,
                        fmt::format("{} verdict: {} -> {} at step {}: {}", now.id,
                                    base.first_divergence ? base.first_divergence->kind
                                                          : std::string("no divergence"),
                                    kind, now_step, now.first_divergence->evidence.reason)});
    }
  }
  const double floor = t.KlFloor(CoarserPrecision(now));
  CompareKl("p99_kl", base.metrics.p99_kl, now.metrics.p99_kl, floor, t, pair, now.id, items);
  CompareKl("max_kl", base.metrics.max_kl, now.metrics.max_kl, floor, t, pair, now.id, items);
  double base_top1 = base.metrics.top1_agreement, now_top1 = now.metrics.top1_agreement;
  double top1_limit = base_top1 - t.top1_drop;
  const bool gate_top1 = teacher_forced || std::isnan(now_top1);
  if (gate_top1 && ((std::isnan(now_top1) && !std::isnan(base_top1)) || now_top1 < top1_limit)) {
    items->push_back({"top1_agreement", pair, now.id, base_top1, now_top1, top1_limit, true,
                      fmt::format("{} top1_agreement: {} -> {} (fell by more than {})", now.id,
                                  FormatPercent(base_top1), FormatPercent(now_top1),
                                  FormatPercent(t.top1_drop))});
  }
}

// Settings whose change makes the comparison one of unlike runs (informational).
void CompareSettings(const compare::Summary& base, const compare::Summary& now,
                     std::vector<DriftItem>* items) {
  nlohmann::json a = SettingsJson(base.settings), b = SettingsJson(now.settings);
  for (const auto& item : a.items()) {
    if (item.key() == "num_threads") continue;  // machine-dependent, results do not depend on it
    if (b.contains(item.key()) && b[item.key()] != item.value()) {
      items->push_back({"settings", "", "", std::nullopt, std::nullopt, std::nullopt, false,
                        fmt::format("note: settings.{} changed: {} -> {}", item.key(),
                                    item.value().dump(), b[item.key()].dump())});
    }
  }
  if (base.parity_version != now.parity_version || base.libtorch_version != now.libtorch_version) {
    items->push_back({"versions", "", "", std::nullopt, std::nullopt, std::nullopt, false,
                      fmt::format("note: versions changed: Parity {} / libtorch {} -> Parity {} / "
                                  "libtorch {}",
                                  base.parity_version, base.libtorch_version, now.parity_version,
                                  now.libtorch_version)});
  }
}

}  // namespace

DriftThresholds DriftThresholdsFromJson(const nlohmann::json& json, const std::string& where) {
  if (!json.is_object()) {
    throw InputError(fmt::format("{}: expected an object, got {}", where, json.dump()));
  }
  DriftThresholds t;
  std::vector<std::string> problems;
  for (const auto& item : json.items()) {
    const std::string& key = item.key();
    const nlohmann::json& value = item.value();
    auto number = [&](double* out, bool positive) {
      if (!value.is_number() || (positive && !(value.get<double>() > 0)) ||
          value.get<double>() < 0) {
        problems.push_back(fmt::format("{}.{}: expected a {} number, got {}", where, key,
                                       positive ? "positive" : "non-negative", value.dump()));
      } else {
        *out = value.get<double>();
      }
    };
    auto boolean = [&](bool* out) {
      if (!value.is_boolean()) {
        problems.push_back(fmt::format("{}.{}: expected true or false, got {}", where, key,
                                       value.dump()));
      } else {
        *out = value.get<bool>();
      }
    };
    if (key == "first_divergence_earlier_by") {
      if (!value.is_number_integer() || value.get<int64_t>() < 0) {
        problems.push_back(fmt::format("{}.{}: expected a non-negative integer, got {}", where,
                                       key, value.dump()));
      } else {
        t.first_divergence_earlier_by = value.get<int64_t>();
      }
    } else if (key == "kl_factor") {
      number(&t.kl_factor, true);
      if (t.kl_factor < 1) {
        problems.push_back(fmt::format("{}.kl_factor: expected >= 1, got {}", where, value.dump()));
      }
    } else if (key == "kl_floor") {
      double floor = 0;
      number(&floor, false);
      t.kl_floor_fp64 = t.kl_floor_fp32 = t.kl_floor_fp16 = t.kl_floor_bf16 = floor;
    } else if (key == "kl_floors") {
      if (!value.is_object()) {
        problems.push_back(fmt::format("{}.kl_floors: expected an object of precision -> floor, "
                                       "got {}", where, value.dump()));
      } else {
        for (const auto& floor : value.items()) {
          double* out = floor.key() == "fp64"   ? &t.kl_floor_fp64
                        : floor.key() == "fp32" ? &t.kl_floor_fp32
                        : floor.key() == "fp16" ? &t.kl_floor_fp16
                        : floor.key() == "bf16" ? &t.kl_floor_bf16
                                                : nullptr;
          if (out == nullptr || !floor.value().is_number() || floor.value().get<double>() < 0) {
            problems.push_back(fmt::format("{}.kl_floors.{}: expected fp64, fp32, fp16 or bf16 "
                                           "with a non-negative number, got {}",
                                           where, floor.key(), floor.value().dump()));
          } else {
            *out = floor.value().get<double>();
          }
        }
      }
    } else if (key == "fail_on_rounding_flip_move") {
      boolean(&t.fail_on_rounding_flip_move);
    } else if (key == "top1_drop") {
      number(&t.top1_drop, false);
    } else if (key == "fail_on_new_failing_pair") {
      boolean(&t.fail_on_new_failing_pair);
    } else if (key == "fail_on_missing") {
      boolean(&t.fail_on_missing);
    } else {
      problems.push_back(fmt::format(
          "{}.{}: unknown field (expected first_divergence_earlier_by, kl_factor, kl_floor, "
          "kl_floors, top1_drop, fail_on_rounding_flip_move, fail_on_new_failing_pair, "
          "fail_on_missing)",
          where, key));
    }
  }
  if (!problems.empty()) {
    std::string message;
    for (const std::string& p : problems) message += (message.empty() ? "" : "\n") + p;
    throw InputError(message);
  }
  return t;
}

nlohmann::json ToJson(const DriftThresholds& t) {
  return {{"first_divergence_earlier_by", t.first_divergence_earlier_by},
          {"kl_factor", t.kl_factor},
          {"kl_floors", {{"fp64", t.kl_floor_fp64}, {"fp32", t.kl_floor_fp32},
                         {"fp16", t.kl_floor_fp16}, {"bf16", t.kl_floor_bf16}}},
          {"fail_on_rounding_flip_move", t.fail_on_rounding_flip_move},
          {"top1_drop", t.top1_drop},
          {"fail_on_new_failing_pair", t.fail_on_new_failing_pair},
          {"fail_on_missing", t.fail_on_missing}};
}

DriftThresholds DriftThresholdsFromCaseFile(const std::string& case_path) {
  nlohmann::json json = io::ReadJsonFile(case_path);
  if (!json.is_object()) return {};
  auto thresholds = json.find("thresholds");
  if (thresholds == json.end() || !thresholds->is_object()) return {};
  auto drift = thresholds->find("drift");
  if (drift == thresholds->end() || drift->is_null()) return {};
  return DriftThresholdsFromJson(*drift, case_path + ": thresholds.drift");
}

double DriftThresholds::KlFloor(const std::string& precision) const {
  if (precision == "fp64") return kl_floor_fp64;
  if (precision == "fp16") return kl_floor_fp16;
  if (precision == "bf16") return kl_floor_bf16;
  return kl_floor_fp32;
}

bool DriftReport::Drifted() const {
  for (const DriftItem& item : items) {
    if (item.trips) return true;
  }
  return false;
}

std::vector<std::string> DriftReport::MovedMetrics(const std::string& pair) const {
  std::vector<std::string> out;
  for (const DriftItem& item : items) {
    if (!item.trips || item.pair != pair) continue;
    if (std::find(out.begin(), out.end(), item.metric) == out.end()) out.push_back(item.metric);
  }
  return out;
}

DriftReport CompareWithBaseline(const compare::Summary& baseline, const compare::Summary& current,
                                const DriftThresholds& t) {
  DriftReport report;
  report.case_name = current.case_ref.name;
  report.thresholds = t;
  std::vector<DriftItem>& items = report.items;

  for (const compare::Run& base_run : baseline.runs) {
    std::string pair = PairIdOfRun(baseline, base_run);
    const compare::Run* now_run = FindRun(current, base_run.id);
    if (now_run == nullptr) {
      items.push_back({"missing_run", pair, base_run.id, std::nullopt, std::nullopt, std::nullopt,
                       t.fail_on_missing,
                       fmt::format("{} missing_run: in the baseline, absent from this run",
                                   base_run.id)});
      continue;
    }
    ++report.runs_compared;
    CompareRun(base_run, *now_run, pair, t, current.settings.mode == "teacher_forced", &items);
  }
  for (const compare::Run& run : current.runs) {
    if (FindRun(baseline, run.id) == nullptr) {
      items.push_back({"new_run", PairIdOfRun(current, run), run.id, std::nullopt, std::nullopt,
                       std::nullopt, false,
                       fmt::format("note: {} has no baseline (new run)", run.id)});
    }
  }
  for (const compare::PairSummary& base_pair : baseline.pairs) {
    if (FindPair(current, base_pair.id) == nullptr) {
      items.push_back({"missing_pair", base_pair.id, "", std::nullopt, std::nullopt, std::nullopt,
                       t.fail_on_missing,
                       fmt::format("{} missing_pair: in the baseline, absent from this run",
                                   base_pair.id)});
    }
  }
  for (const compare::PairSummary& pair : current.pairs) {
    const compare::PairSummary* base_pair = FindPair(baseline, pair.id);
    if (!pair.pass && (base_pair == nullptr || base_pair->pass)) {
      items.push_back({"new_failing_pair", pair.id, "", std::nullopt, std::nullopt, std::nullopt,
                       t.fail_on_new_failing_pair,
                       fmt::format("{} new_failing_pair: fails its gates now, {} in the baseline",
                                   pair.id, base_pair == nullptr ? "absent" : "passed")});
    } else if (base_pair == nullptr) {
      items.push_back({"new_pair", pair.id, "", std::nullopt, std::nullopt, std::nullopt, false,
                       fmt::format("note: pair {} has no baseline (new pair)", pair.id)});
    }
  }
  CompareSettings(baseline, current, &items);
  return report;
}

std::string FormatDriftReport(const DriftReport& report) {
  std::string out;
  int tripped = 0;
  for (const DriftItem& item : report.items) tripped += item.trips ? 1 : 0;
  out += fmt::format("drift: case {}: {} runs compared with the baseline, {}\n", report.case_name,
                     report.runs_compared,
                     tripped == 0 ? std::string("nothing moved beyond its threshold")
                                  : fmt::format("{} gate(s) tripped", tripped));
  for (const DriftItem& item : report.items) {
    out += (item.trips ? "  DRIFT " : "  ") + item.message + "\n";
  }
  return out;
}

nlohmann::json ToJson(const DriftReport& report) {
  auto number = [](const std::optional<double>& v) {
    return v && std::isfinite(*v) ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  nlohmann::json items = nlohmann::json::array();
  for (const DriftItem& item : report.items) {
    items.push_back({{"metric", item.metric},
                     {"pair", item.pair},
                     {"run", item.run},
                     {"baseline", number(item.baseline)},
                     {"current", number(item.current)},
                     {"threshold", number(item.threshold)},
                     {"trips", item.trips},
                     {"message", item.message}});
  }
  return {{"case", report.case_name},
          {"drift", report.Drifted()},
          {"runs_compared", report.runs_compared},
          {"thresholds", ToJson(report.thresholds)},
          {"items", items}};
}

}  // namespace parity::report
