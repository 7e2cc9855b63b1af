// `parity drift DIR --store STORE`: compare a run with its case's baseline, print what moved, append
// the run to the store's history, and exit 1 when a drift gate trips (0 otherwise; 2 when there is
// no baseline or an input is wrong).
#include <filesystem>
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "harness/cli/command.h"
#include "harness/compare/run_result.h"
#include "harness/core/error.h"
#include "harness/report/baseline_store.h"
#include "harness/report/drift.h"
#include "harness/report/history.h"

namespace parity::cli {
namespace {

struct DriftOptions {
  std::string dir;
  std::string store;
  std::string case_path;  // overrides the summary's case.path for the thresholds
  bool json = false;
  bool no_history = false;
};

// thresholds.drift from --case, else from the case file the run names, else the defaults.
report::DriftThresholds LoadThresholds(const DriftOptions& options, const compare::Summary& summary,
                                       std::string* origin) {
  if (!options.case_path.empty()) {
    *origin = options.case_path;
    return report::DriftThresholdsFromCaseFile(options.case_path);
  }
  if (summary.case_ref.path) {
    std::error_code ec;
    if (std::filesystem::exists(*summary.case_ref.path, ec)) {
      *origin = *summary.case_ref.path;
      return report::DriftThresholdsFromCaseFile(*summary.case_ref.path);
    }
    fmt::print(stderr,
               "parity: warning: case file '{}' named by {}/summary.json not found from here; "
               "using the default drift thresholds (pass --case FILE to use its own)\n",
               *summary.case_ref.path, options.dir);
  }
  *origin = "defaults";
  return report::DriftThresholds{};
}

int RunDrift(const DriftOptions& options) {
  compare::RunOutputs outputs = compare::ReadRunOutputs(options.dir);
  const compare::Summary& summary = outputs.summary;
  report::BaselineStore store(options.store);
  std::optional<report::Baseline> baseline = store.Load(summary.case_ref.name);
  if (!baseline) {
    throw InputError(fmt::format(
        "no baseline for case '{}' in store '{}' (looked for {}); save one with: parity baseline "
        "save {} --store {}",
        summary.case_ref.name, options.store, store.BaselinePath(summary.case_ref.name),
        options.dir, options.store));
  }
  std::string origin;
  report::DriftThresholds thresholds = LoadThresholds(options, summary, &origin);
  report::DriftReport drift = report::CompareWithBaseline(baseline->summary, summary, thresholds);

  if (options.json) {
    nlohmann::json json = report::ToJson(drift);
    json["baseline"] = {{"path", store.BaselinePath(summary.case_ref.name)},
                        {"saved_utc", baseline->saved_utc},
                        {"source", baseline->source}};
    json["thresholds_from"] = origin;
    PrintJson(json.dump(2));
  } else {
    std::cout << report::FormatDriftReport(drift);
    fmt::print("  baseline: {} (saved {} from {}); thresholds from {}\n",
               store.BaselinePath(summary.case_ref.name), baseline->saved_utc, baseline->source,
               origin);
  }

  if (!options.no_history) {
    auto records = report::RecordsFromSummary(summary, options.dir);
    for (report::HistoryRecord& record : records) {
      record.moved = drift.MovedMetrics(record.pair);
      record.drift = record.moved.empty() ? "ok" : "drift";
    }
    report::AppendHistory(store.HistoryPath(), store.LockPath(), records);
  }
  return drift.Drifted() ? kExitDifferent : kExitOk;
}

CommandRegistrar drift_command("drift", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<DriftOptions>();
  CLI::App* command = app.add_subcommand(
      "drift",
      "Compare a run with its case's stored baseline: first divergence earlier, KL p99/max up, "
      "same-top-1 rate down, new failing or missing pairs. Exit 1 when a gate trips. Appends the "
      "run to STORE/history.jsonl");
  command->add_option("DIR", options->dir, "Output directory of `parity run` / `parity compare`")
      ->required()
      ->check(CLI::ExistingDirectory);
  command->add_option("--store", options->store, "Baseline store directory")->required();
  command->add_option("--case", options->case_path,
                      "Case file whose thresholds.drift to use (default: the one the run names)")
      ->check(CLI::ExistingFile);
  command->add_flag("--json", options->json, "Print one JSON object instead of text");
  command->add_flag("--no-history", options->no_history, "Do not append to the history");
  command->callback([options, &action] { action = [options] { return RunDrift(*options); }; });
});

}  // namespace
}  // namespace parity::cli
