// Replays every input the fuzzers found a defect with (tests/fuzz/regressions/<harness>/, see
// scripts/fuzz.sh) through the same target the harness runs (tests/fuzz/fuzz_targets.h), in the
// normal build: each must now be accepted or refused with an InputError, nothing else. Also replays
// each harness's hand-written corpus (tests/fuzz/corpus/<harness>/).
#include <filesystem>

#include <gtest/gtest.h>

#include "tests/fuzz/fuzz_targets.h"
#include "tests/test_util.h"

namespace parity {
namespace {

namespace fs = std::filesystem;

TEST(FuzzRegressionTest, EveryKeptInputIsAcceptedOrRefusedByName) {
  int replayed = 0;
  for (const char* kind : {"regressions", "corpus"}) {
    const fs::path root = fs::path(PARITY_SOURCE_DIR) / "tests/fuzz" / kind;
    if (fs::is_directory(root)) {
      for (const auto& dir : fs::directory_iterator(root)) {
        EXPECT_TRUE(fuzz::Targets().count(dir.path().filename().string()))
            << dir.path() << " is not named after a harness (tests/fuzz/fuzz_targets.h)";
      }
    }
    for (const auto& [name, run] : fuzz::Targets()) {
      const fs::path dir = root / name;
      if (!fs::is_directory(dir)) continue;
      for (const auto& entry : fs::directory_iterator(dir)) {
        SCOPED_TRACE(entry.path().string());
        TempDir scratch;
        try {
          run(ReadFileText(entry.path().string()), scratch.path());
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
