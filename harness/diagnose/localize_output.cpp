// LocalizeResult as JSON (the --json output and OUT/localize.json) and as a terminal table.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/diagnose/localize.h"

namespace parity::diagnose {

namespace {

// A decoder layer index, or null for points outside the layers (embedding: layer -1 internally), as
// reports/README.md documents.
nlohmann::ordered_json LayerJson(int64_t layer) {
  return layer >= 0 ? nlohmann::ordered_json(layer) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json PointJson(const PointError& p) {
  nlohmann::ordered_json json;
  json["name"] = p.name;
  json["layer"] = LayerJson(p.layer);
  json["sub_block"] = p.sub_block;
  json["rel_rms_error"] = p.rel_rms_error;
  json["max_abs_error"] = p.max_abs_error;
  json["cosine"] = p.cosine ? nlohmann::ordered_json(*p.cosine) : nlohmann::ordered_json(nullptr);
  json["a_err_vs_fp64"] = p.a_err_vs_fp64;
  json["b_err_vs_fp64"] = p.b_err_vs_fp64;
  json["fp64_rel_diff"] = p.fp64_rel_diff;
  json["noise_floor"] = p.noise_floor();
  return json;
}

nlohmann::ordered_json DepartureJson(const LocalizeResult& r) {
  nlohmann::ordered_json json;
  const Departure& d = r.first_departure;
  if (d.index >= 0) {
    const PointError& p = r.points[d.index];
    json["layer"] = LayerJson(p.layer);
    json["sub_block"] = p.sub_block;
    json["name"] = p.name;
  } else {
    json["layer"] = nullptr;
    json["sub_block"] = nullptr;
    json["name"] = nullptr;
  }
  json["kind"] = d.kind;
  json["index"] = d.index;
  json["position"] = r.position;
  json["token"] = r.position_token;
  json["token_text"] = r.position_text;
  json["reason"] = d.reason;
  if (d.index >= 0) {
    const PointError& p = r.points[d.index];
    json["rel_rms_error"] = p.rel_rms_error;
    json["fp64_rel_diff"] = p.fp64_rel_diff;
    json["noise_floor"] = p.noise_floor();
  }
  return json;
}

}  // namespace

nlohmann::ordered_json LocalizeToJson(const LocalizeResult& r) {
  nlohmann::ordered_json json;
  json["first_departure"] = DepartureJson(r);
  if (r.fp64_first_difference >= 0) {
    const PointError& p = r.points[r.fp64_first_difference];
    json["fp64_first_difference"] = {{"layer", LayerJson(p.layer)}, {"sub_block", p.sub_block},
                                     {"name", p.name}, {"fp64_rel_diff", p.fp64_rel_diff}};
  } else {
    json["fp64_first_difference"] = nullptr;
  }
  if (r.fp64_first_part.position >= 0) {
    const SequencePoint& f = r.fp64_first_part;
    json["fp64_first_part"] = {{"position", f.position},       {"token", f.token},
                               {"token_text", f.token_text},   {"layer", LayerJson(f.point.layer)},
                               {"sub_block", f.point.sub_block}, {"name", f.point.name},
                               {"fp64_rel_diff", f.point.fp64_rel_diff}};
  } else {
    json["fp64_first_part"] = nullptr;
  }
  json["a"] = r.label_a;
  json["b"] = r.label_b;
  json["numerics"] = r.numerics;
  json["step"] = r.step;
  json["step_source"] = r.step_source;
  json["prompt_length"] = r.prompt_length;
  json["position"] = r.position;
  json["position_source"] = r.position_source;
  json["tokens"] = r.tokens;
  if (r.divergence_token_a) {
    json["divergence"] = {{"token_a", *r.divergence_token_a}, {"token_b", *r.divergence_token_b}};
  } else {
    json["divergence"] = nullptr;
  }
  if (r.verdict_kind) {
    json["verdict"] = {{"kind", *r.verdict_kind},
                       {"evidence", compare::ToJson(r.verdict_evidence)}};
  } else {
    json["verdict"] = nullptr;
  }
  json["range_a"] = r.range_a ? RangeWatchToJson(*r.range_a) : nlohmann::ordered_json(nullptr);
  json["range_b"] = r.range_b ? RangeWatchToJson(*r.range_b) : nlohmann::ordered_json(nullptr);
  json["fp64_resolution"] = kFp64Resolution;
  json["seconds"] = r.seconds;
  json["points"] = nlohmann::ordered_json::array();
  for (const PointError& p : r.points) json["points"].push_back(PointJson(p));
  json["positions"] = nlohmann::ordered_json::array();
  for (const PositionSummary& p : r.positions) {
    nlohmann::ordered_json item;
    item["position"] = p.position;
    item["token"] = p.token;
    item["departure_kind"] = p.departure_kind;
    item["departure_point"] = p.departure_point;
    item["fp64_first_point"] = p.fp64_first_point;
    item["max_fp64_rel_diff"] = p.max_fp64_rel_diff;
    item["max_rel_rms_error"] = p.max_rel_rms_error;
    json["positions"].push_back(item);
  }
  return json;
}

std::string FormatLocalize(const LocalizeResult& r) {
  std::string out;
  const char* source = r.step_source == "first_divergence" ? "first divergence of a free run"
                       : r.step_source == "given"          ? "given"
                                                           : "no divergence: last prompt position";
  out += fmt::format("localize {} vs {} at {}, step {} ({}), {} positions observed\n", r.label_a,
                     r.label_b, r.numerics, r.step, source, r.tokens.size());
  if (r.fp64_first_part.position >= 0) {
    const SequencePoint& f = r.fp64_first_part;
    out += fmt::format("  the FP64 runs first part at position {} (token {} \"{}\"), {}\n",
                       f.position, f.token, f.token_text, f.point.name);
  } else {
    out += "  the FP64 runs agree at every position and point\n";
  }
  out += fmt::format("  curve below: position {} (token {} \"{}\"), {}\n", r.position,
                     r.position_token, r.position_text,
                     r.position_source == "first_real" ? "the first position with a real departure"
                                                       : "the last position (no real departure)");
  if (r.divergence_token_a) {
    out += fmt::format("  A predicts {}, B predicts {}\n", *r.divergence_token_a,
                       *r.divergence_token_b);
  }
  out += fmt::format("{:<22} {:>11} {:>11} {:>12} {:>11} {:>11} {:>11}  {}\n", "point",
                     "A vs B rel", "max abs", "cosine", "A vs A64", "B vs B64", "A64 vs B64",
                     "");
  for (size_t i = 0; i < r.points.size(); ++i) {
    const PointError& p = r.points[i];
    std::string mark;
    if (static_cast<int64_t>(i) == r.first_departure.index) {
      mark = "<- first departure (" + r.first_departure.kind + ")";
    } else if (static_cast<int64_t>(i) == r.fp64_first_difference) {
      mark = "<- FP64 differs (below the floor)";
    }
    out += fmt::format("{:<22} {:>11.3e} {:>11.3e} {:>12} {:>11.3e} {:>11.3e} {:>11.3e}  {}\n",
                       p.name, p.rel_rms_error, p.max_abs_error,
                       p.cosine ? fmt::format("{:.9f}", *p.cosine) : std::string("-"),
                       p.a_err_vs_fp64, p.b_err_vs_fp64, p.fp64_rel_diff, mark);
  }
  if (r.range_a) out += "range: " + DescribeRangeWatch("A", *r.range_a) + "\n";
  if (r.range_b) out += "range: " + DescribeRangeWatch("B", *r.range_b) + "\n";
  if (r.verdict_kind) {
    out += fmt::format("verdict at step {}: {} ({}): {}{}\n", r.step, *r.verdict_kind,
                       r.verdict_evidence.source, r.verdict_evidence.reason,
                       r.verdict_evidence.overflow_point
                           ? " [values leave the range at " + *r.verdict_evidence.overflow_point + "]"
                           : std::string());
  } else {
    out += fmt::format("verdict at step {}: no flip (A and B pick the same token)\n", r.step);
  }
  out += fmt::format("first departure: {} at position {}: {}\n", r.first_departure.kind,
                     r.position, r.first_departure.reason);
  out += fmt::format("(errors are relative RMS at that position; \"A64\" is A run in FP64; "
                     "real = FP64 difference above max({:.0e}, noise floor))\n",
                     kFp64Resolution);
  return out;
}

}  // namespace parity::diagnose
