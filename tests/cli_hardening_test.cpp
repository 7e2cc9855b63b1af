// The command line under bad input, reused output directories and signals, as a new user meets it
// (issue 9): output-path problems are bad input (exit 2, naming the path) found before any work;
// inputs are checked before conversion; a reused --out never shows another run's files; SIGINT
// keeps the finished runs; every command has --json.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/compare/run_result.h"
#include "harness/forward/memory_plan.h"
#include "harness/io/checkpoint.h"
#include "harness/model/config.h"
#include "tests/test_util.h"

namespace parity {
namespace {

namespace fs = std::filesystem;

std::string Fixture() { return std::string(PARITY_SOURCE_DIR) + "/cases/fixtures/internlm2-tiny"; }
std::string Cli() { return ParityCli(); }

std::string CopyFixture(const std::string& dir) { return CopyTrainedFixture(dir); }

// A byte-identical copy of the fixture in another directory: `compare A A` is refused (a model
// against itself at one precision), a model against its copy is the bitwise-identical baseline.
std::string Twin() {
  static TempDir dir;
  static const std::string twin = CopyFixture(dir.path() + "/twin");
  return twin;
}

// A copy of the fixture whose config disagrees with its tensors (intermediate size doubled).
std::string BrokenFixture(const std::string& dir) {
  CopyFixture(dir);
  nlohmann::json config = io::ReadJsonFile(dir + "/config.json");
  config["intermediate_size"] = config["intermediate_size"].get<int64_t>() * 2;
  WriteFileText(dir + "/config.json", config.dump(2));
  return dir;
}

// Runs `command`, expecting exit 2 with a one-line "parity: error:" message naming `path`, and no
// internal error.
void ExpectBadInput(const std::string& command, const std::string& path) {
  std::string log;
  EXPECT_EQ(RunCommand(command, &log), 2) << command << "\n" << log;
  EXPECT_NE(log.find("parity: error:"), std::string::npos) << log;
  EXPECT_EQ(log.find("internal error"), std::string::npos) << log;
  if (!path.empty()) {
    EXPECT_NE(log.find(path), std::string::npos) << log;
  }
}

// Runs `command` and returns its stdout alone (stderr, where the logs go, is dropped).
std::string StdoutOf(const std::string& command, int* code) {
  TempDir dir;
  std::string out_file = dir.path() + "/out.txt";
  *code = std::system((command + " > " + out_file + " 2>/dev/null").c_str());
  *code = WIFEXITED(*code) ? WEXITSTATUS(*code) : 255;
  return ReadFileText(out_file);
}

TEST(CliOutputPaths, AnOutputPathThatIsAFileIsBadInput) {
  TempDir dir;
  const std::string file = dir.path() + "/a-file";
  WriteFileText(file, "x");
  ExpectBadInput(Cli() + " compare " + Fixture() + " " + Twin() +
                     " --prompt-tokens 1,2 --max-new-tokens 2 --out " + file, file);
  ExpectBadInput(Cli() + " run " + std::string(PARITY_SOURCE_DIR) +
                     "/cases/internlm2-tiny.json --out " + file, file);
  ExpectBadInput(Cli() + " convert internlm2-to-llama " + Fixture() + " " + file, file);
  ExpectBadInput(Cli() + " make-fixture " + file, file);
  ExpectBadInput(Cli() + " localize " + Fixture() + " " + Twin() +
                     " --tokens 1,2 --max-new-tokens 2 --out " + file, file);
  ExpectBadInput(Cli() + " explain " + Fixture() + " " + Twin() +
                     " --tokens 1,2 --max-new-tokens 2 --out " + file, file);
  // A directory nobody can create (even root: /proc refuses new entries).
  ExpectBadInput(Cli() + " compare " + Fixture() + " " + Twin() +
                     " --prompt-tokens 1,2 --max-new-tokens 2 --out /proc/parity-no/out",
                 "/proc/parity-no/out");
}

TEST(CliOutputPaths, AReadOnlyOutputDirectoryIsFoundBeforeDecoding) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes into read-only directories";
  TempDir dir;
  const std::string out = dir.path() + "/ro";
  fs::create_directories(out);
  fs::permissions(out, fs::perms::owner_read | fs::perms::owner_exec);
  ExpectBadInput(Cli() + " compare " + Fixture() + " " + Twin() +
                     " --prompt-tokens 1,2 --max-new-tokens 2 --out " + out, out);
  fs::permissions(out, fs::perms::owner_all);
}

TEST(CliInputs, TokenIdsAndDeviceAreCheckedBeforeAnyConversion) {
  TempDir dir;
  const std::string cache = dir.path() + "/cache";
  const std::string case_file = dir.path() + "/case.json";
  nlohmann::json c = {{"name", "bad-ids"},
                      {"models",
                       {{"original", {{"path", Fixture()}}},
                        {"converted", {{"convert_from", "original"}}}}},
                      {"prompts", {{{"tokens", {1, 999999}}}}},
                      {"pairs", {{{"a", "original"}, {"b", "converted"}}}},
                      {"max_new_tokens", 2}};
  WriteFileText(case_file, c.dump());
  const std::string out = dir.path() + "/out";
  ExpectBadInput(Cli() + " run " + case_file + " --out " + out + " --cache-dir " + cache,
                 "999999");
  EXPECT_FALSE(fs::exists(cache)) << "converted before checking the prompt";
  EXPECT_FALSE(fs::exists(out + "/models"));
  ExpectBadInput(Cli() + " run " + case_file + " --out " + out + " --cache-dir " + cache +
                     " --device cuda:0", "");
  EXPECT_FALSE(fs::exists(cache));
  ExpectBadInput(Cli() + " explain " + case_file + " --cache-dir " + cache, "999999");
  EXPECT_FALSE(fs::exists(cache)) << "explain converted before checking the prompt";
}

TEST(CliInputs, MaxNewTokensZeroSaysWhatIsExpected) {
  std::string log;
  EXPECT_EQ(RunCommand(Cli() + " compare " + Fixture() + " " + Twin() +
                           " --prompt-tokens 1 --max-new-tokens 0 --out /tmp/x", &log), 2);
  EXPECT_NE(log.find("at least 1, got 0"), std::string::npos) << log;
  EXPECT_LT(log.size(), 300u) << log;  // not 300 digits of DBL_MAX
}

// --cuda-graphs auto|off (run and compare) and a case's "cuda_graphs": recorded in
// summary.json's settings; on the CPU either way the synchronous loop runs ("eager: cpu ...").
TEST(CliInputs, CudaGraphsIsAutoOrOffAndRecorded) {
  TempDir dir;
  auto settings_of = [&](const std::string& command, const std::string& out) {
    std::string log;
    EXPECT_EQ(RunCommand(command + " --out " + out, &log), 0) << command << "\n" << log;
    const compare::Summary summary = compare::ReadRunOutputs(out).summary;
    EXPECT_FALSE(summary.runs.empty());
    for (const auto& run : summary.runs) {
      EXPECT_EQ(run.engine_a, "eager: cpu (synchronous loop)");
      EXPECT_EQ(run.engine_b, "eager: cpu (synchronous loop)");
    }
    return summary.settings.cuda_graphs;
  };
  const std::string compare = Cli() + " compare " + Fixture() + " " + Twin() +
                              " --prompt-tokens 1,2 --max-new-tokens 2";
  EXPECT_EQ(settings_of(compare, dir.path() + "/default"), "auto");
  EXPECT_EQ(settings_of(compare + " --cuda-graphs off", dir.path() + "/off"), "off");
  const std::string run = "cd " + std::string(PARITY_SOURCE_DIR) + " && " + Cli() +
                          " run cases/internlm2-tiny.json --max-new-tokens 1";
  EXPECT_EQ(settings_of(run, dir.path() + "/run-default"), "auto");
  EXPECT_EQ(settings_of(run + " --cuda-graphs off", dir.path() + "/run-off"), "off");
  ExpectBadInput(compare + " --cuda-graphs on --out " + dir.path() + "/bad",
                 "--cuda-graphs: expected \"auto\" or \"off\", got \"on\"");
  ExpectBadInput(run + " --cuda-graphs never --out " + dir.path() + "/bad",
                 "--cuda-graphs: expected \"auto\" or \"off\", got \"never\"");
  EXPECT_FALSE(fs::exists(dir.path() + "/bad/summary.json"));
}

TEST(CliInputs, ConvertRefusesABrokenSourceAndAForeignDestination) {
  TempDir dir;
  const std::string broken = BrokenFixture(dir.path() + "/broken");
  ExpectBadInput(Cli() + " convert internlm2-to-llama " + broken + " " + dir.path() + "/dst",
                 "disagree with config.json");
  EXPECT_FALSE(fs::exists(dir.path() + "/dst"));
  const std::string dst = dir.path() + "/dst2";
  WriteFileText(dst + "/generation_config.json", "{\"eos_token_id\": 7}");
  ExpectBadInput(Cli() + " convert internlm2-to-llama " + Fixture() + " " + dst,
                 "generation_config.json");
  EXPECT_FALSE(fs::exists(dst + "/config.json"));
}

TEST(CliInputs, InspectAndDiffWeightsSeeAConfigThatDisagreesWithTheTensors) {
  TempDir dir;
  const std::string broken = BrokenFixture(dir.path() + "/broken");
  std::string log;
  EXPECT_EQ(RunCommand(Cli() + " inspect " + broken, &log), 1) << log;
  EXPECT_NE(log.find("WRONG SHAPE"), std::string::npos) << log;
  EXPECT_EQ(RunCommand(Cli() + " inspect " + Fixture(), &log), 0) << log;
  ExpectBadInput(Cli() + " diff-weights " + Fixture() + " " + broken, broken);
}

TEST(CliInputs, CommandLineSlips) {
  std::string log;
  ExpectBadInput(Cli() + " explain " + Fixture() + " --prompt x", "is a directory");
  EXPECT_EQ(RunCommand(Cli() + " nosuch", &log), 2);
  EXPECT_NE(log.find("unknown command 'nosuch'"), std::string::npos) << log;
  EXPECT_EQ(RunCommand(Cli() + " inspect " + Fixture() + " -v", &log), 0) << log;
  ExpectBadInput(Cli() + " localize " + Fixture() + " " + Twin() + " --tokens 1,2 --step 1000",
                 "max_position_embeddings");
}

// The case: explain on one case, then on a case whose original has a changed weight, must
// not reuse the first conversion (mean KL 2.9e-05 instead of 2.9e-13 before the fix).
TEST(CliStaleResults, ExplainNeverReusesAStaleConversion) {
  TempDir dir;
  const std::string src = CopyFixture(dir.path() + "/model");
  const std::string case_file = dir.path() + "/case.json";
  nlohmann::json c = {{"name", "explain-stale"},
                      {"models",
                       {{"original", {{"path", src}}}, {"converted", {{"convert_from", "original"}}}}},
                      {"prompts", {{{"tokens", {1, 300, 400}}}}},
                      {"pairs", {{{"a", "original"}, {"b", "converted"}}}},
                      {"max_new_tokens", 4}};
  WriteFileText(case_file, c.dump());
  const std::string command = Cli() + " explain " + case_file +
                              " --dtype fp32 --variants kv_cache --json --cache-dir " + dir.path() +
                              "/cache --out " + dir.path() + "/explain";
  auto mean_kl = [&] {
    int code = 0;
    std::string out = StdoutOf(command, &code);
    EXPECT_EQ(code, 0) << out;
    return nlohmann::json::parse(out)["runs"][0]["baselines"][0]["stats"]["mean_kl"].get<double>();
  };
  EXPECT_LT(mean_kl(), 1e-9);
  // Scale the final norm's weight in place (same file size), as the 1.02 edit.
  {
    io::Checkpoint checkpoint = io::Checkpoint::Open(src);
    const std::string file = src + "/" + checkpoint.ShardOf("model.norm.weight");
    const auto mtime = fs::last_write_time(file);
    std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
    uint64_t header = 0;
    io.read(reinterpret_cast<char*>(&header), 8);
    io.seekp(static_cast<std::streamoff>(8 + header + checkpoint.Info("model.norm.weight").begin));
    const char scribble[8] = {0x40, 0x3f, 0x40, 0x3f, 0x40, 0x3f, 0x40, 0x3f};
    io.write(scribble, sizeof(scribble));
    io.close();
    fs::last_write_time(file, mtime + std::chrono::seconds(1));
  }
  EXPECT_LT(mean_kl(), 1e-9) << "the conversion of the unchanged model was reused";
}

// Reads OUT/summary.json's run id ("" when absent).
std::string SummaryRunId(const std::string& out) {
  if (!fs::exists(out + "/summary.json")) return "";
  return nlohmann::json::parse(ReadFileText(out + "/summary.json")).value("run_id", "");
}

TEST(CliReusedOut, ARerunReplacesEverythingThePreviousRunLeft) {
  TempDir dir;
  const std::string out = dir.path() + "/out";
  const std::string other = CopyFixture(dir.path() + "/other");
  const std::string compare = " --prompt-tokens 1,300,400 --max-new-tokens 3 --out " + out;
  std::string log;
  ASSERT_EQ(RunCommand(Cli() + " compare " + Fixture() + " " + Twin() + compare, &log), 0)
      << log;
  const std::string first = SummaryRunId(out);
  EXPECT_FALSE(first.empty());
  ASSERT_EQ(RunCommand(Cli() + " localize " + Fixture() + " " + Twin() +
                           " --tokens 1,300,400 --max-new-tokens 3 --out " + out, &log), 0)
      << log;
  ASSERT_EQ(RunCommand(Cli() + " report " + out, &log), 0) << log;
  EXPECT_NE(ReadFileText(out + "/report.md").find("## Localization"), std::string::npos);
  EXPECT_NE(ReadFileText(out + "/report.md").find("run " + first), std::string::npos);

  // Bad input (a token outside the vocabulary) is refused before the previous run is touched.
  ExpectBadInput(Cli() + " compare " + Fixture() + " " + Twin() +
                     " --prompt-tokens 1,999999 --max-new-tokens 3 --out " + out, "999999");
  EXPECT_EQ(SummaryRunId(out), first);
  EXPECT_TRUE(fs::exists(out + "/localize.json"));
  // Other models, hence another default case name: refused without --replace.
  ExpectBadInput(Cli() + " compare " + Fixture() + " " + other + compare, out);
  EXPECT_EQ(SummaryRunId(out), first);
  // A directory holding someone else's files is refused whatever the flags.
  TempDir foreign;
  WriteFileText(foreign.path() + "/notes.txt", "mine");
  ExpectBadInput(Cli() + " compare " + Fixture() + " " + other +
                     " --prompt-tokens 1 --max-new-tokens 1 --replace --out " + foreign.path(),
                 "notes.txt");

  ASSERT_EQ(RunCommand(Cli() + " compare " + Fixture() + " " + other + compare + " --replace",
                       &log), 0) << log;
  const std::string second = SummaryRunId(out);
  EXPECT_NE(second, first);
  EXPECT_FALSE(fs::exists(out + "/localize.json")) << "the previous run's localization survived";
  EXPECT_EQ(ReadFileText(out + "/report.md").find("## Localization"), std::string::npos);
  nlohmann::json run = nlohmann::json::parse(ReadFileText(out + "/run.json"));
  EXPECT_EQ(run["run_id"], second);
  EXPECT_EQ(run["state"], "finished");

  // A localize.json of another run (copied in) is not shown beside this one.
  nlohmann::json stale = {{"run_id", first}, {"a", "x"}, {"b", "y"}, {"points", nlohmann::json::array()}};
  WriteFileText(out + "/localize.json", stale.dump());
  ASSERT_EQ(RunCommand(Cli() + " report " + out, &log), 0) << log;
  EXPECT_NE(ReadFileText(out + "/report.md").find("not to this run"), std::string::npos);
}

TEST(CliReusedOut, CompareNamesItsCaseAfterItsModels) {
  TempDir dir;
  const std::string other = CopyFixture(dir.path() + "/other");
  auto name_of = [&](const std::string& b, const std::string& extra) {
    const std::string out = dir.path() + "/o" + std::to_string(std::rand());
    std::string log;
    EXPECT_EQ(RunCommand(Cli() + " compare " + Fixture() + " " + b +
                             " --prompt-tokens 1,2 --max-new-tokens 1 --out " + out + extra, &log),
              0) << log;
    return compare::ReadRunOutputs(out).summary.case_ref.name;
  };
  const std::string same = name_of(Twin(), "");
  EXPECT_EQ(name_of(Twin(), ""), same);  // stable
  EXPECT_NE(name_of(other, ""), same);      // another pair of models, another name
  EXPECT_NE(same, "compare");
  EXPECT_EQ(name_of(other, " --name nightly-x"), "nightly-x");
}

TEST(CliReusedOut, RunRecordsTheCasePathAbsolute) {
  TempDir dir;
  std::string log;
  const std::string out = dir.path() + "/out";
  ASSERT_EQ(RunCommand("cd " + std::string(PARITY_SOURCE_DIR) + " && " + Cli() +
                           " run cases/internlm2-tiny.json --max-new-tokens 1 --out " + out, &log),
            0) << log;
  const auto path = compare::ReadRunOutputs(out).summary.case_ref.path;
  ASSERT_TRUE(path.has_value());
  EXPECT_TRUE(fs::path(*path).is_absolute()) << *path;
  EXPECT_TRUE(fs::exists(*path)) << *path;
}

// Starts `command` with stdout and stderr into `log`; returns its pid.
pid_t Spawn(const std::string& command, const std::string& log) {
  pid_t pid = ::fork();
  if (pid == 0) {
    const std::string line = "exec " + command + " > '" + log + "' 2>&1";
    ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// Waits until `predicate` holds (polling) or `seconds` pass, times PARITY_TEST_TIME_SCALE (set by the
// sanitizer scripts: an instrumented `parity` child runs several times slower).
template <typename Predicate>
bool WaitFor(Predicate predicate, double seconds) {
  const char* text = std::getenv("PARITY_TEST_TIME_SCALE");
  const double scale = text != nullptr ? std::atof(text) : 1;
  if (scale > 1) seconds *= scale;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return predicate();
}

int WaitExit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A comparison long enough to interrupt: 4 prompts x 3 precisions x 200 steps, teacher-forced so
// that no EOS ends a run early.
std::string LongCompare(const std::string& out) {
  return Cli() + " compare " + Fixture() + " " + Twin() +
         " --prompt-tokens 1,300 --prompt-tokens 1,301 --prompt-tokens 1,302 --prompt-tokens "
         "1,303 --dtypes fp32,bf16,fp16 --mode teacher_forced --max-new-tokens 200 --out " + out;
}

// Starts `command` (writing into `out`), sends SIGINT once its log shows `marker`, and checks what
// every interrupted run leaves: exit 130, "INTERRUPTED" in the log and the report, the summary and
// run.json marked interrupted. Returns the outputs and, in `text`, the log.
compare::RunOutputs Interrupt(const std::string& command, const std::string& out,
                              const std::string& log, const std::string& marker,
                              std::string* text) {
  pid_t pid = Spawn(command, log);
  EXPECT_TRUE(WaitFor([&] { return ReadFileText(log).find(marker) != std::string::npos; }, 120))
      << ReadFileText(log);
  ::kill(pid, SIGINT);
  EXPECT_EQ(WaitExit(pid), 130) << ReadFileText(log);
  *text = ReadFileText(log);
  EXPECT_NE(text->find("INTERRUPTED"), std::string::npos) << *text;
  EXPECT_NE(ReadFileText(out + "/report.md").find("INTERRUPTED"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(ReadFileText(out + "/run.json"))["state"], "interrupted");
  compare::RunOutputs outputs = compare::ReadRunOutputs(out);
  EXPECT_TRUE(outputs.summary.interrupted);
  return outputs;
}

TEST(CliSignals, SigintKeepsTheFinishedRunsAndExits130) {
  TempDir dir;
  const std::string out = dir.path() + "/out";
  std::string text;
  compare::RunOutputs outputs =
      Interrupt(LongCompare(out), out, dir.path() + "/log.txt", "[1/12]", &text);
  EXPECT_NE(text.find("interrupted"), std::string::npos) << text;
  EXPECT_GE(outputs.summary.runs.size(), 1u);
  EXPECT_LT(outputs.summary.runs.size(), 12u);
  for (const compare::Run& run : outputs.summary.runs) EXPECT_EQ(run.metrics.steps, 200) << run.id;
  // An interrupted run is no baseline.
  std::string save_log;
  EXPECT_EQ(RunCommand(Cli() + " baseline save " + out + " --store " + dir.path() + "/store",
                       &save_log), 2) << save_log;
}

// The same with the lockstep off: a --memory-limit that holds one FP32 model but not two makes
// the pair decode one side after the other (free-running, 4 prompts x 200 steps). A SIGINT once
// side b has finished its second prompt keeps the runs whose two sides are decoded, writes the
// summary and the report marked interrupted and exits 130. (Before: the signal went unnoticed
// until the pair had finished, and the run exited 0 as if nothing had happened.)
TEST(CliSignals, SigintWithSidesDecodedAloneKeepsTheFinishedRunsAndExits130) {
  TempDir dir;
  const std::string out = dir.path() + "/out";
  const model::ModelConfig config =
      model::ParseConfig(io::ReadJsonFile(Fixture() + "/config.json"), Fixture());
  const int64_t one = forward::EstimateFootprint(config, forward::Precision::kFP32, c10::kCPU,
                                                 2 + 200, "original@fp32")
                          .total();
  const std::string limit_gb = fmt::format("{:.9f}", 1.5 * static_cast<double>(one) / 1e9);
  const std::string command = Cli() + " compare " + Fixture() + " " + Twin() +
                              " --prompt-tokens 1,300 --prompt-tokens 1,301 --prompt-tokens 1,302 "
                              "--prompt-tokens 1,303 --dtypes fp32 --max-new-tokens 200 "
                              "--memory-limit " + limit_gb + " --out " + out;
  std::string text;
  compare::RunOutputs outputs = Interrupt(command, out, dir.path() + "/log.txt",
                                          "(side b) decoded alone: prompt 2/4", &text);
  EXPECT_NE(text.find("one side after the other"), std::string::npos) << text;
  EXPECT_GE(outputs.summary.runs.size(), 2u) << text;
  EXPECT_LT(outputs.summary.runs.size(), 4u) << text;
  for (const compare::Run& run : outputs.summary.runs) EXPECT_GT(run.metrics.steps, 0) << run.id;
}

TEST(CliSignals, AKilledRerunNeverLeavesThePreviousSummaryLookingCurrent) {
  TempDir dir;
  const std::string out = dir.path() + "/out", log = dir.path() + "/log.txt";
  std::string first_log;
  ASSERT_EQ(RunCommand(Cli() + " compare " + Fixture() + " " + Twin() +
                           " --prompt-tokens 1,300 --prompt-tokens 1,301 --prompt-tokens 1,302 "
                           "--prompt-tokens 1,303 --max-new-tokens 2 --out " + out, &first_log),
            0) << first_log;
  const std::string first = SummaryRunId(out);
  pid_t pid = Spawn(LongCompare(out), log);
  ASSERT_TRUE(WaitFor([&] {
    return nlohmann::json::parse(ReadFileText(out + "/run.json"), nullptr, false).value("run_id", first) != first;
  }, 60));
  ::kill(pid, SIGKILL);
  WaitExit(pid);
  EXPECT_FALSE(fs::exists(out + "/summary.json"))
      << "the previous run's summary.json is still there, looking current";
  EXPECT_EQ(nlohmann::json::parse(ReadFileText(out + "/run.json"))["state"], "running");
}

TEST(CliJson, EveryRunAndStoreCommandPrintsOneJsonObject) {
  TempDir dir;
  const std::string out = dir.path() + "/out", store = dir.path() + "/store";
  int code = 0;
  auto json_of = [&](const std::string& command) {
    std::string text = StdoutOf(command + " --json", &code);
    nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
    EXPECT_TRUE(json.is_object()) << command << "\n" << text;
    return json;
  };
  nlohmann::json compare = json_of(Cli() + " compare " + Fixture() + " " + Twin() +
                                   " --prompt-tokens 1,2 --max-new-tokens 2 --out " + out);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(compare["pass"], true);
  EXPECT_EQ(compare["runs"], 1);
  EXPECT_TRUE(fs::exists(compare["summary"].get<std::string>()));
  int64_t shard_runs = 0;
  for (const char* shard : {"0/2", "1/2"}) {
    nlohmann::json run = json_of(Cli() + " run " + std::string(PARITY_SOURCE_DIR) +
                                 "/cases/internlm2-tiny.json --max-new-tokens 1 --shard " + shard +
                                 " --out " + dir.path() + "/shard" + shard[0]);
    EXPECT_EQ(run["case"], "internlm2-tiny");
    shard_runs += run["runs"].get<int64_t>();
  }
  EXPECT_TRUE(json_of(Cli() + " report " + out).contains("report_html"));
  EXPECT_EQ(json_of(Cli() + " baseline save " + out + " --store " + store)["saved"], true);
  EXPECT_EQ(json_of(Cli() + " baseline record " + out + " --store " + store)["records"], 1);
  EXPECT_TRUE(json_of(Cli() + " drift " + out + " --store " + store).is_object());
  EXPECT_EQ(json_of(Cli() + " trend --store " + store)["records"], 2);
  EXPECT_EQ(json_of(Cli() + " merge " + dir.path() + "/shard0 " + dir.path() + "/shard1 --out " +
                    dir.path() + "/merged")["runs"], shard_runs);
  EXPECT_TRUE(json_of(Cli() + " cache list").contains("entries"));
}

}  // namespace
}  // namespace parity
