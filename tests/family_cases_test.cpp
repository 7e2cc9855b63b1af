// The example case of each family (cases/<family>-random.json, on the checkpoints HF made for the
// golden tests): `parity run` passes, and the self-comparisons at FP32 and at BF16 are clean
// (identical tokens, zero KL, zero logit difference: the forward pass is deterministic).
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/io/checkpoint.h"
#include "tests/test_util.h"

namespace parity {
namespace {

class FamilyCaseTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyCaseTest, RunsAndSelfComparisonIsClean) {
  TempDir out;
  const std::string case_file = std::string(PARITY_SOURCE_DIR) + "/cases/" + GetParam() + "-random.json";
  std::string output;
  ASSERT_EQ(RunCommand(ParityCli() + " run " + case_file + " --out " + out.path() + "/run", &output), 0)
      << output;
  const nlohmann::json summary = io::ReadJsonFile(out.path() + "/run/summary.json");
  int self_runs = 0;
  for (const auto& run : summary["runs"]) {
    if (run["pair"]["a"]["model"] == run["pair"]["b"]["model"]) continue;  // fp32 vs bf16
    ++self_runs;
    EXPECT_EQ(run["tokens_a"], run["tokens_b"]) << run["id"];
    EXPECT_EQ(run["metrics"]["max_kl"].get<double>(), 0.0) << run["id"];
    EXPECT_EQ(run["metrics"]["max_abs_logit_diff"].get<double>(), 0.0) << run["id"];
  }
  EXPECT_EQ(self_runs, 4);  // two prompts at fp32 and at bf16
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyCaseTest,
                         ::testing::Values("qwen2", "qwen2_sliding", "qwen3", "mistral", "qwen3_moe"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace parity
