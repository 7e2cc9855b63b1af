// Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp, built with -DPARITY_FUZZ=ON, run by
// scripts/fuzz.sh). Every parser of user files must either accept an input or throw InputError
// naming what is wrong; any other exception, a crash, a leak or undefined behaviour (ASan + UBSan)
// is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace parity::fuzz {

// A scratch directory private to this process (tmpfs when available), created once.
inline const std::string& ScratchDir() {
  static const std::string dir = [] {
    std::string pattern = (access("/dev/shm", W_OK) == 0 ? std::string("/dev/shm")
                                                          : std::string("/tmp")) +
                          "/parity-fuzz-XXXXXX";
    return std::string(mkdtemp(pattern.data()));
  }();
  return dir;
}

inline void WriteBytes(const std::string& path, const uint8_t* data, size_t size) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) std::abort();
  if (size > 0) std::fwrite(data, 1, size, file);
  std::fclose(file);
}

// The input as JSON, or a discarded value when it is not JSON (no exception).
inline nlohmann::json ParseJson(const uint8_t* data, size_t size) {
  return nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
}

}  // namespace parity::fuzz
