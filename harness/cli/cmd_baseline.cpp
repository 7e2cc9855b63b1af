// `parity baseline save DIR --store STORE [--if-missing]`: keep a run's summary as its case's
// baseline. `parity baseline record DIR --store STORE`: append the run to the store's history
// without comparing it (for runs that should appear in `parity trend` without a drift gate).
#include <filesystem>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/cli/command.h"
#include "harness/compare/run_result.h"
#include "harness/core/error.h"
#include "harness/report/baseline_store.h"
#include "harness/report/history.h"

namespace parity::cli {
namespace {

struct BaselineOptions {
  std::string dir;
  std::string store;
  bool if_missing = false;
  bool json = false;
};

// With --json, one object instead of the sentence.
void Say(const BaselineOptions& options, const nlohmann::ordered_json& json,
         const std::string& text) {
  if (options.json) {
    PrintJson(json.dump(2));
  } else {
    fmt::print("{}\n", text);
  }
}

int RunSave(const BaselineOptions& options) {
  compare::RunOutputs outputs = compare::ReadRunOutputs(options.dir);  // validates both files
  report::BaselineStore store(options.store);
  const std::string& name = outputs.summary.case_ref.name;
  if (auto existing = store.Load(name)) {
    if (options.if_missing) {
      Say(options,
          {{"case", name}, {"baseline", store.BaselinePath(name)}, {"saved", false},
           {"existing_saved_utc", existing->saved_utc}, {"existing_source", existing->source}},
          fmt::format("baseline for case '{}' exists ({}, saved {} from {}); not replaced", name,
                      store.BaselinePath(name), existing->saved_utc, existing->source));
      return kExitOk;
    }
    if (!options.json) {
      fmt::print("replacing the baseline for case '{}' (saved {} from {})\n", name,
                 existing->saved_utc, existing->source);
    }
  }
  if (outputs.summary.interrupted) {
    throw InputError(fmt::format("{}: the run was interrupted (only some runs finished); it "
                                 "cannot be a baseline", options.dir));
  }
  std::string path = store.Save(outputs.summary, options.dir);
  Say(options,
      {{"case", name}, {"baseline", path}, {"saved", true}, {"source", options.dir},
       {"pass", outputs.summary.verdict.pass}},
      fmt::format("saved baseline for case '{}': {} (from {}, verdict {})", name, path,
                  options.dir, outputs.summary.verdict.pass ? "pass" : "FAIL"));
  return kExitOk;
}

int RunRecord(const BaselineOptions& options) {
  compare::RunOutputs outputs = compare::ReadRunOutputs(options.dir);
  report::BaselineStore store(options.store);
  auto records = report::RecordsFromSummary(outputs.summary, options.dir);
  report::AppendHistory(store.HistoryPath(), store.LockPath(), records);
  Say(options,
      {{"case", outputs.summary.case_ref.name}, {"history", store.HistoryPath()},
       {"records", records.size()}},
      fmt::format("recorded {} pair(s) of case '{}' in {}", records.size(),
                  outputs.summary.case_ref.name, store.HistoryPath()));
  return kExitOk;
}

void AddCommon(CLI::App* command, BaselineOptions* options) {
  command->add_option("DIR", options->dir, "Output directory of `parity run` / `parity compare`")
      ->required()
      ->check(CLI::ExistingDirectory);
  command->add_option("--store", options->store, "Baseline store directory (created when missing)")
      ->required();
  command->add_flag("--json", options->json, "Print one JSON object instead of the sentence");
}

CommandRegistrar baseline_command("baseline", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<BaselineOptions>();
  CLI::App* baseline = app.add_subcommand(
      "baseline", "Manage a baseline store: save a run as its case's baseline, record a run in the "
                  "store's history");
  baseline->require_subcommand(1);
  CLI::App* save = baseline->add_subcommand(
      "save", "Store DIR's summary as the baseline of its case (replaces an existing one unless "
              "--if-missing)");
  AddCommon(save, options.get());
  save->add_flag("--if-missing", options->if_missing,
                 "Only save when the case has no baseline yet (says which happened)");
  save->callback([options, &action] { action = [options] { return RunSave(*options); }; });
  CLI::App* record = baseline->add_subcommand(
      "record", "Append DIR's per-pair metrics to STORE/history.jsonl without a drift check");
  AddCommon(record, options.get());
  record->callback([options, &action] { action = [options] { return RunRecord(*options); }; });
});

}  // namespace
}  // namespace parity::cli
