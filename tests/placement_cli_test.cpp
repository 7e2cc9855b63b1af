// Placement through the command line and case files: `--devices-a/-b`, `--oracle-device` and a
// case's "devices" place each side (and the FP64 oracle) as planned, the plan is printed and
// recorded in summary.json, results are those of the unplaced run (steps.jsonl byte for byte, the
// oracle's figures equal), and a placement that does not fit or names no device is refused with
// exit 2 before anything is loaded. CPU "devices" (cpu,cpu) so that every boundary copy runs here.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/compare/run_result.h"
#include "test_util.h"

namespace parity {
namespace {

std::string Fixture() { return std::string(PARITY_SOURCE_DIR) + "/cases/fixtures/internlm2-tiny"; }

std::string Compare(const std::string& out, const std::string& extra) {
  return ParityCli() + " compare " + Fixture() + " " + Fixture() +
         "@bf16 --prompt-tokens 1,40,50 --prompt-tokens 1,7 --max-new-tokens 6 "
         "--no-fail-on-real-divergence --out " + out + " " + extra;
}

TEST(PlacementCli, SidesPlacedOverCpuStagesGiveTheUnplacedStepsAndRecordThePlan) {
  TempDir dir;
  std::string log;
  ASSERT_EQ(RunCommand(Compare(dir.path() + "/one", ""), &log), 0) << log;
  ASSERT_EQ(RunCommand(Compare(dir.path() + "/placed", "--devices-a cpu=1,cpu=3 --devices-b cpu,cpu"),
                       &log), 0) << log;
  EXPECT_NE(log.find("placement of internlm2-tiny@bf16 (side b): cpu layers 0-1 + embedding; cpu "
                     "layers 2-3 + norm, lm_head; balanced over 2 devices"), std::string::npos) << log;
  EXPECT_EQ(ReadFileText(dir.path() + "/placed/steps.jsonl"),
            ReadFileText(dir.path() + "/one/steps.jsonl"));
  const compare::Summary s = compare::ReadRunOutputs(dir.path() + "/placed").summary;
  ASSERT_EQ(s.placements.size(), 2u) << s.placements.dump(1);
  EXPECT_EQ(s.placements[0]["side"], "a");
  EXPECT_EQ(s.placements[0]["plan"], "cpu layer 0 + embedding; cpu layers 1-3 + norm, lm_head");
  EXPECT_EQ(s.placements[0]["reason"], "given layer counts");
  EXPECT_EQ(s.placements[1]["stages"][1]["layers"], nlohmann::json({2, 3}));
  EXPECT_TRUE(s.placements[1]["stages"][1]["head"].get<bool>());
  EXPECT_TRUE(s.placements[1]["lockstep"].get<bool>());
  // The unplaced run records its one-device plans too.
  const compare::Summary one = compare::ReadRunOutputs(dir.path() + "/one").summary;
  EXPECT_EQ(one.placements[0]["plan"], "cpu layers 0-3 + embedding, norm, lm_head");
}

TEST(PlacementCli, TheOraclePlacedApartGivesTheSameFigures) {
  TempDir dir;
  std::string log;
  auto oracle = [](const std::string& out) {
    nlohmann::json runs = nlohmann::json::array();
    for (const compare::Run& r : compare::ReadRunOutputs(out).summary.runs) {
      runs.push_back({r.id, compare::ToJson(r)["oracle"]});
    }
    return runs;
  };
  ASSERT_EQ(RunCommand(Compare(dir.path() + "/one", "--oracle --no-require-oracle-acceptable"), &log), 0)
      << log;
  ASSERT_EQ(RunCommand(Compare(dir.path() + "/apart", "--oracle --no-require-oracle-acceptable "
                                                      "--oracle-device cpu=2,cpu=2"),
                       &log), 0) << log;
  EXPECT_NE(log.find("placement of internlm2-tiny@fp64 (FP64 oracle): cpu layers 0-1 + embedding; "
                     "cpu layers 2-3 + norm, lm_head; given layer counts"), std::string::npos) << log;
  EXPECT_FALSE(oracle(dir.path() + "/one")[0][1].is_null());
  EXPECT_EQ(oracle(dir.path() + "/apart"), oracle(dir.path() + "/one"));
  const compare::Summary s = compare::ReadRunOutputs(dir.path() + "/apart").summary;
  EXPECT_EQ(s.settings.oracle_device, "cpu=2,cpu=2");
  ASSERT_EQ(s.placements.size(), 3u);  // a, b and one FP64 model (both sides are one model)
  EXPECT_EQ(s.placements[2]["side"], "oracle_a");
}

TEST(PlacementCli, ACaseFilePlacesEachSide) {
  TempDir dir;
  const std::string case_path = dir.path() + "/case.json";
  WriteFileText(case_path, nlohmann::json{
      {"name", "placed"},
      {"models", {{"tiny", {{"path", Fixture()}}}}},
      {"prompts", {{{"tokens", {1, 40, 50}}}}},
      {"pairs", {{{"a", "tiny@fp32"}, {"b", "tiny@bf16"}}}},
      {"max_new_tokens", 4},
      {"devices", {{"a", "cpu"}, {"b", "cpu=3,cpu=1"}}}}.dump());
  std::string log;
  ASSERT_EQ(RunCommand(ParityCli() + " run " + case_path + " --out " + dir.path() + "/out", &log), 0)
      << log;
  const compare::Summary s = compare::ReadRunOutputs(dir.path() + "/out").summary;
  EXPECT_EQ(s.placements[1]["plan"], "cpu layers 0-2 + embedding; cpu layer 3 + norm, lm_head");
  // A bad placement in a case names the field.
  WriteFileText(case_path, nlohmann::json{
      {"name", "placed"},
      {"models", {{"tiny", {{"path", Fixture()}}}}},
      {"prompts", {"x"}},
      {"devices", {{"a", "cpu"}, {"c", "cpu"}, {"b", "tpu:0"}}}}.dump());
  EXPECT_EQ(RunCommand(ParityCli() + " run " + case_path + " --out " + dir.path() + "/bad", &log), 2);
  EXPECT_NE(log.find("devices.c: unknown field"), std::string::npos) << log;
  EXPECT_NE(log.find("devices.b: placement: 'tpu:0': unknown device 'tpu:0'"), std::string::npos) << log;
}

TEST(PlacementCli, APlacementThatDoesNotFitOrNamesNoDeviceIsRefusedBeforeLoading) {
  TempDir dir;
  std::string log;
  EXPECT_EQ(RunCommand(Compare(dir.path() + "/small", "--devices-b cpu@1MB,cpu@1MB"), &log), 2) << log;
  EXPECT_NE(log.find("pair internlm2-tiny@fp32/internlm2-tiny@bf16"), std::string::npos) << log;
  EXPECT_NE(log.find("internlm2-tiny@bf16 does not fit 'cpu@1MB,cpu@1MB'"), std::string::npos) << log;
  EXPECT_NE(log.find("internlm2-tiny@bf16 on cpu: needs "), std::string::npos) << log;
  EXPECT_NE(log.find("1 MB available (@1 MB)"), std::string::npos) << log;
  EXPECT_NE(log.find("nothing was loaded"), std::string::npos) << log;
  EXPECT_EQ(log.find("info loading"), std::string::npos) << log;
  EXPECT_EQ(RunCommand(Compare(dir.path() + "/bad", "--devices-a gpu:0"), &log), 2) << log;
  EXPECT_NE(log.find("unknown device 'gpu:0'"), std::string::npos) << log;
  EXPECT_EQ(RunCommand(Compare(dir.path() + "/counts", "--devices-a cpu=1,cpu=1"), &log), 2) << log;
  EXPECT_NE(log.find("the layer counts add up to 2, the model has 4 layers"), std::string::npos)
      << log;
}

}  // namespace
}  // namespace parity
