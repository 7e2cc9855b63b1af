// `parity cache list|clear [--cache-dir DIR] [--json]`: the conversion cache of the session store
// (harness/session/conversion_cache.h), where `run`, `compare` and `explain` keep the models they
// convert at run time, keyed by the source's content.
#include <iostream>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/cli/command.h"
#include "harness/core/error.h"
#include "harness/session/conversion_cache.h"

namespace parity::cli {
namespace {

struct CacheOptions {
  std::string cache_dir;
  bool json = false;
};

int RunList(const CacheOptions& options) {
  session::ConversionCache cache(session::ResolveCacheDir(options.cache_dir));
  const auto entries = cache.List();
  if (options.json) {
    nlohmann::ordered_json json = {{"cache_dir", cache.dir()}, {"entries", nlohmann::ordered_json::array()}};
    for (const auto& entry : entries) {
      json["entries"].push_back({{"dir", entry.dir},
                                 {"conversion", entry.conversion},
                                 {"source", entry.source},
                                 {"created_utc", entry.created_utc},
                                 {"bytes", entry.bytes}});
    }
    PrintJson(json.dump(2));
    return kExitOk;
  }
  fmt::print("conversion cache {}: {} entr{}\n", cache.dir(), entries.size(),
             entries.size() == 1 ? "y" : "ies");
  for (const auto& entry : entries) {
    fmt::print("  {}  {} of {}, {:.1f} MiB, {}\n", entry.dir, entry.conversion, entry.source,
               entry.bytes / 1048576.0, entry.created_utc);
  }
  return kExitOk;
}

int RunClear(const CacheOptions& options) {
  session::ConversionCache cache(session::ResolveCacheDir(options.cache_dir));
  const int64_t removed = cache.Clear();
  if (options.json) {
    PrintJson(nlohmann::ordered_json({{"cache_dir", cache.dir()}, {"removed", removed}}).dump(2));
  } else {
    fmt::print("removed {} cached conversion{} from {}\n", removed, removed == 1 ? "" : "s",
               cache.dir());
  }
  return kExitOk;
}

CommandRegistrar cache_command("cache", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<CacheOptions>();
  CLI::App* cache = app.add_subcommand(
      "cache", "The cache of models converted at run time (keyed by the source's content): list "
               "or clear it");
  cache->require_subcommand(1);
  for (const char* name : {"list", "clear"}) {
    CLI::App* sub = cache->add_subcommand(
        name, std::string(name) == "list" ? "List the cached conversions"
                                          : "Remove every cached conversion");
    sub->add_option("--cache-dir", options->cache_dir,
                    "Cache directory (default $PARITY_CACHE, else ~/.cache/parity)");
    sub->add_flag("--json", options->json, "Print one JSON object");
    const bool list = std::string(name) == "list";
    sub->callback([options, list, &action] {
      action = [options, list] { return list ? RunList(*options) : RunClear(*options); };
    });
  }
});

}  // namespace
}  // namespace parity::cli
