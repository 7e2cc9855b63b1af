// What `parity run` and `parity compare` share around compare::RunCase: claiming the output
// directory before any work (session/out_dir.h), the conversion cache, SIGINT, and the end of a run
// (outputs, table or JSON, reports, OUT/run.json).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "harness/compare/case.h"
#include "harness/compare/suite.h"

namespace parity::cli {

struct RunCommandOptions {
  std::string out;
  std::string cache_dir;  // --cache-dir
  bool replace = false;   // --replace: allow replacing a run of another case in OUT
  bool json = false;      // --json: one JSON object on stdout instead of the table
  bool save_traces = false;    // --save-traces: each model side's trace into OUT/traces
  bool save_kld_base = false;  // --save-kld-base: each model side's llama.cpp base file
  std::optional<int64_t> memory_limit_bytes;  // --memory-limit (compare::SuiteOptions)
};

// Adds --out, --cache-dir, --replace, --json, --save-traces and --save-kld-base to `command`.
void AddRunOutputOptions(CLI::App* command, RunCommandOptions& options);

// Adds --devices, --devices-a and --devices-b (forward/placement.h syntax) to `command`.
void AddPlacementOptions(CLI::App* command, std::optional<std::string>& devices,
                         std::optional<std::string>& devices_a,
                         std::optional<std::string>& devices_b);

// Claims OUT, runs the case, writes OUT/summary.json, OUT/steps.jsonl, the reports and OUT/run.json,
// prints the table (or the JSON result), and returns the exit code: 0 pass, 1 a gate failed,
// 130 interrupted (the finished runs are written, marked interrupted). `after_run` (may be null)
// writes extra files into OUT before the reports (e.g. shard.json).
int RunAndWrite(const compare::Case& c, const std::string& command,
                const RunCommandOptions& options,
                std::function<bool(int64_t prompt_index)> include_prompt = nullptr,
                std::function<void()> after_run = nullptr);

}  // namespace parity::cli
