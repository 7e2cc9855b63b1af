#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp) with clang, ASan and UBSan into build-fuzz/
# and runs each for SECONDS (default 60), one after the other (the machine may have few cores).
#
#   scripts/fuzz.sh [SECONDS] [HARNESS...]     e.g. scripts/fuzz.sh 300 fuzz_safetensors
#
# Each harness keeps its corpus in build-fuzz/corpus/<harness>/ (seeded from the test data, the
# shipped cases and tests/fuzz/corpus/<harness>/) and writes what it finds (crash-*, leak-*,
# timeout-*, oom-*) to build-fuzz/findings/<harness>/. A finding, once fixed, goes to
# tests/fuzz/regressions/<harness>/, which the normal test suite replays (fuzz_regression_test.cpp).
# Prints one line per harness: executions, corpus size, findings. Needs clang with libFuzzer
# (Debian: clang-14 ships it).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
  harnesses=(fuzz_safetensors fuzz_index fuzz_config fuzz_case)
fi
clang=${CXX_FUZZ:-clang++}
command -v "$clang" >/dev/null || { echo "fuzz.sh: $clang not found (apt-get install clang)" >&2; exit 2; }

source scripts/ccache_env.sh
if [ ! -f build-fuzz/CMakeCache.txt ]; then
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S . -B build-fuzz "${generator[@]}" "${launcher[@]}" -DCMAKE_CXX_COMPILER="$clang" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARITY_FUZZ=ON -DPARITY_BUILD_TESTS=OFF \
    -DPARITY_BUILD_BENCHMARKS=OFF >/dev/null
fi
cmake --build build-fuzz --target "${harnesses[@]}" --parallel "$(nproc)"

seed() {  # seed <harness> <files...>: copies seed files into the harness's corpus
  local corpus=build-fuzz/corpus/$1
  shift
  mkdir -p "$corpus"
  for f in "$@"; do
    [ -f "$f" ] && cp "$f" "$corpus/seed-$(sha1sum < "$f" | cut -c1-16)"
  done
}
shopt -s nullglob
seed fuzz_safetensors tests/data/safetensors/*.safetensors cases/fixtures/*/model-00002-*.safetensors
seed fuzz_index cases/fixtures/*/model.safetensors.index.json tests/fuzz/corpus/fuzz_index/*
seed fuzz_config tests/data/configs/*/config.json cases/fixtures/*/config.json
seed fuzz_case cases/*.json tests/fuzz/corpus/fuzz_case/*
seed fuzz_trace_import tests/fuzz/corpus/fuzz_trace_import/*

status=0
for harness in "${harnesses[@]}"; do
  corpus=build-fuzz/corpus/$harness findings=build-fuzz/findings/$harness
  mkdir -p "$corpus" "$findings"
  log=build-fuzz/findings/$harness.log
  # -rss_limit_mb: libtorch alone maps a few hundred MB; -max_len 64 KiB covers every seed's header.
  "build-fuzz/fuzz/$harness" "$corpus" -max_total_time="$seconds" -max_len=65536 \
    -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 -artifact_prefix="$findings/" \
    >"$log" 2>&1 || status=1
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  found=$(ls "$findings" | wc -l)
  echo "$harness: ${seconds}s, $execs executions, corpus $(ls "$corpus" | wc -l) files, $found finding(s)${found:+ in $findings}"
done
exit $status
