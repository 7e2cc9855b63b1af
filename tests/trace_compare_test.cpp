// Traces through compare, end to end on the trained fixture (cases/fixtures/internlm2-tiny):
// --save-traces / --save-kld-base write each side into OUT (listed in summary.json); a saved trace
// read back as side B against the same model gives max KL 0 and no divergence (free mode: the model
// side decodes alone, the same computation as the run that wrote it); teacher-forced, the model
// follows the trace's stream; a top-k trace gives the metrics top-k allows and names the rest as
// unavailable (and a flip planted in it is found at its step, never called real); a llama.cpp
// KLD-base file written by compare reads back with the same statistics and stands as a side; a vLLM
// JSON made from the same logits imports and compares clean.
#include <cmath>
#include <filesystem>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/io/checkpoint.h"
#include "harness/io/kld_base.h"
#include "harness/io/trace.h"
#include "tests/test_util.h"

namespace parity {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

const char* kPrompts = "--prompt-tokens 1,330,1114,395,657,505,1467,285,921,13 "
                       "--prompt-tokens 1,92,1003,44,657,22,1501,19,73,640";

// One compare run with everything saved, shared by the tests (seconds on two cores).
class TraceCompare : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::string output;
    const int rc = RunCommand(fmt::format(
        "{} compare {} {}@bf16 {} --max-new-tokens 16 --save-traces --save-kld-base "
        "--no-fail-on-real-divergence --out {}/saved",
        ParityCli(), TrainedFixtureDir(), TrainedFixtureDir(), kPrompts, dir_->path()), &output);
    ASSERT_EQ(rc, 0) << output;
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string Saved(const std::string& relative) { return dir_->path() + "/saved/" + relative; }
  static std::string Fp32Trace() { return Saved("traces/internlm2-tiny@fp32"); }

  // Runs `compare ARGS --out DIR/NAME`, returns the exit code; output in *log.
  static int Compare(const std::string& args, const std::string& name, std::string* log) {
    return RunCommand(fmt::format("{} compare {} --out {}/{}", ParityCli(), args, dir_->path(), name), log);
  }
  static json Summary(const std::string& name) {
    return io::ReadJsonFile(dir_->path() + "/" + name + "/summary.json");
  }
  static std::vector<json> Steps(const std::string& name) {
    std::vector<json> steps;
    std::istringstream in(ReadFileText(dir_->path() + "/" + name + "/steps.jsonl"));
    for (std::string line; std::getline(in, line);) steps.push_back(json::parse(line));
    return steps;
  }

  static TempDir* dir_;
};
TempDir* TraceCompare::dir_ = nullptr;

TEST_F(TraceCompare, SavesEachSideListedInTheSummary) {
  json summary = io::ReadJsonFile(Saved("summary.json"));
  std::set<std::string> paths;
  for (const json& t : summary["traces"]) paths.insert(t["path"].get<std::string>());
  EXPECT_EQ(paths, (std::set<std::string>{"traces/internlm2-tiny@fp32", "traces/internlm2-tiny@bf16",
                                          "kld-base/internlm2-tiny@fp32.kld",
                                          "kld-base/internlm2-tiny@bf16.kld"}));
  io::Trace trace = io::ReadTrace(Fp32Trace());
  EXPECT_EQ(trace.producer.engine, "parity");
  EXPECT_EQ(trace.producer.dtype, "fp32");
  EXPECT_EQ(trace.producer.device, "cpu");
  EXPECT_EQ(trace.producer.settings["mode"], "free");
  EXPECT_TRUE(trace.full_logits);
  ASSERT_EQ(trace.prompts.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(trace.prompts[i].prompt_tokens, summary["runs"][i]["prompt_tokens"].get<std::vector<int64_t>>());
    EXPECT_EQ(trace.prompts[i].tokens, summary["runs"][i]["tokens_a"].get<std::vector<int64_t>>());
    EXPECT_EQ(trace.prompts[i].logits.size(1), 2048);
  }
  io::Trace bf16 = io::ReadTrace(Saved("traces/internlm2-tiny@bf16"));
  EXPECT_EQ(bf16.producer.dtype, "bf16");
  EXPECT_THAT(bf16.producer.settings["numerics"].get<std::string>(), HasSubstr("bf16"));
}

TEST_F(TraceCompare, SavedTraceAsSideBGivesMaxKlZeroAndNoDivergence) {
  std::string log;
  ASSERT_EQ(Compare(fmt::format("{} {}", TrainedFixtureDir(), Fp32Trace()), "as_b", &log), 0) << log;
  json summary = Summary("as_b");
  ASSERT_EQ(summary["runs"].size(), 2u);
  for (const json& run : summary["runs"]) {
    SCOPED_TRACE(run["id"].get<std::string>());
    EXPECT_EQ(run["metrics"]["max_kl"].get<double>(), 0.0);
    EXPECT_EQ(run["metrics"]["max_abs_logit_diff"].get<double>(), 0.0);
    EXPECT_TRUE(run["first_divergence"].is_null());
    EXPECT_EQ(run["tokens_a"], run["tokens_b"]);
    EXPECT_EQ(run["metrics"]["steps"], 16);
    EXPECT_THAT(run["verdict"]["evidence"]["reason"].get<std::string>(),
                HasSubstr("side B is a recording (trace of parity"));
    EXPECT_TRUE(run["unavailable_metrics"].empty());
  }
  EXPECT_EQ(summary["models"]["internlm2-tiny_fp32"]["architecture"], "trace");
  EXPECT_EQ(summary["runs"][0]["pair"]["b"]["precision"], "fp32");
  // As side A too.
  ASSERT_EQ(Compare(fmt::format("{} {}", Fp32Trace(), TrainedFixtureDir()), "as_a", &log), 0) << log;
  // The summary is held in a local: a range-for over a member of a temporary json reads freed memory
  // (operator[] returns a reference, which does not extend the temporary's life; found by ASan).
  const json as_a = Summary("as_a");
  for (const json& run : as_a["runs"]) EXPECT_EQ(run["metrics"]["max_kl"].get<double>(), 0.0);
}

TEST_F(TraceCompare, CaseFileTakesARecordingAndSavesTraces) {
  const json prompt = {{"tokens", io::ReadTrace(Fp32Trace()).prompts[0].prompt_tokens}};
  const json c = {{"name", "recorded"},
                  {"models", {{"model", {{"path", TrainedFixtureDir()}}}, {"hf", {{"path", Fp32Trace()}}}}},
                  {"prompts", {prompt}},
                  {"max_new_tokens", 16},
                  {"save_traces", true},
                  {"thresholds", {{"max_kl", 0.0}}}};
  const std::string path = dir_->path() + "/recorded.json";
  WriteFileText(path, c.dump(1));
  std::string log;
  ASSERT_EQ(RunCommand(fmt::format("{} run {} --out {}/case", ParityCli(), path, dir_->path()), &log), 0)
      << log;
  json summary = Summary("case");
  ASSERT_EQ(summary["runs"].size(), 1u);
  EXPECT_EQ(summary["runs"][0]["metrics"]["max_kl"].get<double>(), 0.0);
  ASSERT_EQ(summary["traces"].size(), 1u);  // the model side; the recording is not written again
  EXPECT_EQ(summary["traces"][0]["path"], "traces/model@fp32");
  EXPECT_EQ(io::ReadTrace(dir_->path() + "/case/traces/model@fp32").prompts[0].tokens,
            io::ReadTrace(Fp32Trace()).prompts[0].tokens);
}

TEST_F(TraceCompare, TeacherForcedTheModelReadsTheTracesStream) {
  std::string log;
  ASSERT_EQ(Compare(fmt::format("{}@bf16 {} --mode teacher_forced --no-fail-on-real-divergence",
                                TrainedFixtureDir(), Fp32Trace()),
                    "forced", &log),
            0)
      << log;
  json summary = Summary("forced");
  EXPECT_EQ(summary["settings"]["teacher"], "b");  // the recording leads
  io::Trace trace = io::ReadTrace(Fp32Trace());
  std::vector<json> steps = Steps("forced");
  ASSERT_EQ(steps.size(), trace.prompts[0].tokens.size() + trace.prompts[1].tokens.size());
  for (const json& s : steps) EXPECT_TRUE(s["same_context"].get<bool>());
  // The stream both read is the trace's.
  EXPECT_EQ(summary["runs"][0]["tokens_b"].get<std::vector<int64_t>>(), trace.prompts[0].tokens);
  // Teacher-forced with the model as teacher is refused: the recording cannot follow.
  EXPECT_EQ(Compare(fmt::format("{} {} --mode teacher_forced --teacher a", TrainedFixtureDir(), Fp32Trace()),
                    "refused", &log),
            2);
  EXPECT_THAT(log, HasSubstr("must be the teacher"));
}

// A top-5 trace from the FP32 trace's logits, optionally with step `flip` of prompt 0 choosing its
// second-best token.
std::string WriteTopk(const std::string& from, const std::string& dir, int64_t flip) {
  io::Trace trace = io::ReadTrace(from);
  trace.full_logits = false;
  trace.top_k = 5;
  trace.producer.engine = "test top-5";
  for (io::TracePrompt& p : trace.prompts) {
    auto [values, ids] = at::log_softmax(p.logits.to(at::kDouble), -1).topk(5, -1);
    p.topk_ids = ids.contiguous();
    p.topk_logprobs = values.to(at::kFloat).contiguous();
    p.logits = at::Tensor();
  }
  if (flip >= 0) {
    io::TracePrompt& p = trace.prompts[0];
    at::Tensor row = p.topk_ids[flip];
    const int64_t first = row[0].item<int64_t>(), second = row[1].item<int64_t>();
    row[0] = second;
    row[1] = first;
    p.tokens[flip] = second;
  }
  io::WriteTrace(dir, trace);
  return dir;
}

TEST_F(TraceCompare, TopkTraceGivesWhatTopkAllowsAndSaysWhatIsNot) {
  const std::string topk = WriteTopk(Fp32Trace(), dir_->path() + "/topk_trace", -1);
  std::string log;
  ASSERT_EQ(Compare(fmt::format("{} {}", TrainedFixtureDir(), topk), "topk", &log), 0) << log;
  EXPECT_THAT(log, HasSubstr("unavailable"));
  json summary = Summary("topk");
  for (const json& run : summary["runs"]) {
    EXPECT_TRUE(run["metrics"]["max_kl"].is_null());
    EXPECT_TRUE(run["metrics"]["max_abs_logit_diff"].is_null());
    EXPECT_EQ(run["metrics"]["top1_agreement"].get<double>(), 1.0);
    EXPECT_EQ(run["metrics"]["topk_overlap_mean"].get<double>(), 1.0);
    EXPECT_LT(run["metrics"]["max_logprob_diff"].get<double>(), 1e-5);  // FP32 storage of log-probs
    EXPECT_TRUE(run["first_divergence"].is_null());
    EXPECT_EQ(run["verdict"]["kind"], "undetermined");
    std::set<std::string> unavailable;
    for (const json& u : run["unavailable_metrics"]) unavailable.insert(u["metric"].get<std::string>());
    for (const char* metric : {"kl", "js", "max_abs_diff", "rms_diff", "nmse", "cosine", "verdict"}) {
      EXPECT_TRUE(unavailable.count(metric)) << metric;
    }
  }
  for (const json& s : Steps("topk")) {
    EXPECT_TRUE(s["kl"].is_null());
    EXPECT_EQ(s["shared_ids"], 5);
    EXPECT_EQ(s["rank_b_in_a"], 0);
  }
  // A KL gate cannot be checked: it fails, saying why.
  EXPECT_EQ(Compare(fmt::format("{} {} --max-kl 0.1", TrainedFixtureDir(), topk), "topk_gate", &log), 1);
  EXPECT_THAT(log, HasSubstr("cannot be checked"));
}

TEST_F(TraceCompare, FlipPlantedInATopkTraceIsFoundNeverCalledReal) {
  const std::string topk = WriteTopk(Fp32Trace(), dir_->path() + "/topk_flip_trace", 3);
  std::string log;
  ASSERT_EQ(Compare(fmt::format("{} {}", TrainedFixtureDir(), topk), "topk_flip", &log), 0) << log;
  const json run = Summary("topk_flip")["runs"][0];
  ASSERT_FALSE(run["first_divergence"].is_null()) << log;
  const json& d = run["first_divergence"];
  EXPECT_EQ(d["step"], 3);
  EXPECT_EQ(run["metrics"]["first_divergence_step"], 3);
  EXPECT_NE(d["kind"], "real");
  EXPECT_GT(d["flip_gap"].get<double>(), 0);
  std::vector<json> steps = Steps("topk_flip");
  EXPECT_EQ(steps[3]["rank_b_in_a"], 1);  // B chose A's second
  EXPECT_EQ(steps[3]["rank_a_in_b"], 1);
  EXPECT_FALSE(steps[4]["same_context"].get<bool>());
}

TEST_F(TraceCompare, KldBaseRoundTripSameStatistics) {
  const std::string path = Saved("kld-base/internlm2-tiny@fp32.kld");
  io::KldBaseFile read = io::KldBaseFile::Read(path);
  io::Trace trace = io::ReadTrace(Fp32Trace());
  // Layout: n_ctx = 2 (P - 1) = 18, one chunk per prompt, the prompt then the side's own tokens.
  ASSERT_EQ(read.n_ctx, 18);
  ASSERT_EQ(read.n_chunk, 2);
  ASSERT_EQ(read.n_vocab, 2048);
  std::vector<int32_t> tokens;
  for (const io::TracePrompt& p : trace.prompts) {
    tokens.insert(tokens.end(), p.prompt_tokens.begin(), p.prompt_tokens.end());
    tokens.insert(tokens.end(), p.tokens.begin(), p.tokens.begin() + 8);
  }
  EXPECT_EQ(read.tokens, tokens);
  auto logits = [&](int64_t chunk, int64_t position) {
    at::Tensor row = trace.prompts[chunk].logits[position - 9].contiguous();
    return std::vector<float>(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
  };
  // The same logits quantize to the same file, and its statistics read back are the same.
  io::KldBaseFile rebuilt = io::KldBaseFile::FromLogits(18, 2048, tokens, logits);
  EXPECT_EQ(rebuilt.records, read.records);
  io::KldStatistics from_file = io::CompareWithBase(read, logits);
  io::KldStatistics in_memory = io::CompareWithBase(rebuilt, logits);
  EXPECT_EQ(from_file.count, 16);
  EXPECT_EQ(from_file.mean_kld, in_memory.mean_kld);
  EXPECT_EQ(from_file.mean_nll_base, in_memory.mean_nll_base);
  EXPECT_EQ(from_file.same_top, 1.0);
  // Quantization only: log-probs in steps of 16/65535 nats, and llama.cpp's KL skips floored terms.
  EXPECT_LT(from_file.mean_kld, 1e-4);

  // As a side: a teacher-forced recording, so compare follows it; same top-1 everywhere, and the
  // KL is the quantization's plus the 16-nat floor's (at most V e^-16 = 2.3e-4 of probability mass).
  std::string log;
  ASSERT_EQ(Compare(fmt::format("{} {}", TrainedFixtureDir(), path), "kld_side", &log), 0) << log;
  json summary = Summary("kld_side");
  EXPECT_EQ(summary["settings"]["mode"], "teacher_forced");
  for (const json& run : summary["runs"]) {
    EXPECT_EQ(run["metrics"]["top1_agreement"].get<double>(), from_file.same_top);
    EXPECT_EQ(run["metrics"]["steps"], 8);
    EXPECT_LT(run["metrics"]["max_kl"].get<double>(), 1e-3);
    EXPECT_TRUE(run["first_divergence"].is_null());
    // Log-probs, not logits: logit differences are not defined, and the verdict says so.
    EXPECT_TRUE(run["metrics"]["max_abs_logit_diff"].is_null());
    EXPECT_EQ(run["verdict"]["kind"], "undetermined");
    EXPECT_THAT(run["verdict"]["evidence"]["reason"].get<std::string>(), HasSubstr("KLD-base file"));
  }
  EXPECT_EQ(summary["models"]["internlm2-tiny_fp32.kld"]["architecture"], "llama.cpp-kld-base");
  // Free mode is refused: its tokens were given to it.
  EXPECT_EQ(Compare(fmt::format("{} {} --mode free", TrainedFixtureDir(), path), "kld_free", &log), 2);
  EXPECT_THAT(log, HasSubstr("teacher-forced recording"));
}

TEST_F(TraceCompare, VllmJsonFromTheSameLogitsImportsAndComparesClean) {
  io::Trace trace = io::ReadTrace(Fp32Trace());
  json responses = json::array();
  for (const io::TracePrompt& p : trace.prompts) {
    json steps = json::array();
    for (int64_t t = 0; t < static_cast<int64_t>(p.tokens.size()); ++t) {
      auto [values, ids] = at::log_softmax(p.logits[t].to(at::kDouble), -1).topk(5);
      json step = json::object();
      for (int64_t j = 0; j < 5; ++j) {
        step[std::to_string(ids[j].item<int64_t>())] = {{"logprob", values[j].item<double>()},
                                                         {"rank", j + 1}, {"decoded_token", "?"}};
      }
      steps.push_back(step);
    }
    responses.push_back({{"prompt_token_ids", p.prompt_tokens},
                         {"outputs", {{{"index", 0}, {"token_ids", p.tokens}, {"logprobs", steps}}}}});
  }
  const std::string file = dir_->path() + "/vllm.json";
  WriteFileText(file, responses.dump());
  std::string log;
  ASSERT_EQ(RunCommand(fmt::format("{} import-trace --from vllm {} {}/vllm_trace --vocab-size 2048 "
                                   "--dtype fp32 --engine-version test",
                                   ParityCli(), file, dir_->path()), &log), 0) << log;
  ASSERT_EQ(Compare(fmt::format("{} {}/vllm_trace", TrainedFixtureDir(), dir_->path()), "vllm", &log), 0)
      << log;
  const json vllm = Summary("vllm");  // held in a local (see SavedTraceAsSideBGivesMaxKlZero...)
  for (const json& run : vllm["runs"]) {
    EXPECT_EQ(run["metrics"]["top1_agreement"].get<double>(), 1.0);
    EXPECT_TRUE(run["first_divergence"].is_null());
    EXPECT_LT(run["metrics"]["max_logprob_diff"].get<double>(), 1e-5);  // FP32 storage: 6e-8 relative
  }
}

}  // namespace
}  // namespace parity
