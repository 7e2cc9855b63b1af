// Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp, built with -DPARITY_FUZZ=ON, run by
// scripts/fuzz.sh). Every parser of user files must either accept an input or throw InputError
// naming what is wrong; any other exception, a crash, a leak or undefined behaviour (ASan + UBSan)
// is a finding. What each harness does with an input is in fuzz_targets.h, which the normal suite
// replays the kept inputs through.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "tests/fuzz/fuzz_targets.h"

namespace parity::fuzz {

// A scratch directory private to this process (tmpfs when available), created once.
inline const std::string& ScratchDir() {
  static const std::string dir = [] {
    std::string pattern =
        (access("/dev/shm", W_OK) == 0 ? std::string("/dev/shm") : std::string("/tmp")) +
        "/parity-fuzz-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    return pattern;
  }();
  return dir;
}

// One input through the named target; an InputError is an accepted outcome, anything else escapes
// (std::terminate: libFuzzer reports it as a crash with the exception's message).
inline int RunTarget(const char* name, const uint8_t* data, size_t size) {
  static const auto& target = Targets().at(name);
  try {
    target(std::string(reinterpret_cast<const char*>(data), size), ScratchDir());
  } catch (const InputError&) {
  }
  return 0;
}

}  // namespace parity::fuzz

// Defines the libFuzzer entry point of harness NAME (a key of Targets()).
#define PARITY_FUZZ_HARNESS(NAME)                                           \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { \
    return parity::fuzz::RunTarget(NAME, data, size);                       \
  }
