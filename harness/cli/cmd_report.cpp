// `parity report DIR`: (re)writes DIR/report.md and DIR/report.html from DIR/summary.json and
// DIR/steps.jsonl (and DIR/localize.json when present).
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "harness/cli/command.h"
#include "harness/core/error.h"
#include "harness/report/report.h"

namespace parity::cli {
namespace {

struct ReportOptions {
  std::string dir;
  bool json = false;
};

int RunReport(const ReportOptions& options) {
  report::ReportPaths paths = report::WriteReports(options.dir);
  if (options.json) {
    PrintJson(nlohmann::ordered_json({{"report_md", paths.markdown}, {"report_html", paths.html}})
                  .dump(2));
  } else {
    std::cout << "wrote " << paths.markdown << "\nwrote " << paths.html << "\n";
  }
  return kExitOk;
}

CommandRegistrar report_command("report", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<ReportOptions>();
  CLI::App* command = app.add_subcommand(
      "report",
      "Write DIR/report.md and DIR/report.html (one self-contained page: verdict, outputs side by "
      "side with the first divergence, per-step charts, settings) from a run's output directory");
  command->add_option("DIR", options->dir, "Output directory of `parity run` / `parity compare`")
      ->required()
      ->check(CLI::ExistingDirectory);
  command->add_flag("--json", options->json, "Print the paths written as one JSON object");
  command->callback([options, &action] { action = [options] { return RunReport(*options); }; });
});

}  // namespace
}  // namespace parity::cli
