// `parity merge DIR... --out DIR`: combine the outputs of `parity run --shard i/N` into one run
// (summary.json, steps.jsonl, report.md, report.html). Exits like `parity run`: 1 when the merged
// verdict fails.
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "harness/cli/command.h"
#include "harness/compare/run_result.h"
#include "harness/core/error.h"
#include "harness/report/merge.h"
#include "harness/report/report.h"

namespace parity::cli {
namespace {

struct MergeOptions {
  std::vector<std::string> dirs;
  std::string out;
  bool no_report = false;
};

int RunMerge(const MergeOptions& options) {
  std::error_code ec;
  for (const std::string& dir : options.dirs) {
    if (std::filesystem::equivalent(dir, options.out, ec)) {
      throw InputError(fmt::format("--out '{}' is one of the shard directories; write the merged "
                                   "run elsewhere", options.out));
    }
  }
  compare::RunOutputs merged = report::MergeShardDirs(options.dirs);
  compare::WriteRunOutputs(options.out, merged);
  fmt::print("merged {} shard(s) of case '{}' into {}: {} runs, verdict {}\n", options.dirs.size(),
             merged.summary.case_ref.name, options.out, merged.summary.runs.size(),
             merged.summary.verdict.pass ? "PASS" : "FAIL");
  if (!options.no_report) {
    report::ReportPaths paths = report::WriteReports(options.out);
    fmt::print("wrote {}\nwrote {}\n", paths.markdown, paths.html);
  }
  return merged.summary.verdict.pass ? kExitOk : kExitDifferent;
}

CommandRegistrar merge_command("merge", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<MergeOptions>();
  CLI::App* command = app.add_subcommand(
      "merge", "Combine shard outputs (parity run --shard i/N) into one run: summary.json and "
               "steps.jsonl with the verdict recomputed, plus the reports");
  command->add_option("DIR", options->dirs, "Shard output directories")
      ->required()
      ->check(CLI::ExistingDirectory);
  command->add_option("--out", options->out, "Directory for the merged run")->required();
  command->add_flag("--no-report", options->no_report, "Do not write report.md / report.html");
  command->callback([options, &action] { action = [options] { return RunMerge(*options); }; });
});

}  // namespace
}  // namespace parity::cli
