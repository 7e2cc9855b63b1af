// Sharding and merging: "i/N" parsing, the deterministic prompt slices, and that merging the shards
// of a run gives exactly the unsharded summary and steps (timestamps aside), in any shard order;
// shards that overlap, miss a prompt or disagree are refused with the reason.
#include <filesystem>

#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "harness/report/merge.h"
#include "harness/report/shard.h"
#include "tests/report_fixture.h"
#include "tests/test_util.h"

namespace parity::report {
namespace {

using parity::testing::FixtureOptions;
using parity::testing::MakeRunOutputs;
using parity::testing::MakeRunOutputsForPrompts;

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ShardTest, ParsesIndexOverCount) {
  ShardSpec spec = ParseShard("2/5");
  EXPECT_EQ(spec.index, 2);
  EXPECT_EQ(spec.count, 5);
  EXPECT_EQ(ParseShard("0/1").count, 1);
}

TEST(ShardTest, RejectsMalformedSpecsWithTheReason) {
  EXPECT_NE(ErrorOf([] { ParseShard("4/4"); }).find("below the count (0..3)"), std::string::npos);
  EXPECT_NE(ErrorOf([] { ParseShard("1/0"); }).find("at least 1"), std::string::npos);
  EXPECT_NE(ErrorOf([] { ParseShard("3"); }).find("expected i/N"), std::string::npos);
  for (const char* bad : {"-1/2", "a/b", " 1/2", "1/2 ", "1//2", "/2", "1/", "1.0/2",
                          "9999999999/99999999999"}) {
    EXPECT_THROW(ParseShard(bad), InputError) << bad;
  }
}

TEST(ShardTest, SlicesArePromptIndexModuloCount) {
  EXPECT_EQ(ShardPromptIndices(10, {1, 4}), (std::vector<int64_t>{1, 5, 9}));
  EXPECT_EQ(ShardPromptIndices(2, {3, 4}), std::vector<int64_t>{});
  EXPECT_TRUE(InShard(7, {3, 4}));
  EXPECT_FALSE(InShard(7, {2, 4}));
  // Every prompt lands in exactly one shard.
  for (int64_t count = 1; count <= 5; ++count) {
    std::vector<int> hits(11, 0);
    for (int64_t i = 0; i < count; ++i) {
      for (int64_t p : ShardPromptIndices(11, {i, count})) ++hits[static_cast<size_t>(p)];
    }
    EXPECT_EQ(hits, std::vector<int>(11, 1)) << count;
  }
}

TEST(ShardTest, ShardInfoRoundTrip) {
  TempDir dir;
  EXPECT_FALSE(ReadShardInfo(dir.path()).has_value());
  WriteShardInfo(dir.path(), {1, 3}, 7);
  std::optional<ShardInfo> info = ReadShardInfo(dir.path());
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->shard.index, 1);
  EXPECT_EQ(info->shard.count, 3);
  EXPECT_EQ(info->num_prompts, 7);
  EXPECT_EQ(info->prompt_indices, (std::vector<int64_t>{1, 4}));
}

// The shards of the fixture run with `num_prompts` prompts over `count` machines.
std::vector<ShardOutputs> MakeShards(const FixtureOptions& options, int64_t count) {
  std::vector<ShardOutputs> shards;
  for (int64_t i = 0; i < count; ++i) {
    FixtureOptions shard_options = options;
    shard_options.created_utc = "2024-05-01T12:0" + std::to_string(i) + ":00Z";
    ShardSpec spec{i, count};
    std::vector<int64_t> prompts = ShardPromptIndices(options.num_prompts, spec);
    shards.push_back({"shard" + std::to_string(i), MakeRunOutputsForPrompts(shard_options, prompts),
                      ShardInfo{spec, options.num_prompts, prompts}});
  }
  return shards;
}

nlohmann::json WithoutTimestamp(const compare::Summary& summary) {
  nlohmann::json json = compare::ToJson(summary);
  json.erase("created_utc");
  json.erase("run_id");  // each run (and the merge) has its own
  return json;
}

void ExpectSameRun(const compare::RunOutputs& merged, const compare::RunOutputs& whole) {
  EXPECT_EQ(WithoutTimestamp(merged.summary), WithoutTimestamp(whole.summary))
      << "merged:\n" << WithoutTimestamp(merged.summary).dump(1).substr(0, 3000);
  EXPECT_EQ(compare::StepsToJsonl(merged.steps), compare::StepsToJsonl(whole.steps));
}

TEST(MergeTest, ShardsMergeIntoTheUnshardedRun) {
  FixtureOptions options;
  options.num_prompts = 7;
  options.divergences = {{{1, 1}, {5, "rounding"}}, {{4, 1}, {2, "real"}}, {{6, 0}, {9, "real"}}};
  compare::RunOutputs whole = MakeRunOutputs(options);
  for (int64_t count : {1, 2, 3, 7, 9}) {  // 9 > 7 prompts: shards 7 and 8 run nothing
    std::vector<ShardOutputs> shards = MakeShards(options, count);
    compare::RunOutputs merged = MergeShards(shards);
    ExpectSameRun(merged, whole);
    EXPECT_EQ(merged.summary.created_utc,
              shards.back().outputs.summary.created_utc);  // the latest shard's
    std::reverse(shards.begin(), shards.end());  // the order shards are given in does not matter
    ExpectSameRun(MergeShards(shards), whole);
  }
}

TEST(MergeTest, ThePairAggregatesAreRecomputed) {
  FixtureOptions options;
  options.num_prompts = 4;
  std::vector<ShardOutputs> shards = MakeShards(options, 2);
  // Each shard's pair aggregate covers only its own prompts; the merge must not keep them.
  EXPECT_NE(shards[0].outputs.summary.pairs[1].mean_kl,
            MakeRunOutputs(options).summary.pairs[1].mean_kl);
  compare::RunOutputs merged = MergeShards(shards);
  EXPECT_EQ(merged.summary.pairs[1].identical_fraction,
            MakeRunOutputs(options).summary.pairs[1].identical_fraction);
  EXPECT_FALSE(merged.summary.verdict.pass);
  EXPECT_EQ(merged.summary.verdict.failures.size(), 2u);
}

TEST(MergeTest, RefusesOverlapsGapsAndDisagreements) {
  FixtureOptions options;
  options.num_prompts = 6;
  std::vector<ShardOutputs> shards = MakeShards(options, 3);

  std::vector<ShardOutputs> twice = {shards[0], shards[1], shards[2], shards[1]};
  std::string error = ErrorOf([&] { MergeShards(twice); });
  EXPECT_NE(error.find("shard 1/3 given twice: shard1 and shard1"), std::string::npos) << error;
  EXPECT_NE(error.find("run p1/original@fp32/converted@fp32 is in two shards"), std::string::npos)
      << error;

  error = ErrorOf([&] { MergeShards({shards[0], shards[2]}); });
  EXPECT_NE(error.find("missing shard(s) 1 of 3"), std::string::npos) << error;
  EXPECT_NE(error.find("no shard ran prompt(s) 1, 4"), std::string::npos) << error;

  std::vector<ShardOutputs> disagree = shards;
  disagree[2].outputs.summary.settings.max_new_tokens = 64;
  error = ErrorOf([&] { MergeShards(disagree); });
  EXPECT_NE(error.find("shard0 and shard2 disagree on settings"), std::string::npos) << error;

  disagree = shards;
  disagree[1].outputs.summary.case_ref.name = "other";
  EXPECT_NE(ErrorOf([&] { MergeShards(disagree); }).find("disagree on case.name"),
            std::string::npos);

  disagree = shards;
  disagree[1].outputs.summary.models["original"].variants = "something else";
  EXPECT_NE(ErrorOf([&] { MergeShards(disagree); }).find("disagree on models"), std::string::npos);

  // Machine-dependent fields may differ: thread count, the path of a model converted per shard.
  std::vector<ShardOutputs> machines = shards;
  machines[1].outputs.summary.settings.num_threads = 64;
  machines[2].outputs.summary.models["converted"].path = "elsewhere/models/converted";
  EXPECT_NO_THROW(MergeShards(machines));

  std::vector<ShardOutputs> mixed = shards;
  mixed[0].info.reset();
  EXPECT_NE(ErrorOf([&] { MergeShards(mixed); }).find("some shard directories have shard.json"),
            std::string::npos);

  std::vector<ShardOutputs> wrong_slice = shards;
  wrong_slice[0].outputs = MakeRunOutputsForPrompts(options, {0, 1});  // prompt 1 is shard 1's
  error = ErrorOf([&] { MergeShards(wrong_slice); });
  EXPECT_NE(error.find("has prompt 1, which is not in shard 0/3"), std::string::npos) << error;
}

TEST(MergeTest, WithoutShardInfoGapsInThePromptsAreStillFound) {
  FixtureOptions options;
  options.num_prompts = 6;
  std::vector<ShardOutputs> shards = MakeShards(options, 3);
  for (ShardOutputs& shard : shards) shard.info.reset();
  EXPECT_NO_THROW(MergeShards(shards));
  std::string error = ErrorOf([&] { MergeShards({shards[0], shards[2]}); });
  EXPECT_NE(error.find("no shard ran prompt(s) 1, 4"), std::string::npos) << error;

  // A pair missing a prompt that the other pair has.
  std::vector<ShardOutputs> partial = shards;
  compare::Summary& s = partial[0].outputs.summary;
  s.pairs[1].runs.erase(s.pairs[1].runs.begin());
  s.runs.erase(std::find_if(s.runs.begin(), s.runs.end(), [](const compare::Run& r) {
    return r.id == "p0/original@fp16/converted@fp16";
  }));
  error = ErrorOf([&] { MergeShards(partial); });
  EXPECT_NE(error.find("pair original@fp16/converted@fp16 has no run for prompt(s) 0"),
            std::string::npos)
      << error;
}

TEST(MergeCliTest, MergesShardDirectoriesAndWritesTheReports) {
  TempDir dir;
  FixtureOptions options;
  options.num_prompts = 5;
  std::vector<ShardOutputs> shards = MakeShards(options, 2);
  std::string dirs;
  for (const ShardOutputs& shard : shards) {
    std::string shard_dir = dir.path() + "/" + shard.name;
    compare::WriteRunOutputs(shard_dir, shard.outputs);
    WriteShardInfo(shard_dir, shard.info->shard, shard.info->num_prompts);
    dirs += " " + shard_dir;
  }
  std::string output;
  // The fixture's fp16 pair fails its max_kl gate: merge exits 1 like `parity run`.
  EXPECT_EQ(RunCommand(ParityCli() + " merge" + dirs + " --out " + dir.path() + "/merged", &output),
            1)
      << output;
  compare::RunOutputs merged = compare::ReadRunOutputs(dir.path() + "/merged");
  ExpectSameRun(merged, MakeRunOutputs(options));
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/merged/report.html"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/merged/shard.json"));

  EXPECT_EQ(RunCommand(ParityCli() + " merge " + dir.path() + "/shard0 --out " + dir.path() +
                           "/partial",
                       &output),
            2)
      << output;
  EXPECT_NE(output.find("missing shard(s) 1 of 2"), std::string::npos) << output;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/partial/summary.json"));
}

// The real thing: `parity run --shard i/N` on the trained fixture, merged, against the unsharded
// run. Greedy decoding on the CPU is deterministic, so the steps must agree bit for bit; only the
// wall times (elapsed_s, created_utc) may differ.
TEST(MergeCliTest, ShardedFixtureRunMergesIntoTheUnshardedRun) {
  TempDir dir;
  std::string case_path = dir.path() + "/sharded.json";
  WriteFileText(case_path, R"({
    "name": "sharded",
    "models": {"original": {"path": ")" + std::string(PARITY_SOURCE_DIR) +
                               R"(/cases/fixtures/internlm2-tiny"}},
    "prompts": [{"tokens": [1, 300, 301]}, {"tokens": [1, 500, 20, 7]}, {"tokens": [1, 42]},
                "This program is free software"],
    "pairs": [{"a": "original@fp32", "b": "original@bf16"}],
    "max_new_tokens": 8
  })");
  std::string output;
  auto run = [&](const std::string& out, const std::string& extra) {
    int code = RunCommand(ParityCli() + " run " + case_path + " --out " + out + extra, &output);
    EXPECT_TRUE(code == 0 || code == 1) << output;
  };
  run(dir.path() + "/whole", "");
  run(dir.path() + "/s0", " --shard 0/2");
  run(dir.path() + "/s1", " --shard 1/2");
  ASSERT_TRUE(ReadShardInfo(dir.path() + "/s1").has_value());
  int code = RunCommand(ParityCli() + " merge " + dir.path() + "/s1 " + dir.path() + "/s0 --out " +
                            dir.path() + "/merged",
                        &output);
  ASSERT_TRUE(code == 0 || code == 1) << output;

  compare::RunOutputs whole = compare::ReadRunOutputs(dir.path() + "/whole");
  compare::RunOutputs merged = compare::ReadRunOutputs(dir.path() + "/merged");
  ASSERT_EQ(whole.summary.runs.size(), 4u);
  EXPECT_EQ(parity::testing::WithoutWallTimes(merged.summary),
            parity::testing::WithoutWallTimes(whole.summary));
  EXPECT_EQ(compare::StepsToJsonl(merged.steps), compare::StepsToJsonl(whole.steps));
  EXPECT_EQ(code, whole.summary.verdict.pass ? 0 : 1);
}

}  // namespace
}  // namespace parity::report
