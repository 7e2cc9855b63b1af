#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp) with clang, ASan and UBSan into build-fuzz/
# and runs each for SECONDS (default 60), FUZZ_JOBS (default 1) at a time (the machine may have few
# cores). With no HARNESS named, every tests/fuzz/fuzz_*.cpp.
#
#   scripts/fuzz.sh [SECONDS] [HARNESS...]     e.g. scripts/fuzz.sh 300 fuzz_safetensors
#   FUZZ_JOBS=2 nice -n 19 scripts/fuzz.sh 600 fuzz_gguf fuzz_trace
#
# Each harness keeps its corpus in build-fuzz/corpus/<harness>/ (seeded from the test data, the
# shipped cases and tests/fuzz/corpus/<harness>/) and writes what it finds (crash-*, leak-*,
# timeout-*, oom-*) to build-fuzz/findings/<harness>/. A finding, once fixed, goes to
# tests/fuzz/regressions/<harness>/, which the normal test suite replays (fuzz_regression_test.cpp).
# What each harness does with an input is in tests/fuzz/fuzz_targets.h. Prints one line per harness:
# minutes, executions, corpus size, findings. Needs clang with libFuzzer (Debian: clang-14 ships it).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
  for source in tests/fuzz/fuzz_*.cpp; do harnesses+=("$(basename "$source" .cpp)"); done
fi
jobs=${FUZZ_JOBS:-1}
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
seed fuzz_gguf tests/data/gguf/*.gguf tests/fuzz/corpus/fuzz_gguf/*
seed fuzz_trace tests/fuzz/corpus/fuzz_trace/*
seed fuzz_kld_base tests/data/kld/*.kld tests/fuzz/corpus/fuzz_kld_base/*
seed fuzz_tokenizer_json tests/data/tokenizers/*/tokenizer.json tests/fuzz/corpus/fuzz_tokenizer_json/*

run_one() {  # run_one <harness>: fuzzes it for $seconds, prints its line, fails on a finding
  local harness=$1
  local corpus=build-fuzz/corpus/$harness findings=build-fuzz/findings/$harness
  mkdir -p "$corpus" "$findings"
  local log=build-fuzz/findings/$harness.log rc=0 start=$SECONDS dict=()
  # JSON tokens and the keys the parser reads, where a dictionary exists (tests/fuzz/dict/).
  [ -f "tests/fuzz/dict/$harness.dict" ] && dict=(-dict="tests/fuzz/dict/$harness.dict")
  # -rss_limit_mb: libtorch alone maps a few hundred MB; -max_len 64 KiB covers every seed.
  "build-fuzz/fuzz/$harness" "$corpus" "${dict[@]}" -max_total_time="$seconds" -max_len=65536 \
    -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 -artifact_prefix="$findings/" \
    >"$log" 2>&1 || rc=1
  local execs found
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  found=$(find "$findings" -maxdepth 1 -type f | wc -l)
  echo "$harness: $(awk "BEGIN{printf \"%.1f\", $((SECONDS - start))/60}") min, $execs executions," \
    "corpus $(ls "$corpus" | wc -l) files, $found finding(s) in $findings"
  return $rc
}

status=0
for harness in "${harnesses[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || status=1; done
  run_one "$harness" &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || status=1; done
exit $status
