#include "harness/report/localize_view.h"

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>

namespace parity::report {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A number field, or NaN (with a problem noted) when present but not a number.
double NumberOr(const nlohmann::json& object, const char* key, const std::string& where,
                std::vector<std::string>* problems) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return kNaN;
  if (it->is_number()) return it->get<double>();
  problems->push_back(fmt::format("{}.{}: expected a number, got {}", where, key, it->dump()));
  return kNaN;
}

}  // namespace

LocalizeView ParseLocalize(const nlohmann::json& json, const std::string& source) {
  LocalizeView view;
  if (!json.is_object()) {
    view.problems.push_back(fmt::format("{}: expected a JSON object", source));
    return view;
  }
  auto points = json.find("points");
  if (points == json.end() || !points->is_array()) {
    view.problems.push_back(fmt::format("{}: points: expected an array", source));
  } else {
    for (size_t i = 0; i < points->size(); ++i) {
      const nlohmann::json& item = (*points)[i];
      std::string where = fmt::format("{}: points[{}]", source, i);
      if (!item.is_object()) {
        view.problems.push_back(where + ": expected an object");
        continue;
      }
      LocalizePoint point;
      if (auto name = item.find("name"); name != item.end() && name->is_string()) {
        point.name = name->get<std::string>();
      }
      if (auto layer = item.find("layer"); layer != item.end() && layer->is_number_integer()) {
        point.layer = layer->get<int64_t>();
      }
      if (auto sub = item.find("sub_block"); sub != item.end() && sub->is_string()) {
        point.sub_block = sub->get<std::string>();
      }
      point.rel_rms_error = NumberOr(item, "rel_rms_error", where, &view.problems);
      point.max_abs_error = NumberOr(item, "max_abs_error", where, &view.problems);
      double cosine = NumberOr(item, "cosine", where, &view.problems);
      if (!std::isnan(cosine)) point.cosine = cosine;
      if (point.name.empty()) {
        point.name = point.layer ? fmt::format("layer {} {}", *point.layer, point.sub_block)
                                 : fmt::format("point {}", i);
      }
      view.points.push_back(std::move(point));
    }
  }
  if (auto first = json.find("first_departure"); first != json.end() && !first->is_null()) {
    view.first_departure = *first;
    if (first->is_object()) {
      const std::string kind = first->value("kind", std::string());
      const std::string name = first->contains("name") && (*first)["name"].is_string()
                                   ? (*first)["name"].get<std::string>()
                                   : std::string();
      if (!kind.empty()) {
        view.headline = kind + " departure";
        if (!name.empty()) view.headline += " at " + name;
        if (first->contains("position") && (*first)["position"].is_number_integer()) {
          view.headline += fmt::format(", position {}", (*first)["position"].get<int64_t>());
          if (first->contains("token_text") && (*first)["token_text"].is_string()) {
            view.headline += fmt::format(" (token \"{}\")", (*first)["token_text"].get<std::string>());
          }
        }
      }
    }
  }
  if (auto part = json.find("fp64_first_part"); part != json.end() && part->is_object()) {
    const nlohmann::json& p = *part;
    if (p.contains("position") && p["position"].is_number_integer() && p.contains("name") &&
        p["name"].is_string()) {
      view.headline += fmt::format("{}the FP64 runs first part at position {}, {}",
                                   view.headline.empty() ? "" : "; ", p["position"].get<int64_t>(),
                                   p["name"].get<std::string>());
    }
  }
  if (auto run = json.find("run_id"); run != json.end() && run->is_string()) view.run_id = *run;
  auto text = [&](const char* key) -> std::string {
    auto it = json.find(key);
    if (it == json.end() || it->is_null()) return "?";
    return it->is_string() ? it->get<std::string>() : it->dump();
  };
  if (json.contains("a") && json.contains("b")) {
    view.covers = fmt::format("{} vs {} at {}, step {} (position {}, prompt of {} tokens)",
                              text("a"), text("b"), text("numerics"), text("step"),
                              text("position"), text("prompt_length"));
  }
  return view;
}

std::optional<LocalizeView> ReadLocalize(const std::string& dir, const std::string& run_id) {
  std::string path = (std::filesystem::path(dir) / "localize.json").string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::parse_error& e) {
    LocalizeView view;
    view.problems.push_back(fmt::format("{}: not valid JSON: {}", path, e.what()));
    return view;
  }
  LocalizeView view = ParseLocalize(json, path);
  if (!run_id.empty() && view.run_id != run_id) {
    view.points.clear();
    view.first_departure.reset();
    view.problems.push_back(fmt::format(
        "{} belongs to {}, not to this run ({}); not shown (rerun `parity localize ... --out {}`)",
        path, view.run_id.empty() ? "no run" : "run " + view.run_id, run_id, dir));
  }
  return view;
}

}  // namespace parity::report
