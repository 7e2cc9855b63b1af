// The cluster recipes in scripts/cluster/ run as written: the Slurm array script with the variables
// Slurm sets, the Kubernetes Indexed Job through k8s_local.py (its pods' commands, volumes mapped to
// local directories), and both merges equal the unsharded run of the same suite. The manifests are
// parsed (PyYAML) and checked: an Indexed Job whose SHARD_COUNT disagrees with its completions is
// refused, as is a Slurm array not numbered from 0.
#include <string>

#include <gtest/gtest.h>

#include "harness/compare/run_result.h"
#include "tests/report_fixture.h"
#include "tests/test_util.h"

namespace parity {
namespace {

const std::string kScripts = std::string(PARITY_SOURCE_DIR) + "/scripts/cluster/";

// A three-prompt suite over the trained fixture, small enough to run four times in seconds.
std::string WriteSuite(const std::string& dir) {
  std::string case_path = dir + "/case.json";
  WriteFileText(case_path, R"({
    "name": "cluster",
    "models": {"original": {"path": ")" + std::string(PARITY_SOURCE_DIR) +
                               R"(/cases/fixtures/internlm2-tiny"}},
    "prompts": [{"tokens": [1, 300, 301]}, {"tokens": [1, 500, 20, 7]}, "This program is free"],
    "pairs": [{"a": "original@fp32", "b": "original@bf16"}],
    "max_new_tokens": 6
  })");
  return case_path;
}

void ExpectSameRun(const std::string& merged_dir, const std::string& whole_dir) {
  compare::RunOutputs merged = compare::ReadRunOutputs(merged_dir);
  compare::RunOutputs whole = compare::ReadRunOutputs(whole_dir);
  ASSERT_EQ(whole.summary.runs.size(), 3u);
  EXPECT_EQ(testing::WithoutWallTimes(merged.summary), testing::WithoutWallTimes(whole.summary));
  EXPECT_EQ(compare::StepsToJsonl(merged.steps), compare::StepsToJsonl(whole.steps));
}

std::string WholeRun(const std::string& dir, const std::string& case_path) {
  std::string output;
  int code = RunCommand(ParityCli() + " run " + case_path + " --out " + dir + "/whole", &output);
  EXPECT_TRUE(code == 0 || code == 1) << output;
  return dir + "/whole";
}

TEST(ClusterTest, SlurmArrayShardsMergeIntoTheUnshardedRun) {
  TempDir dir;
  std::string case_path = WriteSuite(dir.path());
  std::string env = "PARITY_BIN=" + ParityCli() + " SLURM_ARRAY_TASK_COUNT=2 ";
  std::string output;
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(RunCommand(env + "SLURM_ARRAY_TASK_ID=" + std::to_string(i) + " bash " + kScripts +
                             "slurm_shard.sbatch " + case_path + " " + dir.path() + "/out",
                         &output),
              0)
        << output;
  }
  int code = RunCommand("PARITY_BIN=" + ParityCli() + " bash " + kScripts + "slurm_merge.sbatch " +
                            dir.path() + "/out",
                        &output);
  EXPECT_TRUE(code == 0 || code == 1) << output;
  ExpectSameRun(dir.path() + "/out/merged", WholeRun(dir.path(), case_path));

  // An array numbered from 1 would leave shard 0's prompts unrun: refused before any work.
  EXPECT_EQ(RunCommand(env + "SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_MIN=1 bash " + kScripts +
                           "slurm_shard.sbatch " + case_path + " " + dir.path() + "/bad",
                       &output),
            2)
      << output;
  EXPECT_NE(output.find("--array=0-1"), std::string::npos) << output;
  // The merge refuses an output directory without shards.
  EXPECT_EQ(RunCommand("PARITY_BIN=" + ParityCli() + " bash " + kScripts + "slurm_merge.sbatch " +
                           dir.path() + "/nothing",
                       &output),
            2)
      << output;
}

TEST(ClusterTest, KubernetesIndexedJobShardsMergeIntoTheUnshardedRun) {
  TempDir dir;
  std::string suite = dir.path() + "/suite";
  std::filesystem::create_directories(suite);
  std::string case_path = WriteSuite(suite);
  std::string local = "python3 " + kScripts + "k8s_local.py ";
  std::string mounts = " --mount /suite=" + suite + " --mount /results=" + dir.path() +
                       "/results --mount /models=" + PARITY_SOURCE_DIR + "/cases/fixtures" +
                       " --path " + PARITY_BINARY_DIR;
  std::string output;
  EXPECT_EQ(RunCommand(local + kScripts + "k8s_shards.yaml" + mounts, &output), 0) << output;
  EXPECT_NE(output.find("parity-shards: 4 pod(s)"), std::string::npos) << output;
  // Four pods for three prompts: the fourth shard runs nothing and merges as empty.
  int code = RunCommand(local + kScripts + "k8s_merge.yaml" + mounts, &output);
  EXPECT_NE(output.find("parity-merge pod 0: exit"), std::string::npos) << output;
  EXPECT_TRUE(code == 0 || code == 1) << output;
  ExpectSameRun(dir.path() + "/results/merged", WholeRun(dir.path(), case_path));
}

TEST(ClusterTest, AnIndexedJobWhoseShardCountDisagreesIsRefused) {
  TempDir dir;
  std::string manifest = ReadFileText(kScripts + "k8s_shards.yaml");
  size_t at = manifest.find("value: \"4\"");
  ASSERT_NE(at, std::string::npos);
  manifest.replace(at, 10, "value: \"3\"");
  WriteFileText(dir.path() + "/job.yaml", manifest);
  std::string output;
  EXPECT_EQ(RunCommand("python3 " + kScripts + "k8s_local.py " + dir.path() + "/job.yaml", &output),
            2)
      << output;
  EXPECT_NE(output.find("SHARD_COUNT 3 differs from spec.completions 4"), std::string::npos)
      << output;
}

}  // namespace
}  // namespace parity
