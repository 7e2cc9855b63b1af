// The `parity` executable: parses arguments, calls the library, turns exceptions into exit codes.
#include <algorithm>
#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "harness/cli/command.h"
#include "harness/core/error.h"

namespace parity::cli {

std::vector<RegisteredCommand>& Registry() {
  static std::vector<RegisteredCommand> registry;
  return registry;
}

CommandRegistrar::CommandRegistrar(const char* name, Registration registration) {
  Registry().push_back({name, std::move(registration)});
}

void PrintJson(const std::string& json_text) { std::cout << json_text << std::endl; }

}  // namespace parity::cli

int main(int argc, char** argv) {
  using namespace parity;
  CLI::App app{"Parity: numerical-consistency regression harness for LLM checkpoints"};
  app.set_version_flag("--version", std::string("parity ") + PARITY_VERSION);
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log debug messages to stderr");

  auto& registry = cli::Registry();
  std::sort(registry.begin(), registry.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  cli::Action action;
  for (const auto& command : registry) command.registration(app, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitBadInput;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("parity"));
  spdlog::set_pattern("[%H:%M:%S.%e] %^%l%$ %v");
  spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::info);

  try {
    return action ? action() : kExitBadInput;
  } catch (const InputError& e) {
    fmt::print(stderr, "parity: error: {}\n", e.what());
    return kExitBadInput;
  } catch (const c10::Error& e) {
    fmt::print(stderr, "parity: tensor error: {}\n", e.what_without_backtrace());
    return kExitInternal;
  } catch (const std::exception& e) {
    fmt::print(stderr, "parity: internal error: {}\n", e.what());
    return kExitInternal;
  }
}
