// `parity diff-config A B [--json]`: every config.json field side by side with a verdict; exit 0 when
// the two describe the same network, 1 when they do not.
#include <iostream>
#include <memory>

#include "harness/cli/command.h"
#include "harness/compare/config_diff.h"
#include "harness/core/error.h"

namespace parity::cli {
namespace {

struct DiffConfigOptions {
  std::string a;
  std::string b;
  bool json = false;
};

int RunDiffConfig(const DiffConfigOptions& options) {
  compare::ConfigDiff diff = compare::DiffConfigPaths(options.a, options.b);
  if (options.json) {
    PrintJson(diff.ToJson().dump(2));
  } else {
    std::cout << diff.ToText();
  }
  return diff.same_network() ? kExitOk : kExitDifferent;
}

CommandRegistrar diff_config_command("diff-config", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<DiffConfigOptions>();
  CLI::App* command = app.add_subcommand(
      "diff-config",
      "Compare two config.json field by field, knowing what convert2llama changes on purpose; exit 0 "
      "when they describe the same network, 1 when not");
  command->add_option("A", options->a, "Checkpoint directory or config.json")->required()->check(CLI::ExistingPath);
  command->add_option("B", options->b, "Checkpoint directory or config.json")->required()->check(CLI::ExistingPath);
  command->add_flag("--json", options->json, "Print one JSON object instead of the table");
  command->callback([options, &action] { action = [options] { return RunDiffConfig(*options); }; });
});

}  // namespace
}  // namespace parity::cli
