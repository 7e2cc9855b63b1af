// Case files: a valid case with every field, the defaults, pair expansion, and validation errors that
// name the file and the field.
#include "harness/compare/case.h"

#include <filesystem>

#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "test_util.h"

namespace parity::compare {
namespace {

using forward::Precision;

Case Parse(const std::string& text, const std::string& path = "cases/x.json") {
  return ParseCase(nlohmann::ordered_json::parse(text), path);
}

// The message of the InputError that parsing `text` throws ("" when it does not throw).
std::string ErrorOf(const std::string& text) {
  try {
    Parse(text);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

const char* kMinimal = R"({
  "name": "tiny",
  "models": {"original": {"path": "fixtures/m"}, "converted": {"convert_from": "original"}},
  "prompts": ["who are you"]
})";

TEST(CaseTest, MinimalCaseGetsDefaults) {
  Case c = Parse(kMinimal);
  EXPECT_EQ(c.name, "tiny");
  ASSERT_EQ(c.models.size(), 2u);
  EXPECT_EQ(c.models[0].label, "original");  // file order, not key order
  EXPECT_EQ(c.models[0].path, "cases/fixtures/m");  // relative to the case file
  EXPECT_EQ(c.models[1].label, "converted");
  EXPECT_EQ(c.models[1].path, "");
  EXPECT_EQ(c.models[1].convert_from, "original");
  ASSERT_EQ(c.prompts.size(), 1u);
  EXPECT_EQ(c.prompts[0].text, "who are you");
  EXPECT_FALSE(c.prompts[0].chat);
  EXPECT_EQ(c.dtypes, (std::vector<forward::PrecisionPolicy>{Precision::kFP32}));
  ASSERT_EQ(c.pairs.size(), 1u);  // default: first model vs second, per dtype
  EXPECT_EQ(SideLabel(c.pairs[0].a), "original@fp32");
  EXPECT_EQ(SideLabel(c.pairs[0].b), "converted@fp32");
  EXPECT_EQ(c.mode, decode::GreedyMode::kFree);
  EXPECT_TRUE(c.teacher_is_a);
  EXPECT_EQ(c.max_new_tokens, 32);
  EXPECT_EQ(c.device, "cpu");
  EXPECT_EQ(c.top_k, 5);
  EXPECT_EQ(c.near_tie_ulps, 4);
  EXPECT_FALSE(c.oracle);
  EXPECT_FALSE(c.thresholds.max_kl.has_value());
  EXPECT_EQ(c.cuda_graphs, decode::GraphMode::kAuto);  // CUDA graphs where the loop can record
}

TEST(CaseTest, CudaGraphsIsAutoOrOff) {
  const std::string base = R"("name": "x", "models": {"o": {"path": "m"}, "c": {"path": "n"}}, "prompts": ["p"])";
  EXPECT_EQ(Parse("{" + base + R"(, "cuda_graphs": "off"})").cuda_graphs, decode::GraphMode::kOff);
  EXPECT_EQ(Parse("{" + base + R"(, "cuda_graphs": "auto"})").cuda_graphs, decode::GraphMode::kAuto);
  // "on" and "pieces" (decode::ParseGraphMode's other words) are not case values.
  EXPECT_EQ(ErrorOf("{" + base + R"(, "cuda_graphs": "on"})"),
            "cases/x.json: cuda_graphs: expected \"auto\" or \"off\", got \"on\"");
  EXPECT_EQ(ErrorOf("{" + base + R"(, "cuda_graphs": "pieces"})"),
            "cases/x.json: cuda_graphs: expected \"auto\" or \"off\", got \"pieces\"");
  EXPECT_EQ(ErrorOf("{" + base + R"(, "cuda_graphs": false})"),
            "cases/x.json: cuda_graphs: expected a string, got false");
  EXPECT_EQ(ParseCudaGraphs("off", "--cuda-graphs"), decode::GraphMode::kOff);
  try {
    ParseCudaGraphs("no", "--cuda-graphs");
    ADD_FAILURE() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "--cuda-graphs: expected \"auto\" or \"off\", got \"no\"");
  }
}

TEST(CaseTest, FullCaseExpandsPairsAndAppliesThresholds) {
  Case c = Parse(R"({
    "name": "full", "description": "every field",
    "models": {"original": {"path": "/abs/m"}, "converted": {"path": "../c"}},
    "prompts": ["plain", {"text": "hi", "chat": true}, {"tokens": [1, 5, 9]}],
    "chat": false,
    "dtypes": ["fp32", "fp16", "bf16", "fp64"],
    "pairs": [{"a": "original", "b": "converted"},
              {"a": "original", "b": "converted", "dtype": "bf16", "thresholds": {"max_kl": null, "mean_kl": 0.5}},
              {"a": "original@fp32", "b": "original@fp16", "thresholds": {"fail_on_real_divergence": false}}],
    "mode": "teacher_forced", "teacher": "b", "max_new_tokens": 64, "device": "cuda:1",
    "seed": 7, "top_k": 10, "near_tie_ulps": 8,
    "thresholds": {"max_kl": 0.01, "fail_on_real_divergence": true, "min_first_divergence_step": 3}
  })");
  EXPECT_EQ(c.models[0].path, "/abs/m");
  EXPECT_EQ(c.models[1].path, "c");  // cases/../c
  EXPECT_TRUE(c.prompts[1].chat);
  EXPECT_EQ(c.prompts[2].tokens, (std::vector<int64_t>{1, 5, 9}));
  EXPECT_FALSE(c.prompts[2].text.has_value());
  EXPECT_TRUE(c.oracle);  // fp64 in dtypes
  // 4 (one per dtype) + 1 + 1.
  ASSERT_EQ(c.pairs.size(), 6u);
  EXPECT_EQ(SideLabel(c.pairs[3].b), "converted@fp64");
  EXPECT_EQ(SideLabel(c.pairs[4].a), "original@bf16");
  EXPECT_EQ(SideLabel(c.pairs[5].a), "original@fp32");
  EXPECT_EQ(SideLabel(c.pairs[5].b), "original@fp16");
  // Case gates everywhere, overridden per pair; null switches a gate off.
  EXPECT_EQ(c.pairs[0].thresholds.max_kl, 0.01);
  EXPECT_FALSE(c.pairs[4].thresholds.max_kl.has_value());
  EXPECT_EQ(c.pairs[4].thresholds.mean_kl, 0.5);
  EXPECT_TRUE(c.pairs[4].thresholds.fail_on_real_divergence);
  EXPECT_FALSE(c.pairs[5].thresholds.fail_on_real_divergence);
  EXPECT_EQ(c.pairs[5].thresholds.min_first_divergence_step, 3);
  EXPECT_EQ(c.mode, decode::GreedyMode::kTeacherForced);
  EXPECT_FALSE(c.teacher_is_a);
  EXPECT_EQ(c.max_new_tokens, 64);
  EXPECT_EQ(c.device, "cuda:1");
  EXPECT_EQ(c.seed, 7u);
  EXPECT_EQ(c.top_k, 10);
  EXPECT_EQ(c.near_tie_ulps, 8);
}

TEST(CaseTest, OracleCanBeSwitchedExplicitly) {
  Case c = Parse(R"({"name": "o", "models": {"a": {"path": "a"}, "b": {"path": "b"}},
                     "prompts": ["x"], "dtypes": ["fp16", "fp64"], "oracle": false})");
  EXPECT_FALSE(c.oracle);
  Case d = Parse(R"({"name": "o", "models": {"a": {"path": "a"}, "b": {"path": "b"}},
                     "prompts": ["x"], "oracle": true})");
  EXPECT_TRUE(d.oracle);
}

// The drift gates belong to `parity drift` (harness/report checks them); the case parser lets them
// through at case level only, where drift reads them.
TEST(CaseTest, DriftThresholdsAreAcceptedAtCaseLevelOnly) {
  const std::string base = R"("name": "x", "models": {"o": {"path": "m"}, "c": {"path": "n"}}, "prompts": ["p"])";
  EXPECT_EQ(ErrorOf("{" + base + R"(, "thresholds": {"max_kl": 1, "drift": {"kl_factor": 3}}})"), "");
  EXPECT_NE(ErrorOf("{" + base + R"(, "pairs": [{"a": "o", "b": "c", "thresholds": {"drift": {}}}]})")
                .find("pairs[0].thresholds.drift: unknown field"),
            std::string::npos);
}

TEST(CaseTest, ErrorsNameTheFileAndTheField) {
  const std::string base = R"("name": "x", "models": {"o": {"path": "m"}, "c": {"path": "n"}}, "prompts": ["p"])";
  auto with = [&](const std::string& extra) { return "{" + base + ", " + extra + "}"; };
  EXPECT_EQ(ErrorOf(with(R"("pairs": [{"a": "o", "b": "c"}, {"a": "o", "b": "c", "dtype": "fp8"}])")),
            "cases/x.json: pairs[1].dtype: expected fp32 (float32, float), fp16 (float16, half), bf16 (bfloat16) or fp64 (float64, double), got \"fp8\"");
  EXPECT_EQ(ErrorOf(with(R"("max_new_token": 5)")),
            "cases/x.json: max_new_token: unknown field (expected one of name, description, models, "
            "prompts, chat, dtypes, pairs, mode, teacher, max_new_tokens, device, seed, top_k, "
            "near_tie_ulps, oracle, oracle_device, devices, thresholds, save_traces, save_kld_base, "
            "range_watch, saturation_fraction, cuda_graphs)");
  EXPECT_EQ(ErrorOf(with(R"("pairs": [{"a": "orig", "b": "c"}])")),
            "cases/x.json: pairs[0].a: no model labelled \"orig\" (models: o, c)");
  EXPECT_EQ(ErrorOf(with(R"("pairs": [{"a": "o@fp12", "b": "c"}])")),
            "cases/x.json: pairs[0].a: expected fp32 (float32, float), fp16 (float16, half), bf16 (bfloat16) or fp64 (float64, double) after '@', got \"fp12\"");
  EXPECT_EQ(ErrorOf(with(R"("dtypes": ["fp32", "int8"])")),
            "cases/x.json: dtypes[1]: expected fp32 (float32, float), fp16 (float16, half), bf16 (bfloat16) or fp64 (float64, double), got \"int8\"");
  EXPECT_EQ(ErrorOf(with(R"("mode": "beam")")),
            "cases/x.json: mode: expected \"free\" or \"teacher_forced\", got \"beam\"");
  EXPECT_EQ(ErrorOf(with(R"("max_new_tokens": 0)")),
            "cases/x.json: max_new_tokens: expected an integer >= 1, got 0");
  EXPECT_EQ(ErrorOf(with(R"("thresholds": {"max_kl": "small"})")),
            "cases/x.json: thresholds.max_kl: expected a number >= 0, got \"small\"");
  EXPECT_EQ(ErrorOf(with(R"("thresholds": {"max_kld": 1})")).rfind(
                "cases/x.json: thresholds.max_kld: unknown field", 0),
            0u);
  EXPECT_EQ(ErrorOf(with(R"("device": "tpu")")),
            "cases/x.json: device: expected \"cpu\", \"cuda\" or \"cuda:N\", got \"tpu\"");
  EXPECT_EQ(ErrorOf(with(R"("pairs": [{"a": "o@fp32", "b": "o@fp32"}])")),
            "cases/x.json: pairs[0]: compares o@fp32 with itself");
  EXPECT_EQ(ErrorOf(with(R"("pairs": [{"a": "o@fp32", "b": "c@fp16", "dtype": "bf16"}])")),
            "cases/x.json: pairs[0].dtype: both sides name their dtype with '@'; dtype is unused");
  EXPECT_EQ(ErrorOf(with(R"("pairs": [{"a": "o", "c": "c"}])")).find("pairs[0].c: unknown field"),
            std::string("cases/x.json: ").size());
}

TEST(CaseTest, ModelAndPromptErrors) {
  EXPECT_EQ(ErrorOf(R"({"name": "x", "models": {"o": {"path": "m", "convert_from": "o"}}, "prompts": ["p"], "pairs": [{"a": "o@fp32", "b": "o@fp16"}]})"),
            "cases/x.json: models.o: give either path or convert_from, not both (a converted model "
            "is written into the output directory)");
  EXPECT_EQ(ErrorOf(R"({"name": "x", "models": {"o": {"path": "m"}, "c": {"convert_from": "z"}}, "prompts": ["p"]})"),
            "cases/x.json: models.c.convert_from: no model labelled \"z\"");
  EXPECT_EQ(ErrorOf(R"({"name": "x", "models": {"o": {"path": "m"}, "c": {"path": "n"}}, "prompts": [{"tokens": [1, -2]}]})"),
            "cases/x.json: prompts[0].tokens: expected a non-empty array of token ids >= 0, got [1,-2]");
  EXPECT_EQ(ErrorOf(R"({"name": "x", "models": {"o": {"path": "m"}, "c": {"path": "n"}}, "prompts": [{"text": "a", "tokens": [1]}]})"),
            "cases/x.json: prompts[0]: give either text or tokens, not both");
  EXPECT_EQ(ErrorOf(R"({"name": "x", "models": {"o": {"path": "m"}, "c": {"path": "n"}}, "prompts": []})"),
            "cases/x.json: prompts: expected a non-empty array, got []");
  EXPECT_EQ(ErrorOf(R"({"name": "x", "models": {"o": {"path": "m"}, "c": {"path": "n"}, "d": {"path": "k"}}, "prompts": ["p"]})"),
            "cases/x.json: pairs: missing field: required unless exactly two models are given (3 are)");
  EXPECT_EQ(ErrorOf(R"([1, 2])"), "cases/x.json: (top level): expected an object, got [1,2]");
}

TEST(CaseTest, ReportsEveryProblemAtOnce) {
  std::string message = ErrorOf(R"({"models": {"o": {"path": "m"}, "c": {"path": 3}}, "prompts": ["p"], "seed": -1})");
  EXPECT_NE(message.find("cases/x.json: name: missing field"), std::string::npos) << message;
  EXPECT_NE(message.find("cases/x.json: models.c.path: expected a string, got 3"), std::string::npos)
      << message;
  EXPECT_NE(message.find("cases/x.json: seed: expected an integer >= 0, got -1"), std::string::npos)
      << message;
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 2) << message;
}

TEST(CaseTest, LoadCaseReadsAFileAndNamesItInErrors) {
  TempDir dir;
  std::string path = dir.path() + "/bad.json";
  WriteFileText(path, "{\"name\": ");
  try {
    LoadCase(path);
    FAIL() << "expected an error";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ": not valid JSON", 0), 0u) << e.what();
  }
  EXPECT_THROW(LoadCase(dir.path() + "/missing.json"), InputError);
  WriteFileText(path, kMinimal);
  Case c = LoadCase(path);
  EXPECT_EQ(c.models[0].path, dir.path() + "/fixtures/m");
}

TEST(CaseTest, CommittedCasesAreValid) {
  // Every case shipped in cases/ parses (their model paths are checked when they run).
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(PARITY_SOURCE_DIR) + "/cases")) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(LoadCase(entry.path().string()));
    ++count;
  }
  EXPECT_GE(count, 1);
}

}  // namespace
}  // namespace parity::compare
