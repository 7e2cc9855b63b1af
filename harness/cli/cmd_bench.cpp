// `parity bench MODEL_A [MODEL_B]`: ms per model-token of the real lockstep pipeline and its ratio
// to the weight-bytes / copy-bandwidth limit measured in the same run (compare/bench.h).
// `parity bench --check [--device D]`: the decode engine's fast paths against the computations they
// replace, bit for bit, on small random models of each family (decode/engine_check.h), CUDA graphs
// included unless --graphs off; exit 1 when any differs.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "harness/cli/command.h"
#include "harness/compare/bench.h"
#include "harness/core/error.h"
#include "harness/decode/engine_check.h"

namespace parity::cli {
namespace {

struct BenchCliOptions {
  compare::BenchOptions bench;
  std::string precision = "bf16";
  bool check = false;
  std::vector<std::string> modes = {"pipelined"};
  std::vector<std::string> fill = {"off"};
  std::vector<std::string> graphs = {"on"};
  bool json = false;
};

CommandRegistrar bench_command("bench", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<BenchCliOptions>();
  compare::BenchOptions& b = options->bench;
  CLI::App* command = app.add_subcommand(
      "bench",
      "Time lockstep decoding of two models as `compare` runs it (metrics on, deterministic "
      "settings, real vocabulary) and report ms per model-token against the weight-bytes / "
      "copy-bandwidth limit measured in the same run; --check: bitwise self-check of the decode "
      "engine on this device");
  command->add_option("MODEL_A", b.model_a, "Checkpoint directory of side A");
  command->add_option("MODEL_B", b.model_b, "Checkpoint directory of side B (default: A again)");
  command->add_option("--dtype", options->precision, "Precision: fp32, bf16, fp16 or fp64")
      ->capture_default_str();
  command->add_option("--device", b.device, "cpu or cuda[:N]")->capture_default_str();
  command->add_option("--prompt-tokens", b.prompt_tokens,
                      "Prompt lengths (seeded random ids), comma-separated")
      ->delimiter(',')
      ->capture_default_str()
      ->check(AtLeastOne());
  command->add_option("--new-tokens", b.new_tokens, "Decode steps timed (>= 2)")
      ->capture_default_str()
      ->check(AtLeastOne());
  command->add_option("--repeats", b.repeats, "Timed runs; the fastest counts")
      ->capture_default_str()
      ->check(AtLeastOne());
  command->add_option("--modes", options->modes,
                      "Lockstep loops to time, comma-separated: pipelined, synchronous (the "
                      "reference loop)")
      ->delimiter(',')
      ->check(CLI::IsMember({"pipelined", "synchronous"}))
      ->capture_default_str();
  command->add_option("--fill", options->fill,
                      "Deterministic mode's NaN fill of new memory, comma-separated: off (as runs "
                      "use it), on")
      ->delimiter(',')
      ->check(CLI::IsMember({"off", "on"}))
      ->capture_default_str();
  command->add_option("--graphs", options->graphs,
                      "CUDA graphs of the one-token step (pipelined loop), comma-separated: on "
                      "(as runs decode: where the build and the model allow), off (Forward "
                      "eagerly: --cuda-graphs off of run/compare); with --check: 'off' alone "
                      "skips the graph rows")
      ->delimiter(',')
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  command->add_flag("--check", options->check,
                    "Bitwise self-check of the decode engine on --device instead of timing");
  command->add_flag("--json", options->json, "Print the result as JSON");
  command->callback([options, &action] {
    action = [options] {
      compare::BenchOptions bench = options->bench;
      if (options->check) {
        bool graphs = false;
        for (const std::string& g : options->graphs) graphs = graphs || g == "on";
        const auto rows = decode::CheckEngine(c10::Device(bench.device), graphs);
        bool all = true;
        for (const auto& row : rows) {
          std::cout << decode::FormatEngineCheckRow(row) << "\n";
          all = all && row.bitwise;
        }
        std::cout << (all ? "engine check: every tested path is bitwise identical\n"
                          : "engine check: DIFFERENCES (see above)\n");
        return static_cast<int>(all ? kExitOk : kExitDifferent);
      }
      if (bench.model_a.empty()) throw InputError("bench: MODEL_A is required (or --check)");
      bench.precision = forward::ParsePrecision(options->precision);
      bench.pipelined.clear();
      for (const std::string& mode : options->modes) bench.pipelined.push_back(mode == "pipelined");
      bench.graphs.clear();
      for (const std::string& graphs : options->graphs) bench.graphs.push_back(graphs == "on");
      bench.fill_uninitialized.clear();
      for (const std::string& fill : options->fill) bench.fill_uninitialized.push_back(fill == "on");
      const std::vector<compare::BenchResult> results = compare::RunBench(bench);
      if (options->json) {
        nlohmann::json all = nlohmann::json::array();
        for (const auto& result : results) all.push_back(compare::BenchResultToJson(result));
        PrintJson(all.dump(2));
      } else {
        for (const auto& result : results) std::cout << compare::FormatBenchResult(result);
      }
      return static_cast<int>(kExitOk);
    };
  });
});

}  // namespace
}  // namespace parity::cli
