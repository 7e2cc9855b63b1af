#!/usr/bin/env bash
# The big runs of issue 13, ready to run (NOT run yet: they need more device time than the session
# that wrote them had). After `PARITY_BUILD_TARGET=parity bash scripts/gpu_build.sh build-gpu
# -DPARITY_BUILD_TESTS=OFF -DPARITY_BUILD_BENCHMARKS=OFF`. Results under $OUT/placement_big/.
#
#   PART=7b   (2 x H200, ~10 min, 35 GB disk): a 7B-shaped InternLM2 (internlm2_5-7b-chat sizes,
#             random BF16, 15.5 GB) and its conversion at FP32 (2 x 31 GB) with the FP64 oracle
#             (62 GB per model): one H200 alone (sides and then each FP64 model on cuda:0) against
#             A on cuda:0, B on cuda:1, the FP64 models over cuda:0,cuda:1. Shows the placement,
#             identical verdicts, and the ms per lockstep step of each.
#   PART=40b  (4 x H200, ~20 min, 170 GB disk): a 40B-shaped InternLM2 (hidden 6144, 84 layers,
#             40.2B parameters, 80.5 GB BF16) and its conversion at FP32: 161 GB per model, more
#             than one H200 (141 GB): A over cuda:0,cuda:1, B over cuda:2,cuda:3, lockstep; ms per
#             model-token against the bandwidth limit (FP32 weight bytes / the 4.3 TB/s copy
#             bandwidth measured on one H200: the stages of one model run one after another, so
#             the limit is one GPU's: 37 ms at FP32, 19 ms at BF16). Then the same pair at BF16 (80.5 GB each) with `--devices
#             auto` on 2 of the GPUs' worth of free memory.
set -uo pipefail
cd "$(dirname "$0")/.."
part=${PART:-7b}
out=${OUT:-/tmp/parity-placement-big-out}/placement_big
work=${WORK:-/tmp/parity-placement-big}
new=${NEW:-64}
mkdir -p "$out" "$work"
step() { echo "=== $* ($(date +%T))" | tee -a "$out/steps.log"; }
source build-gpu/env.sh
parity=$PWD/build-gpu/parity
nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv,noheader | tee "$out/gpu.txt"
prompts=(--prompt-tokens 1,3300,2201,15,77,1002,31,40,512,900,66,70,71,72,73,74
         --prompt-tokens 1,500,600,700,800,900,1000,1100,1200,1300,1400,1500,1600,1700,1800,1900)

model() {  # model PRESET: writes and converts once
  step "write $1"
  [[ -f "$work/$1/original/config.json" ]] || timeout 900 python3 scripts/write_internlm2.py \
    "$work/$1/original" --preset "$1" --shards 16 > "$out/write_$1.log" 2>&1
  [[ -f "$work/$1/original/tokenizer.model" ]] || python3 scripts/pad_spm_tokenizer.py \
    "$work/$1/original" cases/fixtures/internlm2-tiny/tokenizer.model >> "$out/write_$1.log" 2>&1
  tail -1 "$out/write_$1.log"
  step "convert $1"
  [[ -f "$work/$1/converted/config.json" ]] || timeout 900 "$parity" convert internlm2-to-llama \
    "$work/$1/original" "$work/$1/converted" > "$out/convert_$1.log" 2>&1
  tail -1 "$out/convert_$1.log"
}

run() {  # run NAME TIMEOUT ARGS...: parity compare original converted, the plan and the runs' times
  local name=$1 limit=$2
  shift 2
  step "$name"
  timeout "$limit" "$parity" compare "$work/$size/original" "$work/$size/converted" "${prompts[@]}" \
    --max-new-tokens "$new" --no-fail-on-real-divergence --out "$work/$name" --replace "$@" \
    > "$out/$name.log" 2>&1
  echo "exit $?" | tee -a "$out/$name.log"
  grep -E "placement of|does not fit|FP64 oracle:" "$out/$name.log" | tee "$out/$name.plan.txt"
  python3 - "$work/$name" <<'PY' | tee "$out/$name.txt"
import json, sys
s = json.load(open(f"{sys.argv[1]}/summary.json"))
for r in s["runs"]:
    fd = r.get("first_divergence") or {}
    print(f"{r['id']}: {r['metrics']['steps']} steps, {r['elapsed_s'] / max(r['metrics']['steps'], 1) * 1e3:.1f} "
          f"ms per lockstep step (oracle included when on), first divergence {fd.get('step')} {fd.get('kind')}")
print("verdict", s["verdict"]["pass"])
PY
}

if [[ "$part" == 7b ]]; then
  size=7b
  model 7b
  run one_h200 900 --dtypes fp32 --device cuda:0 --oracle --oracle-device cuda:0
  run two_h200 900 --dtypes fp32 --devices-a cuda:0 --devices-b cuda:1 --oracle \
    --oracle-device cuda:0,cuda:1
  python3 - "$work" <<'PY' | tee "$out/verdicts_7b.txt"
import json, sys
w = sys.argv[1]
def key(name):
    s = json.load(open(f"{w}/{name}/summary.json"))
    return [(r["id"], json.dumps(r.get("oracle"), sort_keys=True),
             json.dumps(r.get("first_divergence"), sort_keys=True)) for r in s["runs"]]
print("RESULT 2 GPUs vs one H200: verdicts and oracle figures identical:", key("two_h200") == key("one_h200"))
PY
fi

if [[ "$part" == 40b ]]; then
  size=40b
  model 40b
  # FP32: 161 GB per model, each over two GPUs; refused on one GPU with the numbers first.
  run refused_one_gpu 120 --dtypes fp32 --devices cuda:0
  run fp32_4gpus 1800 --dtypes fp32 --devices-a cuda:0,cuda:1 --devices-b cuda:2,cuda:3
  run bf16_auto 1200 --dtypes bf16 --devices auto
  python3 - <<'PY' | tee "$out/limit_40b.txt"
# The bandwidth limit of one model-token: its weight bytes at the 4.3 TB/s measured on one H200, as
# BRIEF.md counts it (15.5 GB / 4.3 TB/s = 3.6 ms for the 7B at BF16).
params = 40.245909504e9
for name, b in (("fp32", 4), ("bf16", 2)):
    print(f"{name}: {params * b / 1e9:.1f} GB, limit {params * b / 4.3e12 * 1e3:.1f} ms per model-token")
PY
fi
step done
