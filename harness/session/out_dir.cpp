#include "harness/session/out_dir.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "harness/compare/run_result.h"
#include "harness/core/atomic_file.h"
#include "harness/core/error.h"
#include "harness/core/remove_tree.h"

namespace parity::session {
namespace fs = std::filesystem;
namespace {

nlohmann::json ReadJsonOrNull(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception&) {
    return nullptr;
  }
}

// The case a previous run in `out` was of: from run.json, else from summary.json; "" when unknown.
std::string PreviousCase(const fs::path& out) {
  for (const char* file : {"run.json", "summary.json"}) {
    nlohmann::json json = ReadJsonOrNull(out / file);
    if (!json.is_object()) continue;
    if (auto it = json.find("case"); it != json.end()) {
      if (it->is_string()) return *it;
      if (it->is_object() && it->contains("name") && (*it)["name"].is_string()) {
        return (*it)["name"];
      }
    }
  }
  return "";
}

bool IsOwned(const std::string& name) {
  const auto& owned = RunDirectoryFiles();
  if (std::find(owned.begin(), owned.end(), name) != owned.end()) return true;
  // Temporary files of atomic writes (atomic_file.h) and of the clearing below.
  return name.rfind(".", 0) == 0 && (name.find(".tmp.") != std::string::npos ||
                                     name.rfind(".previous-", 0) == 0);
}

std::string NewRunId() {
  std::random_device random;
  std::string time = compare::NowUtc();
  time.erase(std::remove_if(time.begin(), time.end(), [](char c) { return c == '-' || c == ':'; }),
             time.end());
  return fmt::format("{}-{}-{:06x}", time, ::getpid(), random() & 0xffffff);
}

void WriteRunJson(const std::string& out, const std::string& run_id, const std::string& case_name,
                  const std::string& command, const std::string& state,
                  const std::string& started_utc) {
  nlohmann::ordered_json json = {{"run_id", run_id},          {"case", case_name},
                                 {"command", command},        {"state", state},
                                 {"started_utc", started_utc}};
  json["finished_utc"] = state == "running" ? nlohmann::ordered_json(nullptr)
                                            : nlohmann::ordered_json(compare::NowUtc());
  WriteFileAtomic((fs::path(out) / "run.json").string(), json.dump(2) + "\n");
}

}  // namespace

void PrepareOutputDir(const std::string& path, const std::string& what) {
  if (path.empty()) throw InputError(fmt::format("{}: an empty path", what));
  std::error_code ec;
  if (fs::exists(path, ec) && !fs::is_directory(path, ec)) {
    throw InputError(fmt::format("{} '{}': exists and is not a directory", what, path));
  }
  // create_directories fails when a parent is a file or not writable.
  fs::create_directories(path, ec);
  if (ec) throw InputError(fmt::format("{} '{}': cannot create the directory: {}", what, path, ec.message()));
  if (::access(path.c_str(), W_OK | X_OK) != 0) {
    throw InputError(fmt::format("{} '{}': cannot write into the directory: {}", what, path,
                                 std::strerror(errno)));
  }
}

void PrepareOutputFile(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    throw InputError(fmt::format("{} '{}': is a directory, expected a file path", what, path));
  }
  fs::path parent = fs::path(path).parent_path();
  PrepareOutputDir(parent.empty() ? "." : parent.string(), what);
}

const std::vector<std::string>& RunDirectoryFiles() {
  static const std::vector<std::string> files = {
      "run.json",      "summary.json", "steps.jsonl",  "report.md", "report.html",
      "localize.json", "explain.json", "explain.md",   "shard.json", "weight_diff.json",
      "models",        "traces",       "kld-base"};
  return files;
}

namespace {

// The entries of `out`, split into Parity's own and foreign ones; throws for foreign ones and for a
// previous run of another case (unless `replace`).
std::vector<std::string> CheckedOwnedEntries(const std::string& out, const std::string& case_name,
                                             bool replace) {
  PrepareOutputDir(out, "--out");
  const fs::path dir(out);
  std::vector<std::string> foreign, owned;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    (IsOwned(name) ? owned : foreign).push_back(name);
  }
  std::sort(foreign.begin(), foreign.end());
  if (!foreign.empty()) {
    throw InputError(fmt::format(
        "--out '{}': not empty and not a Parity run directory (it holds {}); give a new or empty "
        "directory", out, fmt::join(foreign.begin(), foreign.begin() + std::min<size_t>(foreign.size(), 5), ", ")));
  }
  if (!owned.empty()) {
    const std::string previous_case = PreviousCase(dir);
    if (!previous_case.empty() && previous_case != case_name && !replace) {
      throw InputError(fmt::format(
          "--out '{}': holds a run of case '{}', not '{}'; give another directory or pass "
          "--replace to replace that run", out, previous_case, case_name));
    }
  }
  return owned;
}

}  // namespace

void CheckRunDirectory(const std::string& out, const std::string& case_name, bool replace) {
  CheckedOwnedEntries(out, case_name, replace);
}

RunClaim ClaimRunDirectory(const std::string& out, const std::string& case_name,
                           const std::string& command, bool replace) {
  std::vector<std::string> owned = CheckedOwnedEntries(out, case_name, replace);
  const fs::path dir(out);
  RunClaim claim;
  claim.out = out;
  claim.run_id = NewRunId();
  nlohmann::json previous = ReadJsonOrNull(dir / "run.json");
  if (previous.is_object() && previous.contains("run_id") && previous["run_id"].is_string()) {
    claim.previous_run_id = previous["run_id"];
  } else if (nlohmann::json summary = ReadJsonOrNull(dir / "summary.json");
             summary.is_object() && summary.contains("run_id") && summary["run_id"].is_string()) {
    claim.previous_run_id = summary["run_id"];
  }
  if (!owned.empty()) {
    // summary.json goes first, by one rename: from here on nothing claims to be a finished run.
    const fs::path trash = dir / fmt::format(".previous-{}", claim.run_id);
    fs::create_directory(trash);
    std::stable_partition(owned.begin(), owned.end(),
                          [](const std::string& name) { return name == "summary.json"; });
    for (const std::string& name : owned) {
      if (name == "run.json") continue;  // rewritten below
      if (name.rfind(".previous-", 0) == 0) {  // left by an earlier, killed claim
        RemoveTree((dir / name).string());
        continue;
      }
      if (::rename((dir / name).c_str(), (trash / name).c_str()) != 0) {
        throw InputError(fmt::format("--out '{}': cannot move the previous run's {} away: {}", out,
                                     name, std::strerror(errno)));
      }
    }
    spdlog::info("{}: replacing the previous run{} (its files are removed)", out,
                 claim.previous_run_id.empty() ? "" : " " + claim.previous_run_id);
    WriteRunJson(out, claim.run_id, case_name, command, "running", compare::NowUtc());
    if (!RemoveTree(trash.string())) {
      throw InputError(fmt::format("--out '{}': cannot remove '{}'", out, trash.string()));
    }
  } else {
    WriteRunJson(out, claim.run_id, case_name, command, "running", compare::NowUtc());
  }
  return claim;
}

void FinishRunDirectory(const RunClaim& claim, const std::string& case_name,
                        const std::string& command, const std::string& state) {
  nlohmann::json current = ReadJsonOrNull(fs::path(claim.out) / "run.json");
  std::string started = current.is_object() ? current.value("started_utc", "") : "";
  WriteRunJson(claim.out, claim.run_id, case_name, command, state, started);
}

std::string RunIdOf(const std::string& out) {
  nlohmann::json json = ReadJsonOrNull(fs::path(out) / "run.json");
  if (json.is_object() && json.contains("run_id") && json["run_id"].is_string()) {
    return json["run_id"];
  }
  return "";
}

}  // namespace parity::session
