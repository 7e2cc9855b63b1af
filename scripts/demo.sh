#!/usr/bin/env bash
# The main job on the built-in example: installs what is missing, builds, then compares the trained
# InternLM2 fixture (cases/fixtures/internlm2-tiny) with its Llama conversion (made at run time) under
# FP32, FP16 (emulated on CPU) and BF16, plus the original against itself at FP16/BF16 vs FP32, with
# the FP64 oracle. Prints where the outputs diverge and writes out/demo/{summary.json,steps.jsonl,
# report.md,report.html}. Extra arguments go to `parity run` (e.g. --max-new-tokens 32).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
status=0
build/parity run cases/internlm2-tiny.json --out out/demo "$@" || status=$?
echo
echo "report: $(pwd)/out/demo/report.html (open in a browser), summary: out/demo/summary.json"
exit $status
