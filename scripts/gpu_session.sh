#!/usr/bin/env bash
# Everything Parity does on the GPU machine in one go (device time is scarce): build against the CUDA
# libtorch, regenerate the HF golden logits from Parity's own conversion of the trained fixture, run
# the test suite there, run the main case natively on CUDA and emulated on CPU, and the decode
# benchmark on both devices. Results are packed into $OUT/gpu_results.tar.gz (the device tool returns
# at most 8 files).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/parity-gpu-out}
results=/tmp/gpu_results
mkdir -p "$out" "$results"
export PYTHONUNBUFFERED=1

step() { echo "=== $* ($(date +%T))" | tee -a "$results/steps.log"; }

step build
bash scripts/gpu_build.sh build-gpu > "$results/build.log" 2>&1
grep -E "error|FAILED" "$results/build.log" | head -20
source build-gpu/env.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$results/gpu.txt"
python3 -c 'import torch, transformers; print(torch.__version__, transformers.__version__)' >> "$results/gpu.txt"

step golden
./build-gpu/parity convert internlm2-to-llama cases/fixtures/internlm2-tiny /tmp/tiny-llama > "$results/convert.log" 2>&1
python3 scripts/golden_hf.py run --llama /tmp/tiny-llama --prompts tests/data/golden/prompts.json \
  --out "$results/golden" > "$results/golden.log" 2>&1
tail -5 "$results/golden.log"

step case-cuda
timeout 240 ./build-gpu/parity run cases/internlm2-tiny.json --device cuda --out /tmp/run-cuda > "$results/run_cuda.log" 2>&1
cp /tmp/run-cuda/summary.json "$results/summary_cuda.json" 2>/dev/null
step case-cpu
timeout 240 ./build-gpu/parity run cases/internlm2-tiny.json --device cpu --out /tmp/run-cpu > "$results/run_cpu.log" 2>&1
cp /tmp/run-cpu/summary.json "$results/summary_cpu.json" 2>/dev/null

step bench
PARITY_BENCH_DEVICE=cuda timeout 120 ./build-gpu/parity_bench --benchmark_filter=Decode \
  --benchmark_min_time=0.2 > "$results/bench_cuda.txt" 2>&1
OMP_NUM_THREADS=16 timeout 120 ./build-gpu/parity_bench --benchmark_filter=Decode \
  --benchmark_min_time=0.2 > "$results/bench_cpu.txt" 2>&1

step tests
(cd build-gpu && timeout 200 ctest -j 16 --timeout 120 > "$results/ctest.log" 2>&1)
tail -40 "$results/ctest.log"

step done
tar -czf "$out/gpu_results.tar.gz" -C /tmp gpu_results
cat "$results/steps.log"
