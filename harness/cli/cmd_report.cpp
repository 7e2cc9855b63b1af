// `parity report DIR`: (re)writes DIR/report.md and DIR/report.html from DIR/summary.json and
// DIR/steps.jsonl (and DIR/localize.json when present).
#include <iostream>
#include <memory>

#include "harness/cli/command.h"
#include "harness/core/error.h"
#include "harness/report/report.h"

namespace parity::cli {
namespace {

int RunReport(const std::string& dir) {
  report::ReportPaths paths = report::WriteReports(dir);
  std::cout << "wrote " << paths.markdown << "\nwrote " << paths.html << "\n";
  return kExitOk;
}

CommandRegistrar report_command("report", [](CLI::App& app, Action& action) {
  auto dir = std::make_shared<std::string>();
  CLI::App* command = app.add_subcommand(
      "report",
      "Write DIR/report.md and DIR/report.html (one self-contained page: verdict, outputs side by "
      "side with the first divergence, per-step charts, settings) from a run's output directory");
  command->add_option("DIR", *dir, "Output directory of `parity run` / `parity compare`")
      ->required()
      ->check(CLI::ExistingDirectory);
  command->callback([dir, &action] { action = [dir] { return RunReport(*dir); }; });
});

}  // namespace
}  // namespace parity::cli
