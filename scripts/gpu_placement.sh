#!/usr/bin/env bash
# Layer placement on 2 GPUs (issue 13), within ~200 s after the coordinator's build
# (build-gpu/parity; `source build-gpu/env.sh`). Writes small text results to $OUT/placement/.
#   1. a random BF16 InternLM2 with internlm2-chat-1_8b's sizes (1.9B parameters, 3.8 GB) written
#      here (scripts/write_internlm2.py) and converted (`parity convert internlm2-to-llama`);
#   2. bitwise: the model on cuda:0 (side a) against the same model placed over cuda:0,cuda:1
#      (side b, a second path to the same files), BF16, 32 steps x 2 prompts: every step's logits
#      from both sides' saved traces compared byte for byte; the plan printed;
#   3. ms per lockstep step of original vs conversion at BF16, both on cuda:0 against A on cuda:0
#      and B on cuda:1 (3 prompts x NEW steps; the fastest run's wall time / steps);
#   4. the FP64 oracle on cuda:1 (and over cuda:0,cuda:1) with the sides on cuda:0, against the
#      oracle on cuda:0: the verdicts and the oracle's figures must be identical;
#   5. step 2 at FP32.
# Steps 4 (after its first run) and 5 run only while BUDGET (175 s) leaves room.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/parity-placement-out}/placement
work=${WORK:-/tmp/parity-placement}
new=${NEW:-64}
budget=${BUDGET:-175}  # seconds: optional steps are skipped past it (the call allows 200)
mkdir -p "$out" "$work"
step() { echo "=== $* ($(date +%T), ${SECONDS}s)" | tee -a "$out/steps.log"; }
# Optional steps run only while this many seconds are left of the budget.
time_for() { [[ $((budget - SECONDS)) -ge $1 ]] || { echo "=== skipped: $2 (${SECONDS}s)" | tee -a "$out/steps.log"; return 1; }; }
source build-gpu/env.sh
parity=$PWD/build-gpu/parity
nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv,noheader | tee "$out/gpu.txt"

step write
[[ -f "$work/original/config.json" ]] || timeout 50 python3 scripts/write_internlm2.py \
  "$work/original" --preset 1_8b > "$out/write.log" 2>&1
[[ -f "$work/original/tokenizer.model" ]] || timeout 20 python3 scripts/pad_spm_tokenizer.py \
  "$work/original" cases/fixtures/internlm2-tiny/tokenizer.model >> "$out/write.log" 2>&1
ln -sfn "$work/original" "$work/same"
tail -2 "$out/write.log"
step convert
[[ -f "$work/converted/config.json" ]] || timeout 40 "$parity" convert internlm2-to-llama \
  "$work/original" "$work/converted" > "$out/convert.log" 2>&1
echo "exit $?"

prompts=(--prompt-tokens 1,3300,2201,15,77,1002,31,40,512,900,66,70,71,72,73,74
         --prompt-tokens 1,500,600,700,800,900,1000,1100,1200,1300,1400,1500,1600,1700,1800,1900
         --prompt-tokens 1,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56)

# 2. bitwise: one model on cuda:0 vs the same model placed over both GPUs.
bitwise() {
  local dtype=$1
  step "bitwise $dtype"
  timeout 35 "$parity" compare "$work/original" "$work/same" --dtypes $dtype "${prompts[@]:0:2}" \
    --max-new-tokens 32 --devices-a cuda:0 --devices-b cuda:0,cuda:1 --save-traces \
    --no-fail-on-real-divergence --out "$work/bitwise_$dtype" --replace \
    > "$out/bitwise_$dtype.log" 2>&1
  echo "exit $?" | tee -a "$out/bitwise_$dtype.log"
  grep -E "placement of|loading" "$out/bitwise_$dtype.log" | tee "$out/plan_$dtype.txt"
  timeout 15 python3 - "$work/bitwise_$dtype" <<'PY' | tee "$out/bitwise_$dtype.txt"
import glob, json, sys
import torch
from safetensors.torch import load_file
d = sys.argv[1]
s = json.load(open(f"{d}/summary.json"))
for p in s.get("placements", []):
    print(p["side"], p["model"], "|", p["plan"], "|", p["reason"])
traces = sorted(glob.glob(f"{d}/traces/*/trace.safetensors"))
assert len(traces) == 2, traces
a, b = load_file(traces[0]), load_file(traces[1])
rows = equal = 0
for key in sorted(k for k in a if k.endswith(".logits")):
    x, y = a[key], b[key]
    rows += x.shape[0]
    same = x.shape == y.shape and bool((x.view(torch.int32) == y.view(torch.int32)).all())
    equal += x.shape[0] if same else 0
    print(key, tuple(x.shape), "bitwise" if same else f"DIFFERS max|a-b| {(x - y).abs().max().item()}")
print(f"RESULT {rows} logit rows, {equal} bitwise equal; tokens equal:",
      all(bool((a[k] == b[k]).all()) for k in a if k.endswith(".tokens")))
PY
}
bitwise bf16

# 3. ms per lockstep step: both sides on cuda:0, then A on cuda:0 and B on cuda:1.
for layout in "cuda:0 cuda:0" "cuda:0 cuda:1"; do
  set -- $layout
  name="timing_${1/:/}_${2/:/}"
  step "timing A=$1 B=$2"
  timeout 45 "$parity" compare "$work/original" "$work/converted" --dtypes bf16 "${prompts[@]}" \
    --max-new-tokens "$new" --devices-a "$1" --devices-b "$2" --no-fail-on-real-divergence \
    --out "$work/$name" --replace > "$out/$name.log" 2>&1
  echo "exit $?" | tee -a "$out/$name.log"
  timeout 15 python3 - "$work/$name" "$1" "$2" <<'PY' | tee "$out/$name.txt"
import json, sys
s = json.load(open(f"{sys.argv[1]}/summary.json"))
per = [(r["elapsed_s"] / max(r["metrics"]["steps"], 1) * 1e3, r["metrics"]["steps"], r["elapsed_s"])
       for r in s["runs"]]
for ms, steps, el in per:
    print(f"run: {steps} steps in {el:.3f} s = {ms:.2f} ms per lockstep step")
print(f"RESULT A={sys.argv[2]} B={sys.argv[3]}: fastest {min(p[0] for p in per):.2f} ms per lockstep step")
PY
done

# 4. the FP64 oracle on its own device(s).
for oracle in cuda:0 cuda:1 cuda:0,cuda:1; do
  name="oracle_${oracle//[:,]/_}"
  time_for 30 "oracle on $oracle" || continue
  step "oracle on $oracle"
  timeout 35 "$parity" compare "$work/original" "$work/converted" --dtypes bf16 "${prompts[@]:0:2}" \
    --max-new-tokens 24 --devices cuda:0 --oracle --oracle-device "$oracle" \
    --no-fail-on-real-divergence --no-require-oracle-acceptable --out "$work/$name" --replace \
    > "$out/$name.log" 2>&1
  echo "exit $?" | tee -a "$out/$name.log"
  grep -E "placement of .*oracle|FP64 oracle:" "$out/$name.log" | tee "$out/$name.txt"
done
timeout 15 python3 - "$work" <<'PY' | tee "$out/oracle_compare.txt"
import json, sys
w = sys.argv[1]
def key(name):
    s = json.load(open(f"{w}/{name}/summary.json"))
    return [(r["id"], json.dumps(r.get("oracle"), sort_keys=True),
             json.dumps(r.get("first_divergence"), sort_keys=True)) for r in s["runs"]]
base = key("oracle_cuda_0")
import os
for other in ("oracle_cuda_1", "oracle_cuda_0_cuda_1"):
    if not os.path.exists(f"{w}/{other}/summary.json"):
        continue
    print(f"RESULT oracle on {other[7:]} vs cuda:0: verdicts and oracle figures identical:",
          key(other) == base)
PY
time_for 25 "bitwise fp32" && bitwise fp32
step done
