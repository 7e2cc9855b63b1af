// Helpers shared by the tests: temporary directories, file reading, paths of test data and the CLI.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "harness/core/remove_tree.h"
#include "parity_build_paths.h"

namespace parity {

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "parity-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { RemoveTree(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::string ReadFileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

inline void WriteFileText(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// Path of a file under the source tree's tests/data.
inline std::string TestDataPath(const std::string& relative) {
  return std::string(PARITY_SOURCE_DIR) + "/tests/data/" + relative;
}

// The trained fixture checkpoint (cases/fixtures/internlm2-tiny).
inline std::string TrainedFixtureDir() {
  return std::string(PARITY_SOURCE_DIR) + "/cases/fixtures/internlm2-tiny";
}

// A private, byte-identical copy of the trained fixture in `dir` (created), which a test may modify
// or compare against the original; returns `dir`.
inline std::string CopyTrainedFixture(const std::string& dir) {
  std::filesystem::create_directories(dir);
  for (const auto& entry : std::filesystem::directory_iterator(TrainedFixtureDir())) {
    std::filesystem::copy_file(entry.path(), std::filesystem::path(dir) / entry.path().filename());
  }
  return dir;
}

// Path of the `parity` executable built beside the tests.
inline std::string ParityCli() { return std::string(PARITY_BINARY_DIR) + "/parity"; }

// Runs a shell command, returning its exit status (0..255) and capturing stdout+stderr into `output`.
inline int RunCommand(const std::string& command, std::string* output = nullptr) {
  TempDir dir;
  std::string log = dir.path() + "/out.txt";
  int status = std::system((command + " > '" + log + "' 2>&1").c_str());
  if (output != nullptr) *output = ReadFileText(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

}  // namespace parity
