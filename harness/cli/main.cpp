// The `parity` executable: parses arguments, calls the library, turns exceptions into exit codes.
#include <algorithm>
#include <exception>
#include <filesystem>
#include <optional>
#include <iostream>

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "harness/cli/command.h"
#include "harness/core/error.h"
#include "harness/core/interrupt.h"

namespace parity::cli {

std::vector<RegisteredCommand>& Registry() {
  static std::vector<RegisteredCommand> registry;
  return registry;
}

CommandRegistrar::CommandRegistrar(const char* name, Registration registration) {
  Registry().push_back({name, std::move(registration)});
}

void PrintJson(const std::string& json_text) { std::cout << json_text << std::endl; }

CLI::Validator AtLeastOne() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          size_t used = 0;
          long long value = std::stoll(text, &used);
          if (used == text.size() && value >= 1) return "";
        } catch (const std::exception&) {
        }
        return "must be an integer of at least 1, got " + text;
      },
      "INT>=1");
}

namespace {

// Lets the top-level options (-v) come after a subcommand too: `parity run CASE -v`.
void FallThrough(CLI::App* app) {
  for (CLI::App* sub : app->get_subcommands([](CLI::App*) { return true; })) {
    sub->fallthrough();
    FallThrough(sub);
  }
}

// The first argument that is not an option, when it names no command: CLI11 would only say "A
// subcommand is required".
std::optional<std::string> UnknownCommand(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!arg.empty() && arg[0] == '-') continue;
    for (const auto& command : Registry()) {
      if (command.name == arg) return std::nullopt;
    }
    return arg;
  }
  return std::nullopt;
}

}  // namespace

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
  cli::FallThrough(&app);

  if (std::optional<std::string> unknown = cli::UnknownCommand(argc, argv)) {
    std::string names;
    for (const auto& command : registry) names += (names.empty() ? "" : ", ") + command.name;
    fmt::print(stderr, "parity: error: unknown command '{}' (commands: {}; see parity --help)\n",
               *unknown, names);
    return kExitBadInput;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitBadInput;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("parity"));
  spdlog::set_pattern("[%H:%M:%S.%e] %^%l%$ %v");
  spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::info);

  InstallInterruptHandler();
  try {
    return action ? action() : kExitBadInput;
  } catch (const Interrupted&) {
    fmt::print(stderr, "parity: interrupted (nothing finished was lost: outputs are written "
                       "atomically)\n");
    return kExitInterrupted;
  } catch (const InputError& e) {
    fmt::print(stderr, "parity: error: {}\n", e.what());
    return kExitBadInput;
  } catch (const std::filesystem::filesystem_error& e) {
    // A path the user gave (an output directory on a file, a read-only directory...).
    std::string paths = "'" + e.path1().string() + "'";
    if (!e.path2().empty()) paths += " and '" + e.path2().string() + "'";
    fmt::print(stderr, "parity: error: {}: {}\n", paths, e.code().message());
    return kExitBadInput;
  } catch (const c10::Error& e) {
    fmt::print(stderr, "parity: tensor error: {}\n", e.what_without_backtrace());
    return kExitInternal;
  } catch (const std::exception& e) {
    fmt::print(stderr, "parity: internal error: {}\n", e.what());
    return kExitInternal;
  }
}
