// Replays every input the fuzzers found a defect with (tests/fuzz/regressions/<harness>/, see
// scripts/fuzz.sh) through the same parser in the normal build: each must now be accepted or
// refused with an InputError, nothing else. Also replays each harness's hand-written corpus
// (tests/fuzz/corpus/<harness>/).
#include <filesystem>
#include <functional>
#include <map>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "harness/compare/case.h"
#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/io/safetensors.h"
#include "harness/model/config.h"
#include "tests/test_util.h"

namespace parity {
namespace {

namespace fs = std::filesystem;

// What each harness does with one input (tests/fuzz/fuzz_<name>.cpp); throws what the parser throws.
void Safetensors(const std::string& input, const TempDir& scratch) {
  const std::string path = scratch.path() + "/input.safetensors";
  WriteFileText(path, input);
  io::SafetensorsFile file = io::SafetensorsFile::Open(path);
  for (const io::TensorInfo& info : file.tensors()) (void)file.Get(info.name).numel();
}

void Index(const std::string& input, const TempDir& scratch) {
  const std::string dir = scratch.path() + "/checkpoint";
  fs::create_directories(dir);
  WriteFileText(dir + "/config.json", R"({"model_type": "llama", "hidden_size": 8})");
  io::WriteSafetensors(dir + "/model-00001-of-00002.safetensors",
                       {{"a.weight", at::ones({2, 3})}, {"b.weight", at::zeros({4})}});
  io::WriteSafetensors(dir + "/model-00002-of-00002.safetensors",
                       {{"c.weight", at::ones({1}, at::kBFloat16)}});
  WriteFileText(dir + "/model.safetensors.index.json", input);
  io::Checkpoint checkpoint = io::Checkpoint::Open(dir);
  for (const std::string& name : checkpoint.names()) (void)checkpoint.Get(name).numel();
}

void Config(const std::string& input, const TempDir&) {
  nlohmann::json json = nlohmann::json::parse(input, nullptr, false);
  if (json.is_discarded()) return;
  (void)model::CountParameters(model::ParseConfig(json, "fuzz/config.json"));
}

void CaseFile(const std::string& input, const TempDir&) {
  nlohmann::ordered_json json = nlohmann::ordered_json::parse(input, nullptr, false);
  if (json.is_discarded()) return;
  (void)compare::ParseCase(json, "fuzz/case.json");
}

TEST(FuzzRegressionTest, EveryKeptInputIsAcceptedOrRefusedByName) {
  const std::map<std::string, std::function<void(const std::string&, const TempDir&)>> harnesses = {
      {"fuzz_safetensors", Safetensors},
      {"fuzz_index", Index},
      {"fuzz_config", Config},
      {"fuzz_case", CaseFile}};
  int replayed = 0;
  for (const char* kind : {"regressions", "corpus"}) {
    for (const auto& [name, run] : harnesses) {
      const fs::path dir = fs::path(PARITY_SOURCE_DIR) / "tests/fuzz" / kind / name;
      if (!fs::is_directory(dir)) continue;
      for (const auto& entry : fs::directory_iterator(dir)) {
        SCOPED_TRACE(entry.path().string());
        TempDir scratch;
        try {
          run(ReadFileText(entry.path().string()), scratch);
        } catch (const InputError&) {
        } catch (const std::exception& e) {
          ADD_FAILURE() << "not an InputError: " << e.what();
        }
        ++replayed;
      }
    }
  }
  std::cout << "[ info ] replayed " << replayed << " kept fuzz inputs\n";
}

}  // namespace
}  // namespace parity
