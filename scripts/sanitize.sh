#!/usr/bin/env bash
# Builds Parity with AddressSanitizer + UBSan (-DPARITY_SANITIZE=ON) into build-asan/ and runs the
# test suite there (or the tests matching REGEX): scripts/sanitize.sh [REGEX]
# Slow: libtorch's own code is not instrumented, but every Parity translation unit is, and the
# model tests run several times slower. Leak detection is off: libtorch and the SentencePiece shim
# (loaded with dlmopen) keep global allocations until exit.
set -euo pipefail
cd "$(dirname "$0")/.."
regex=${1:-.}
source scripts/ccache_env.sh
if [ ! -f build-asan/CMakeCache.txt ]; then
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S . -B build-asan "${generator[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPARITY_SANITIZE=ON -DPARITY_BUILD_BENCHMARKS=OFF >/dev/null
fi
cmake --build build-asan --parallel "$(nproc)"
export PARITY_TEST_TIME_SCALE=${PARITY_TEST_TIME_SCALE:-4}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir build-asan -R "$regex" --output-on-failure --timeout 1800 -j "$(nproc)"
