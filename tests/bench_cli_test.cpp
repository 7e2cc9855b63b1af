// `parity bench` on the CPU with the trained fixture: the JSON it reports is self-consistent (ms per
// model-token from the two timed runs, ratio = ms / limit, limit = weight bytes / bandwidth, one
// row per loop and graph setting, the engine each side ran), and bad arguments exit 2 with a
// message.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace parity {
namespace {

TEST(BenchCli, ReportsConsistentFiguresOnTheCpu) {
  TempDir dir;
  const std::string json_path = dir.path() + "/bench.json";
  std::string log;
  const std::string command = "(" + ParityCli() + " bench " + TrainedFixtureDir() +
                              " --device cpu --dtype bf16 --prompt-tokens 3 --new-tokens 3 "
                              "--modes pipelined,synchronous --graphs on,off --json > '" + json_path + "')";
  ASSERT_EQ(RunCommand(command, &log), 0) << log;
  const nlohmann::json all = nlohmann::json::parse(ReadFileText(json_path));
  // Pipelined with graphs on and off, synchronous (never records).
  ASSERT_EQ(all.size(), 3u);
  for (const nlohmann::json& r : all) {
    EXPECT_EQ(r["precision"], "bf16");
    EXPECT_EQ(r["prompt_tokens"], 3);
    EXPECT_EQ(r["new_tokens"], 3);
    EXPECT_TRUE(r["deterministic_algorithms"].get<bool>());
    EXPECT_FALSE(r["fill_uninitialized_memory"].get<bool>());
    const double ms = r["ms_per_model_token"], limit = r["limit_ms_per_model_token"];
    const double bandwidth = r["copy_bandwidth_bytes_per_s"];
    const int64_t bytes = r["weight_bytes"][0];
    EXPECT_GT(ms, 0);
    EXPECT_GT(bytes, 0);
    EXPECT_NEAR(limit, bytes / bandwidth * 1e3, 1e-9 * limit);
    EXPECT_NEAR(r["ratio_to_limit"].get<double>(), ms / limit, 1e-9 * ms / limit);
    EXPECT_NEAR(ms, (r["total_ms"].get<double>() - r["prefill_ms"].get<double>()) / (2 * 2), 1e-6);
    EXPECT_GT(r["outer_aten_ops_per_model_token"].get<double>(), 10);
    // The CPU runs the synchronous loop whatever was asked, and says so; no graph launches.
    EXPECT_EQ(r["engine"][0], "eager: cpu (synchronous loop)");
    EXPECT_EQ(r["graph_launches_per_model_token"].get<double>(), 0);
    EXPECT_EQ(r["launches_per_model_token"].get<double>(),
              r["aten_ops_per_model_token"].get<double>());
  }
  EXPECT_TRUE(all[0]["pipelined"].get<bool>());
  EXPECT_TRUE(all[0]["graphs_requested"].get<bool>());
  EXPECT_TRUE(all[1]["pipelined"].get<bool>());
  EXPECT_FALSE(all[1]["graphs_requested"].get<bool>());
  EXPECT_FALSE(all[2]["pipelined"].get<bool>());
  EXPECT_FALSE(all[2]["graphs_requested"].get<bool>());
}

// Without --graphs the bench times what a run uses: graphs requested (the CPU still runs eagerly).
TEST(BenchCli, GraphsAreRequestedByDefault) {
  TempDir dir;
  const std::string json_path = dir.path() + "/bench.json";
  std::string log;
  ASSERT_EQ(RunCommand("(" + ParityCli() + " bench " + TrainedFixtureDir() +
                           " --device cpu --dtype bf16 --prompt-tokens 3 --new-tokens 2 --json > '" +
                           json_path + "')", &log), 0) << log;
  const nlohmann::json all = nlohmann::json::parse(ReadFileText(json_path));
  ASSERT_EQ(all.size(), 1u);
  EXPECT_TRUE(all[0]["graphs_requested"].get<bool>());
  EXPECT_EQ(all[0]["engine"][0], "eager: cpu (synchronous loop)");
  EXPECT_EQ(RunCommand(ParityCli() + " bench --check --graphs maybe", &log), 2) << log;
  EXPECT_NE(log.find("--graphs"), std::string::npos) << log;
}

TEST(BenchCli, RejectsBadArguments) {
  std::string log;
  EXPECT_EQ(RunCommand(ParityCli() + " bench --device cpu", &log), 2) << log;
  EXPECT_NE(log.find("MODEL_A"), std::string::npos) << log;
  EXPECT_EQ(RunCommand(ParityCli() + " bench " + TrainedFixtureDir() + " --device cpu --new-tokens 1",
                       &log), 2) << log;
  EXPECT_NE(log.find("--new-tokens"), std::string::npos) << log;
  EXPECT_EQ(RunCommand(ParityCli() + " bench /nonexistent --device cpu", &log), 2) << log;
}

}  // namespace
}  // namespace parity
