#!/usr/bin/env bash
# The TF32 check of issue 14 on the GPU machine, in one go (device time is scarce): build the parity
# CLI against the CUDA libtorch, write a random small HF Llama (scripts/tf32_hf.py) and run it with HF
# in FP32 with TF32 off and on, then Parity @fp32 and @tf32 on CUDA over the same prompts, and
# tabulate where each pair's tokens first differ (scripts/tf32_table.py). Results in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/parity-tf32-out}
r=/tmp/tf32
mkdir -p "$out" "$r"
echo "build $(date +%T)"
PARITY_BUILD_TARGET=parity timeout 200 bash scripts/gpu_build.sh build-gpu -DPARITY_BUILD_TESTS=OFF \
  -DPARITY_BUILD_BENCHMARKS=OFF > "$r/build.log" 2>&1
grep -E "error|FAILED" "$r/build.log" | head -20
source build-gpu/env.sh
echo "hf $(date +%T)"
timeout 60 python3 scripts/tf32_hf.py /tmp/llama "$r" > "$r/hf.log" 2>&1
tail -3 "$r/hf.log"
echo "parity $(date +%T)"
prompts=$(python3 -c 'import json; [print("--prompt-tokens", ",".join(map(str, r["prompt"]))) for r in json.load(open("/tmp/tf32/hf.json"))["hf"]["fp32"]]')
timeout 60 ./build-gpu/parity compare /tmp/llama@fp32 /tmp/llama@tf32 --device cuda $prompts \
  --max-new-tokens 64 --out "$r/parity" --no-fail-on-real-divergence > "$r/parity.log" 2>&1
echo "parity exit $?"
cp "$r/parity/summary.json" "$r/parity_summary.json" 2>/dev/null
python3 scripts/tf32_table.py "$r" | tee "$r/table.txt"
cp "$r/hf.json" "$r/table.txt" "$r/parity.log" "$r/parity_summary.json" "$out/" 2>/dev/null
tail -20 "$r/build.log" > "$out/build_tail.log"
echo "done $(date +%T)"
