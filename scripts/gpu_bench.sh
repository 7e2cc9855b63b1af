#!/usr/bin/env bash
# Decode speed at 7B scale on the GPU machine, in one process tree (issue 11): Parity's lockstep
# pipeline against the bandwidth limit and against HF transformers on the same model in the same run.
#   1. build (scripts/gpu_build.sh, the parity target) unless BUILD=0; `parity bench --check` on CUDA
#      (bitwise self-check of the decode engine, every family and dtype);
#   2. writes a random BF16 InternLM2 checkpoint with internlm2_5-7b-chat's sizes (no download),
#      converts it with `parity convert internlm2-to-llama` (scripts/write_internlm2.py --preset 7b);
#   3. `parity bench original converted` (lockstep, metrics on, deterministic settings, vocab 92544)
#      at BF16 for PROMPTS (default 16) with CUDA graphs GRAPHS (default off,on), then FP32 for
#      prompt 16, and (after HF) the long input (LONG=1: prompt 4096 + LONG_NEW=512 new tokens,
#      graphs on); ms per model-token and the ratio to weight bytes / copy bandwidth measured in
#      the same process;
#   4. HF `generate(output_logits=True, return_dict_in_generate=True)` greedy on the converted copy,
#      attn_implementation eager and sdpa, BF16, prompt 16, NEW tokens: ms per token;
#   5. the ratio table (results.md).
# Results in $OUT. Knobs: NEW (128), PROMPTS (16), GRAPHS, LONG, FP32=1, HF=1, CHECK=1, BUILD=1,
# MODES (pipelined; add synchronous for the reference loop), FILL (off; off,on times both).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/parity-bench-out}
work=${WORK:-/tmp/parity-bench}
new=${NEW:-128}
prompts=${PROMPTS:-16}
graphs=${GRAPHS:-off,on}
modes=${MODES:-pipelined}
mkdir -p "$out" "$work"
export PYTHONUNBUFFERED=1
step() { echo "=== $* ($(date +%T))" | tee -a "$out/steps.log"; }

if [[ "${BUILD:-1}" == 1 ]]; then
  step build
  PARITY_BUILD_TARGET=parity bash scripts/gpu_build.sh build-gpu -DPARITY_BUILD_TESTS=OFF \
    -DPARITY_BUILD_BENCHMARKS=OFF > "$out/build.log" 2>&1
  grep -E "error|FAILED" "$out/build.log" | head -20
fi
source build-gpu/env.sh
parity=./build-gpu/parity
[[ -x "$parity" ]] || { echo "no parity binary"; exit 3; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "cudnn", torch.backends.cudnn.version())' | tee -a "$out/gpu.txt"

if [[ "${CHECK:-1}" == 1 ]]; then
  step check
  timeout 120 "$parity" bench --check --device cuda > "$out/check.txt" 2>&1
  echo "exit $?" >> "$out/check.txt"
  tail -2 "$out/check.txt"
fi

step write-checkpoint
[[ -f "$work/original/config.json" ]] && echo "reusing $work" || timeout 200 python3 \
  scripts/write_internlm2.py "$work/original" --preset 7b --shards 8 > "$out/write.log" 2>&1
tail -1 "$out/write.log"
# convert2llama copies tokenizer.model: the trained fixture's SentencePiece model padded with
# placeholder pieces up to the model's vocabulary (as scripts/gpu_verdicts.sh does).
[[ -f "$work/original/tokenizer.model" ]] || python3 scripts/pad_spm_tokenizer.py "$work/original" \
  cases/fixtures/internlm2-tiny/tokenizer.model >> "$out/write.log" 2>&1

step convert
[[ -f "$work/converted/config.json" ]] || "$parity" convert internlm2-to-llama "$work/original" \
  "$work/converted" > "$out/convert.log" 2>&1
tail -1 "$out/convert.log" 2>/dev/null

step parity-bf16
timeout 300 "$parity" bench "$work/original" "$work/converted" --device cuda --dtype bf16 \
  --prompt-tokens "$prompts" --new-tokens "$new" --modes "$modes" --fill "${FILL:-off}" \
  --graphs "$graphs" --json > "$out/parity_bf16.json" 2> "$out/parity_bf16.err"
echo "exit $?"; grep -E "ms_per_model_token|ratio_to_limit|prompt_tokens" "$out/parity_bf16.json"


if [[ "${FP32:-1}" == 1 ]]; then
  step parity-fp32
  timeout 200 "$parity" bench "$work/original" "$work/converted" --device cuda --dtype fp32 \
    --prompt-tokens 16 --new-tokens "$new" --graphs "$graphs" --json > "$out/parity_fp32.json" \
    2> "$out/parity_fp32.err"
  echo "exit $?"; grep -E "ms_per_model_token|ratio_to_limit" "$out/parity_fp32.json"
fi

if [[ "${HF:-1}" == 1 ]]; then
  step hf
  timeout 240 python3 - "$work/converted" "$new" <<'PY' > "$out/hf.json" 2> "$out/hf.err"
# HF greedy generate with per-step logits on the converted copy, eager and SDPA, BF16, prompt 16:
# ms per token of the decode phase = (t(N) - t(1)) / (N - 1), as parity bench times it.
import json, sys, time, torch
from transformers import AutoModelForCausalLM
path, new = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
ids = torch.randint(3, 92544, (1, 16), device="cuda")
results = {}
for impl in ("eager", "sdpa"):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16,
                                                 attn_implementation=impl).cuda().eval()
    def run(n):
        torch.cuda.synchronize(); t = time.perf_counter()
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                 output_logits=True, return_dict_in_generate=True,
                                 eos_token_id=None, pad_token_id=0)
        torch.cuda.synchronize()
        assert len(out.logits) == n
        return time.perf_counter() - t
    run(2)
    t1, tn = min(run(1) for _ in range(2)), run(new)
    results[impl] = {"ms_per_token": (tn - t1) * 1e3 / (new - 1), "prefill_ms": t1 * 1e3}
    del model; torch.cuda.empty_cache()
print(json.dumps(results, indent=2))
PY
  echo "exit $?"; cat "$out/hf.json"
fi

if [[ "${LONG:-1}" == 1 ]]; then
  step parity-bf16-long
  timeout 300 "$parity" bench "$work/original" "$work/converted" --device cuda --dtype bf16 \
    --prompt-tokens 4096 --new-tokens "${LONG_NEW:-512}" --graphs on --json \
    > "$out/parity_bf16_long.json" 2> "$out/parity_bf16_long.err"
  echo "exit $?"; grep -E "ms_per_model_token|ratio_to_limit" "$out/parity_bf16_long.json"
fi

step table
python3 - "$out" <<'PY' | tee "$out/results.md"
import json, os, sys
out = sys.argv[1]
def load(name):
    try: return json.load(open(os.path.join(out, name)))
    except Exception: return None
rows, hf = [], load("hf.json") or {}
bf16 = (load("parity_bf16.json") or []) + (load("parity_bf16_long.json") or [])
fp32 = load("parity_fp32.json") or []
# Rows in the order they ran; within one process the first SDPA row pays cuDNN's plan building
# for every new key length, later rows reuse the plans (marked "plans cached").
print("| what | prompt | ms per model-token | x limit | HF eager / this | model A alone: ms per step / host issue |")
print("|---|---|---|---|---|---|")
eager = hf.get("eager", {}).get("ms_per_token")
for rows in (bf16, fp32):
    seen = set()
    for r in rows:
        mode = "pipelined" if r["pipelined"] else "synchronous"
        fill = "fill on" if r["fill_uninitialized_memory"] else "fill off"
        cached = ", plans cached" if r["sdpa_kernel"] == "cudnn_attention" and r["prompt_tokens"] in seen else ""
        seen.add(r["prompt_tokens"])
        speed = f"{eager / r['ms_per_model_token']:.2f}" if eager and r["precision"] == "bf16" else ""
        graph = "graphs on" if r.get("graphs_requested") else "graphs off"
        print(f"| Parity lockstep {r['precision']} {mode}, {fill}, {graph} ({'/'.join(r['attention'])}, {r['sdpa_kernel']}{cached}) "
              f"| {r['prompt_tokens']} | {r['ms_per_model_token']:.2f} | {r['ratio_to_limit']:.2f} "
              f"(limit {r['limit_ms_per_model_token']:.2f}) | {speed} | {r['alone_ms_per_step']:.1f} / "
              f"{r['alone_issue_ms_per_step']:.1f} |")
        if r.get("graphs_requested"):
            print(f"|   engines: {' / '.join(r['engine'])} | | | | | |")
limit = next((r["limit_ms_per_model_token"] for r in bf16), None)
for impl, v in hf.items():
    ratio = f"{v['ms_per_token'] / limit:.2f}" if limit else ""
    print(f"| HF generate(output_logits) bf16 {impl} (one model) | 16 | {v['ms_per_token']:.2f} | {ratio} | |")
if bf16:
    print(f"\ncopy bandwidth {bf16[0]['copy_bandwidth_bytes_per_s'] / 1e12:.2f} TB/s (read + write), "
          f"weights {bf16[0]['weight_bytes'][0] / 1e9:.2f} GB per model at bf16")
PY
step done
