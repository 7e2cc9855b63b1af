#include "harness/report/diagnosis_view.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "harness/report/text_util.h"

namespace parity::report {
namespace {

std::string StringOr(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Parses DIR/NAME; nullopt when absent, a problem noted when unreadable.
std::optional<nlohmann::json> ReadJson(const std::string& dir, const char* name,
                                       std::vector<std::string>* problems) {
  const std::string path = (std::filesystem::path(dir) / name).string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::parse_error& e) {
    problems->push_back(fmt::format("{}: not valid JSON: {}", path, e.what()));
    return nlohmann::json();
  }
}

}  // namespace

DiagnosisView ParseDiagnosis(const nlohmann::json* weights, const nlohmann::json* explain,
                             const std::string& source) {
  DiagnosisView view;
  if (weights != nullptr && !weights->is_null()) {
    view.has_weights = true;
    auto compared = weights->find("compared");
    if (!weights->is_object() || compared == weights->end() || !compared->is_array()) {
      view.problems.push_back(source + "/weight_diff.json: compared: expected an array");
    } else {
      for (const nlohmann::json& item : *compared) {
        if (!item.is_object()) continue;
        WeightLine line;
        line.status = StringOr(item, "status");
        if (line.status == "bitwise_equal" || line.status.empty()) continue;
        line.key = StringOr(item, "key");
        if (auto a = item.find("a"); a != item.end() && a->is_object()) line.name_a = StringOr(*a, "name");
        if (auto b = item.find("b"); b != item.end() && b->is_object()) line.name_b = StringOr(*b, "name");
        if (auto e = item.find("explanation"); e != item.end() && e->is_object()) {
          line.sentence = StringOr(*e, "sentence");
          line.explained = e->value("explained", false);
        }
        view.weights.push_back(std::move(line));
      }
      view.weight_summary = StringOr(*weights, "summary");
      const std::string explained = StringOr(*weights, "explained");
      if (!explained.empty()) view.weight_summary += "; " + explained;
    }
  }
  if (explain != nullptr && !explain->is_null()) {
    view.has_explain = true;
    auto summary = explain->is_object() ? explain->find("summary") : explain->end();
    if (!explain->is_object() || summary == explain->end() || !summary->is_array()) {
      view.problems.push_back(source + "/explain.json: summary: expected an array");
    } else {
      for (const nlohmann::json& line : *summary) {
        if (line.is_string()) view.explain_summary.push_back(line.get<std::string>());
      }
    }
  }
  return view;
}

std::optional<DiagnosisView> ReadDiagnosis(const std::string& dir) {
  std::vector<std::string> problems;
  std::optional<nlohmann::json> weights = ReadJson(dir, "weight_diff.json", &problems);
  std::optional<nlohmann::json> explain = ReadJson(dir, "explain.json", &problems);
  if (!weights && !explain && problems.empty()) return std::nullopt;
  DiagnosisView view = ParseDiagnosis(weights ? &*weights : nullptr, explain ? &*explain : nullptr, dir);
  view.problems.insert(view.problems.begin(), problems.begin(), problems.end());
  return view;
}

std::string DiagnosisHtml(const DiagnosisView& view) {
  std::string out;
  for (const std::string& problem : view.problems) {
    out += "<p class=\"note\">" + HtmlEscape(problem) + "</p>\n";
  }
  if (view.has_weights) {
    out += "<section id=\"weights\"><h2>Weight differences and their explanation</h2>\n";
    out += "<p>" + HtmlEscape(view.weight_summary) + "</p>\n";
    if (!view.weights.empty()) {
      out += "<table><tr><th>tensor</th><th>A</th><th>B</th><th>status</th><th>explanation</th>"
             "</tr>\n";
      for (const WeightLine& w : view.weights) {
        out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td></tr>\n",
                           HtmlEscape(w.key), HtmlEscape(w.name_a), HtmlEscape(w.name_b),
                           HtmlEscape(w.status), w.explained ? "" : " class=\"diff\"",
                           HtmlEscape(w.sentence.empty() ? "\u2014" : w.sentence));
      }
      out += "</table>\n";
    }
    out += "</section>\n";
  }
  if (view.has_explain) {
    out += "<section id=\"explain\"><h2>Implementation variants (explain)</h2>\n<ul>\n";
    for (const std::string& line : view.explain_summary) out += "<li>" + HtmlEscape(line) + "</li>\n";
    out += "</ul></section>\n";
  }
  return out;
}

std::string DiagnosisMarkdown(const DiagnosisView& view) {
  std::string out;
  for (const std::string& problem : view.problems) out += "- note: " + MarkdownEscape(problem) + "\n";
  if (view.has_weights) {
    out += "## Weight differences\n\n" + MarkdownEscape(view.weight_summary) + "\n\n";
    if (!view.weights.empty()) {
      out += "| tensor | B | explanation |\n|---|---|---|\n";
      for (const WeightLine& w : view.weights) {
        out += fmt::format("| {} | {} | {} |\n", MarkdownEscape(w.key), MarkdownCode(w.name_b),
                           MarkdownEscape(w.sentence.empty() ? w.status : w.sentence));
      }
      out += "\n";
    }
  }
  if (view.has_explain) {
    out += "## Implementation variants (explain)\n\n";
    for (const std::string& line : view.explain_summary) out += "- " + MarkdownEscape(line) + "\n";
    out += "\n";
  }
  return out;
}

}  // namespace parity::report
