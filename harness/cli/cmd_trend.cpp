// `parity trend --store STORE [--out FILE]`: one self-contained HTML page with the history of each
// metric per case and pair (default STORE/trend.html).
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "harness/cli/command.h"
#include "harness/session/out_dir.h"
#include "harness/core/atomic_file.h"
#include "harness/core/error.h"
#include "harness/report/baseline_store.h"
#include "harness/report/history.h"
#include "harness/report/trend.h"

namespace parity::cli {
namespace {

struct TrendOptions {
  std::string store;
  std::string out;
  bool json = false;
};

int RunTrend(const TrendOptions& options) {
  report::BaselineStore store(options.store);
  if (!std::filesystem::is_directory(options.store)) {
    throw InputError(fmt::format("store '{}' is not a directory", options.store));
  }
  report::HistoryRead history = report::ReadHistory(store.HistoryPath());
  std::string out = options.out.empty()
                        ? (std::filesystem::path(options.store) / "trend.html").string()
                        : options.out;
  session::PrepareOutputFile(out, "--out");
  WriteFileAtomic(out, report::RenderTrendHtml(history.records, history.skipped_lines,
                                               options.store));
  if (options.json) {
    PrintJson(nlohmann::ordered_json({{"trend_html", out},
                                      {"records", history.records.size()},
                                      {"torn_lines_skipped", history.skipped_lines}})
                  .dump(2));
    return kExitOk;
  }
  fmt::print("wrote {} ({} records{})\n", out, history.records.size(),
             history.skipped_lines ? fmt::format(", {} torn lines skipped", history.skipped_lines)
                                   : "");
  return kExitOk;
}

CommandRegistrar trend_command("trend", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<TrendOptions>();
  CLI::App* command = app.add_subcommand(
      "trend", "Write an HTML page with the history of each metric per case and pair");
  command->add_option("--store", options->store, "Baseline store directory")->required();
  command->add_option("--out", options->out, "Output file (default STORE/trend.html)");
  command->add_flag("--json", options->json, "Print the path written as one JSON object");
  command->callback([options, &action] { action = [options] { return RunTrend(*options); }; });
});

}  // namespace
}  // namespace parity::cli
