// The session layer (harness/session): one parser of token ids and precision names, one label
// maker, the conversion cache (reuse exactly when the source is unchanged, atomic entries, clear)
// and the model store (models known by what they are, broken sources refused before conversion).
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/compare/case.h"
#include "harness/core/error.h"
#include "harness/forward/numerics.h"
#include "harness/io/checkpoint.h"
#include "harness/session/conversion_cache.h"
#include "harness/session/inputs.h"
#include "harness/session/model_store.h"
#include "tests/test_util.h"

namespace parity::session {
namespace {

namespace fs = std::filesystem;

std::string Fixture() { return std::string(PARITY_SOURCE_DIR) + "/cases/fixtures/internlm2-tiny"; }

// A private copy of the trained fixture that a test may modify.
std::string CopyFixture(const std::string& dir) { return CopyTrainedFixture(dir); }

// Overwrites `count` bytes of the data of tensor `name` in place (size and header unchanged), as a
// weight edit does, and moves the file's mtime forward by a second so that the change is visible
// whatever the file system's timestamp granularity.
void ScribbleOnTensor(const std::string& dir, const std::string& name) {
  io::Checkpoint checkpoint = io::Checkpoint::Open(dir);
  const std::string file = (fs::path(dir) / checkpoint.ShardOf(name)).string();
  const auto before = fs::last_write_time(file);
  {
    std::fstream out(file, std::ios::in | std::ios::out | std::ios::binary);
    uint64_t header_size = 0;  // the data area starts after the u64 length and the JSON header
    out.read(reinterpret_cast<char*>(&header_size), sizeof(header_size));
    const uint64_t offset = 8 + header_size + checkpoint.Info(name).begin;
    out.seekp(static_cast<std::streamoff>(offset));
    const char bytes[4] = {0x11, 0x22, 0x33, 0x44};
    out.write(bytes, sizeof(bytes));
  }
  fs::last_write_time(file, before + std::chrono::seconds(1));
}

TEST(SessionInputs, OnePrecisionParserForEveryCommand) {
  using forward::Precision;
  EXPECT_EQ(forward::TryParsePrecision("fp16"), Precision::kFP16);
  EXPECT_EQ(forward::TryParsePrecision("float16"), Precision::kFP16);
  EXPECT_EQ(forward::TryParsePrecision("half"), Precision::kFP16);
  EXPECT_EQ(forward::TryParsePrecision("BF16"), Precision::kBF16);
  EXPECT_EQ(forward::TryParsePrecision("bfloat16"), Precision::kBF16);
  EXPECT_EQ(forward::TryParsePrecision("float"), Precision::kFP32);
  EXPECT_EQ(forward::TryParsePrecision("double"), Precision::kFP64);
  EXPECT_EQ(forward::TryParsePrecision("fp8"), std::nullopt);
  // Case files (and `compare --dtypes`, which becomes a case) accept the same names: before the
  // session layer, "float16" was refused there and accepted by `localize --dtype`.
  nlohmann::json json = {{"name", "x"},
                         {"models", {{"o", {{"path", "m"}}}, {"c", {{"path", "n"}}}}},
                         {"prompts", {"p"}},
                         {"dtypes", {"float16", "double", "bfloat16", "float32"}}};
  compare::Case c = compare::ParseCase(json, "x.json");
  ASSERT_EQ(c.dtypes.size(), 4u);
  EXPECT_EQ(c.dtypes[0], Precision::kFP16);
  EXPECT_EQ(c.dtypes[2], Precision::kBF16);
}

TEST(SessionInputs, OneTokenIdParser) {
  EXPECT_EQ(ParseTokenIds("1,2,3", "--tokens"), (std::vector<int64_t>{1, 2, 3}));
  // Spaces around ids were accepted by `localize --tokens` and refused by `compare
  // --prompt-tokens`; now both accept them.
  EXPECT_EQ(ParseTokenIds(" 1, 2 ,3 ", "--prompt-tokens"), (std::vector<int64_t>{1, 2, 3}));
  for (const char* bad : {"", "1,,2", "1,", "a", "1.5", "-1", "1 2"}) {
    try {
      ParseTokenIds(bad, "--tokens");
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("--tokens"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(CheckTokenIds({1, 4096}, 4096, "m", "--tokens"), InputError);
  EXPECT_NO_THROW(CheckTokenIds({0, 4095}, 4096, "m", "--tokens"));
}

TEST(SessionInputs, OneLabelMaker) {
  EXPECT_EQ(ModelLabel("cases/fixtures/internlm2-tiny"), "internlm2-tiny");
  EXPECT_EQ(ModelLabel("cases/fixtures/internlm2-tiny/"), "internlm2-tiny");
  EXPECT_EQ(ModelLabel("models/a@b c"), "a_b_c");
  EXPECT_EQ(DistinctLabels("x/m", "y/m"), std::make_pair(std::string("a"), std::string("b")));
  EXPECT_EQ(DistinctLabels("x/m", "y/n"), std::make_pair(std::string("m"), std::string("n")));
}

// A converter for the cache tests: writes one file naming the source's config content.
struct CountingConverter {
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  ConversionCache::Converter Get() const {
    auto counter = calls;
    return [counter](const std::string& src, const std::string& dst) {
      ++*counter;
      fs::create_directories(dst);
      WriteFileText(dst + "/converted.txt", ReadFileText(src + "/config.json"));
    };
  }
};

TEST(ConversionCacheTest, ReusedExactlyWhileTheSourceIsUnchanged) {
  TempDir dir;
  const std::string src = CopyFixture(dir.path() + "/src");
  ConversionCache cache(dir.path() + "/cache");
  CountingConverter converter;
  bool reused = true;
  const std::string first = cache.Get(src, "test", 1, converter.Get(), &reused);
  EXPECT_FALSE(reused);
  EXPECT_EQ(cache.Get(src, "test", 1, converter.Get(), &reused), first);
  EXPECT_TRUE(reused);
  EXPECT_EQ(*converter.calls, 1);
  // A weight changed in place (same size, same header): a new entry, converted again.
  ScribbleOnTensor(src, "model.norm.weight");
  const std::string second = cache.Get(src, "test", 1, converter.Get(), &reused);
  EXPECT_FALSE(reused);
  EXPECT_NE(second, first);
  EXPECT_EQ(*converter.calls, 2);
  // Another converter revision is another entry too.
  EXPECT_NE(cache.Get(src, "test", 2, converter.Get()), second);
  EXPECT_EQ(cache.List().size(), 3u);
  EXPECT_EQ(cache.Clear(), 3);
  EXPECT_TRUE(cache.List().empty());
}

TEST(ConversionCacheTest, AFailedConversionLeavesNothing) {
  TempDir dir;
  const std::string src = CopyFixture(dir.path() + "/src");
  ConversionCache cache(dir.path() + "/cache");
  auto failing = [](const std::string&, const std::string& dst) {
    fs::create_directories(dst);
    WriteFileText(dst + "/half-written.safetensors", "x");
    throw InputError("boom");
  };
  EXPECT_THROW(cache.Get(src, "test", 1, failing), InputError);
  EXPECT_TRUE(cache.List().empty());
  EXPECT_TRUE(fs::is_empty(dir.path() + "/cache/.tmp"));
}

TEST(ConversionCacheTest, ConcurrentConversionsOfOneSourceGiveOneEntry) {
  TempDir dir;
  const std::string src = CopyFixture(dir.path() + "/src");
  ConversionCache cache(dir.path() + "/cache");
  CountingConverter converter;
  std::vector<std::string> results(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = cache.Get(src, "test", 1, converter.Get()); });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(std::set<std::string>(results.begin(), results.end()).size(), 1u);
  EXPECT_EQ(cache.List().size(), 1u);
  EXPECT_TRUE(fs::is_empty(dir.path() + "/cache/.tmp"));
  EXPECT_EQ(ReadFileText(results[0] + "/converted.txt"), ReadFileText(src + "/config.json"));
}

TEST(ConversionCacheTest, TheCacheDirectoryIsTheUsersChoice) {
  EXPECT_EQ(ResolveCacheDir("/x/y"), "/x/y");
  const char* saved = std::getenv("PARITY_CACHE");
  ::setenv("PARITY_CACHE", "/from/env", 1);
  EXPECT_EQ(ResolveCacheDir(""), "/from/env");
  if (saved != nullptr) {
    ::setenv("PARITY_CACHE", saved, 1);
  } else {
    ::unsetenv("PARITY_CACHE");
  }
}

// The defect behind the stale `explain`: a converted model must follow its source. The old code
// reused OUT/models/<label> whenever a config.json was there.
TEST(ModelStoreTest, AConversionFollowsItsSourcesContent) {
  TempDir dir;
  const std::string src = CopyFixture(dir.path() + "/src");
  const std::string cache = dir.path() + "/cache";
  auto norm_of = [](const StoredModel& model) {
    return model.checkpoint->Get("model.norm.weight").clone();
  };
  at::Tensor before;
  {
    ModelStore store(cache);
    auto converted = store.OpenConverted(src, "internlm2-to-llama");
    EXPECT_FALSE(converted->reused_conversion);
    EXPECT_EQ(converted->config.arch, model::Architecture::kLlama);
    before = norm_of(*converted);
    // The same store hands out the same model; the identity names the conversion and the source.
    EXPECT_EQ(store.OpenConverted(src, "internlm2-to-llama").get(), converted.get());
    EXPECT_NE(converted->identity.find("internlm2-to-llama("), std::string::npos);
  }
  {
    ModelStore store(cache);
    EXPECT_TRUE(store.OpenConverted(src, "internlm2-to-llama")->reused_conversion);
  }
  ScribbleOnTensor(src, "model.norm.weight");
  ModelStore store(cache);
  auto converted = store.OpenConverted(src, "internlm2-to-llama");
  EXPECT_FALSE(converted->reused_conversion);
  at::Tensor source_norm = store.Open(src)->checkpoint->Get("model.norm.weight");
  EXPECT_TRUE(norm_of(*converted).equal(source_norm));
  EXPECT_FALSE(norm_of(*converted).equal(before));
}

TEST(ModelStoreTest, ASourceWhoseTensorsDisagreeWithItsConfigIsRefusedBeforeConversion) {
  TempDir dir;
  const std::string src = CopyFixture(dir.path() + "/src");
  nlohmann::json config = io::ReadJsonFile(src + "/config.json");
  config["intermediate_size"] = config["intermediate_size"].get<int64_t>() * 2;
  WriteFileText(src + "/config.json", config.dump(2));
  ModelStore store(dir.path() + "/cache");
  try {
    store.OpenConverted(src, "internlm2-to-llama");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("disagree with config.json"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(ConversionCache(dir.path() + "/cache").List().empty());
}

TEST(ModelStoreTest, LoadedModelsAreKeyedByIdentityPrecisionAndDevice) {
  ModelStore store(TempDir().path());
  auto model = store.Open(Fixture());
  const c10::Device cpu(c10::kCPU);
  forward::CausalLM& fp32 = store.Get(*model, forward::Precision::kFP32, cpu);
  EXPECT_EQ(&store.Get(*model, forward::Precision::kFP32, cpu), &fp32);
  forward::CausalLM& bf16 = store.Get(*model, forward::Precision::kBF16, cpu);
  EXPECT_NE(&bf16, &fp32);
  EXPECT_EQ(bf16.numerics().precision, forward::Precision::kBF16);
  EXPECT_NE(ModelStore::LoadKey(*model, forward::Precision::kFP32, cpu),
            ModelStore::LoadKey(*model, forward::Precision::kBF16, cpu));
  store.KeepOnly({ModelStore::LoadKey(*model, forward::Precision::kBF16, cpu)});
  EXPECT_EQ(&store.Get(*model, forward::Precision::kBF16, cpu), &bf16);
}

}  // namespace
}  // namespace parity::session
