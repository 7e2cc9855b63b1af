#!/usr/bin/env bash
# The whole test suite under ASan + UBSan on the GPU machine (issue 9): many cores, gcc 13, pip
# libtorch; CUDA hidden so the suite takes its CPU path as CI does. Every sanitizer report goes to a
# file (log_path), so none can hide in a test that is retried or whose output is cut; the files are
# classified at the end. One thread per test process (dozens run at once; libtorch would otherwise
# start a thread per core in each and the suite thrashes), the longest tests first
# (scripts/asan_test_costs.txt: seconds per test in an earlier instrumented run, as CTest's cost
# file). BUDGET: seconds for build + tests (default 560). Results in $OUT/asan.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/parity-asan-out}/asan
mkdir -p "$out/logs"
budget=${BUDGET:-560}
export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PARITY_TEST_TIME_SCALE=4
timeout "$budget" bash scripts/gpu_build.sh build-asan -DPARITY_SANITIZE=ON \
  -DPARITY_BUILD_BENCHMARKS=OFF > "$out/build.log" 2>&1
echo "build done at ${SECONDS}s"; tail -2 "$out/build.log"
source build-asan/env.sh
mkdir -p build-asan/Testing/Temporary && cp scripts/asan_test_costs.txt build-asan/Testing/Temporary/CTestCostData.txt
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:protect_shadow_gap=0:log_path=$out/logs/asan
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$out/logs/ubsan
timeout $((budget - SECONDS)) ctest --test-dir build-asan --output-on-failure --timeout 400 \
  -j "${JOBS:-48}" > "$out/ctest.log" 2>&1
echo "ctest exit $? at ${SECONDS}s"
grep -E "tests passed|tests failed|Total Test time" "$out/ctest.log"
sed -n '/The following tests/,$p' "$out/ctest.log" | head -40
echo "sanitizer log files: $(ls "$out/logs" | wc -l)"
grep -h -E "ERROR: AddressSanitizer|runtime error|Shadow memory" "$out"/logs/* 2>/dev/null \
  | sed 's/^==[0-9]*==//' | sort | uniq -c | tee "$out/reports.txt"
tar -czf "$out/logs.tar.gz" -C "$out" logs && rm -rf "$out/logs"
