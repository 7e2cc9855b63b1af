// Subcommand registration for the `parity` command line. Each command lives in its own file and
// registers itself, so adding one never touches main.cpp:
//
//   static CommandRegistrar inspect("inspect", [](CLI::App& app, Action& action) { ... });
//
// A registrar adds its subcommand and options to `app`; when that subcommand is chosen, it sets
// `action` to the function that does the work and returns the exit code.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace parity::cli {

using Action = std::function<int()>;
using Registration = std::function<void(CLI::App& app, Action& action)>;

class CommandRegistrar {
 public:
  CommandRegistrar(const char* name, Registration registration);
};

struct RegisteredCommand {
  std::string name;
  Registration registration;
};
// All registered commands, in name order.
std::vector<RegisteredCommand>& Registry();

// Prints `json` to stdout (pretty, 2 spaces) — the shape every `--json` output shares.
void PrintJson(const std::string& json_text);

// A validator for counts such as --max-new-tokens: an integer >= 1, with a short message
// ("must be an integer of at least 1, got 0") instead of CLI11's range with 300 digits.
CLI::Validator AtLeastOne();

}  // namespace parity::cli
