#!/usr/bin/env bash
# The TF32 check of issue 14 on the GPU machine, in one go (device time is scarce): write a random HF
# Llama (scripts/tf32_hf.py; TF32_SHAPE=7b by default) and run it with HF in FP32 with TF32 off and
# on while the parity CLI builds against the CUDA libtorch (BUILD=0 skips the build), then Parity
# @fp32 vs @tf32 on CUDA over the same prompts, and tabulate where each pair's tokens first differ
# (scripts/tf32_table.py). TF32_GPU picks the GPU (default 0); BUILD=wait waits for another
# process's build (build-gpu/READY). Results in $OUT/tf32.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/parity-tf32-out}/tf32
r=/tmp/tf32
mkdir -p "$out" "$r"
export PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=${TF32_GPU:-0}
echo "hf + build $(date +%T)"
timeout 240 python3 scripts/tf32_hf.py /tmp/llama "$r" > "$r/hf.log" 2>&1 &
hf=$!
if [[ "${BUILD:-1}" == wait ]]; then  # someone else builds; it touches build-gpu/READY when done
  for _ in $(seq 400); do [[ -f build-gpu/READY ]] && break; sleep 1; done
elif [[ "${BUILD:-1}" == 1 ]]; then
  PARITY_BUILD_TARGET=parity timeout 300 bash scripts/gpu_build.sh build-gpu -DPARITY_BUILD_TESTS=OFF \
    -DPARITY_BUILD_BENCHMARKS=OFF > "$r/build.log" 2>&1
  grep -E "error|FAILED" "$r/build.log" | head -20
  tail -20 "$r/build.log" > "$out/build_tail.log"
fi
wait $hf
echo "hf exit $? $(date +%T)"
tail -3 "$r/hf.log"
source build-gpu/env.sh
prompts=$(python3 -c 'import json; [print("--prompt-tokens", ",".join(map(str, r["prompt"]))) for r in json.load(open("/tmp/tf32/hf.json"))["hf"]["fp32"]]')
echo "parity $(date +%T)"
timeout 240 ./build-gpu/parity compare /tmp/llama@fp32 /tmp/llama@tf32 --device cuda $prompts \
  --max-new-tokens 64 --out "$r/parity" --no-fail-on-real-divergence > "$r/parity.log" 2>&1
echo "parity exit $? $(date +%T)"
cp "$r/parity/summary.json" "$r/parity_summary.json" 2>/dev/null
python3 scripts/tf32_table.py "$r" | tee "$r/table.txt"
tail -40 "$r/parity.log"
cp "$r/hf.json" "$r/hf.log" "$r/table.txt" "$r/parity.log" "$r/parity_summary.json" "$out/" 2>/dev/null
echo "done $(date +%T)"
