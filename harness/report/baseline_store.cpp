#include "harness/report/baseline_store.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "harness/core/atomic_file.h"
#include "harness/core/error.h"
#include "harness/io/checkpoint.h"

namespace parity::report {

std::string CaseKey(const std::string& case_name) {
  if (case_name.empty()) throw InputError("a baseline needs a case name; the summary's case.name is empty");
  std::string key;
  for (size_t i = 0; i < case_name.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(case_name[i]);
    bool plain = std::isalnum(c) || c == '-' || c == '_' || (c == '.' && i > 0);
    key += plain ? std::string(1, static_cast<char>(c)) : fmt::format("%{:02X}", c);
  }
  return key;
}

std::string BaselineStore::BaselinePath(const std::string& case_name) const {
  return (std::filesystem::path(root_) / "baselines" / (CaseKey(case_name) + ".json")).string();
}

std::string BaselineStore::HistoryPath() const {
  return (std::filesystem::path(root_) / "history.jsonl").string();
}

std::string BaselineStore::LockPath() const {
  return (std::filesystem::path(root_) / ".history.lock").string();
}

bool BaselineStore::Has(const std::string& case_name) const {
  std::error_code ec;
  return std::filesystem::exists(BaselinePath(case_name), ec);
}

std::optional<Baseline> BaselineStore::Load(const std::string& case_name) const {
  std::string path = BaselinePath(case_name);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  nlohmann::json json = io::ReadJsonFile(path);
  if (!json.is_object() || !json.contains("summary")) {
    throw InputError(fmt::format("{}: expected an object with \"summary\", \"saved_utc\", "
                                 "\"source\"", path));
  }
  Baseline baseline;
  baseline.saved_utc = json.value("saved_utc", "");
  baseline.source = json.value("source", "");
  baseline.summary = compare::SummaryFromJson(json["summary"], path + " (summary)");
  return baseline;
}

std::string BaselineStore::Save(const compare::Summary& summary, const std::string& source) const {
  std::string path = BaselinePath(summary.case_ref.name);
  nlohmann::json json = {{"saved_utc", compare::NowUtc()},
                         {"source", source},
                         {"summary", compare::ToJson(summary)}};
  WriteFileAtomic(path, json.dump(2) + "\n");
  return path;
}

}  // namespace parity::report
