#!/usr/bin/env bash
# The verdicts at 7B scale on the GPU machine, in one go (issue 8): writes a random BF16 InternLM2
# checkpoint of internlm2_5-7b-chat's sizes there (no download), converts it with `parity convert`,
# plants a fault in a copy (layer 16's MLP w2 scaled by 1.05), and runs
#   1. original vs conversion, --dtypes bf16,fp64 (the FP64 oracle, and the FP64 pair) on a GPU
#      limited to 80 GB: a second process holds the rest of the card for the whole run, so the run
#      has at most 80 GB (cudaMemGetInfo reports it to Parity's planner as well);
#   2. original vs the faulty copy at BF16 with the oracle (expect `real`, exit 1);
#   3. original vs conversion at BF16 without the oracle (the run's own evidence).
# Peak GPU memory of the parity process is sampled with nvidia-smi every 0.2 s; oracle times come
# from Parity's log ("FP64 oracle: ... loaded in ... s, ... teacher-forced run(s) in ... s").
# Results go to $OUT (summaries, logs, results.txt).
#   SIZE=tiny bash scripts/gpu_verdicts.sh   runs the same steps on a 2-layer model (CPU check)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/parity-verdicts-out}
work=${WORK:-/tmp/parity-verdicts}
size=${SIZE:-7b}
device=${DEVICE:-cuda}
limit_gb=${LIMIT_GB:-80}
mkdir -p "$out" "$work"
export PYTHONUNBUFFERED=1
step() { echo "=== $* ($(date +%T))" | tee -a "$out/steps.log"; }

parity=./build/parity
if [[ "$size" == 7b ]]; then
  step build
  PARITY_BUILD_TARGET=parity bash scripts/gpu_build.sh build-gpu > "$out/build.log" 2>&1 || true
  grep -E "error|FAILED" "$out/build.log" | head -20
  source build-gpu/env.sh
  parity=./build-gpu/parity
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
fi
[[ -x "$parity" ]] || { echo "no parity binary"; exit 3; }

step write-checkpoint
[[ -f "$work/original/config.json" ]] && echo "reusing $work" || python3 - "$work" "$size" <<'PY' > "$out/write.log" 2>&1
# Random BF16 InternLM2 with internlm2_5-7b-chat's sizes (or a tiny one), std 0.02 matrices
# (logit std ~1.3 at hidden 4096), unit norms, written as 8 safetensors shards with an index; the
# faulty copy shares every shard but the one holding layer 16's w2, rewritten with w2 x 1.05.
import json, os, sys, time, torch
from safetensors.torch import save_file, load_file
work, size = sys.argv[1], sys.argv[2]
t0 = time.time()
if size == "7b":
    V, D, L, H, KV, F, shards, dev = 92544, 4096, 32, 32, 8, 14336, 8, "cuda"
else:
    V, D, L, H, KV, F, shards, dev = 512, 64, 4, 8, 2, 176, 2, "cpu"
d, G = D // H, H // KV
cfg = {"architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2", "vocab_size": V,
       "hidden_size": D, "intermediate_size": F, "num_hidden_layers": L,
       "num_attention_heads": H, "num_key_value_heads": KV, "hidden_act": "silu",
       "max_position_embeddings": 32768, "rms_norm_eps": 1e-5, "rope_theta": 1000000,
       "rope_scaling": {"type": "dynamic", "factor": 2.0}, "bias": False,
       "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2,
       "tie_word_embeddings": False, "attn_implementation": "eager"}
g = torch.Generator(device=dev).manual_seed(0)
def rnd(*shape):
    return (torch.randn(*shape, generator=g, device=dev) * 0.02).to(torch.bfloat16).cpu()
def ones(n):
    return torch.ones(n, dtype=torch.bfloat16)
names = ["model.tok_embeddings.weight"]
for i in range(L):
    p = f"model.layers.{i}."
    names += [p + "attention.wqkv.weight", p + "attention.wo.weight", p + "feed_forward.w1.weight",
              p + "feed_forward.w3.weight", p + "feed_forward.w2.weight",
              p + "attention_norm.weight", p + "ffn_norm.weight"]
names += ["model.norm.weight", "output.weight"]
def make(name):
    if name.endswith("norm.weight"): return ones(D)
    if "tok_embeddings" in name or name == "output.weight": return rnd(V, D)
    if "wqkv" in name: return rnd(KV * (G + 2) * d, D)
    if "wo" in name: return rnd(D, D)
    if "w2" in name: return rnd(D, F)
    return rnd(F, D)
orig, faulty = os.path.join(work, "original"), os.path.join(work, "faulty")
os.makedirs(orig, exist_ok=True); os.makedirs(faulty, exist_ok=True)
per = (len(names) + shards - 1) // shards
weight_map, total = {}, 0
fault_name = f"model.layers.{L // 2}.feed_forward.w2.weight"
for s in range(shards):
    file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
    tensors = {n: make(n) for n in names[s * per:(s + 1) * per]}
    save_file(tensors, os.path.join(orig, file), metadata={"format": "pt"})
    for n, t in tensors.items():
        weight_map[n] = file; total += t.numel() * 2
    if fault_name in tensors:
        tensors[fault_name] = (tensors[fault_name].double() * 1.05).to(torch.bfloat16)
        save_file(tensors, os.path.join(faulty, file), metadata={"format": "pt"})
    else:
        os.symlink(os.path.join(orig, file), os.path.join(faulty, file))
for d_ in (orig, faulty):
    json.dump(cfg, open(os.path.join(d_, "config.json"), "w"), indent=2)
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
              open(os.path.join(d_, "model.safetensors.index.json"), "w"), indent=2)
print(f"wrote {len(names)} tensors, {total / 1e9:.1f} GB, fault in {fault_name}, "
      f"{time.time() - t0:.0f} s")
PY
tail -2 "$out/write.log"
# convert2llama copies tokenizer.model: give the original one, the trained fixture's SentencePiece
# model padded with placeholder pieces up to the model's vocabulary (ids decode to text).
python3 scripts/pad_spm_tokenizer.py "$work/original" \
  cases/fixtures/internlm2-tiny/tokenizer.model >> "$out/write.log" 2>&1
tail -1 "$out/write.log"

step convert
/usr/bin/time -v "$parity" convert internlm2-to-llama "$work/original" "$work/converted" \
  > "$out/convert.log" 2>&1
grep -E "Elapsed|Maximum resident" "$out/convert.log"

# Peak GPU memory of parity processes, sampled every 0.2 s (MiB).
sample_memory() {
  local file=$1
  : > "$file"
  while true; do
    nvidia-smi --query-compute-apps=process_name,used_memory --format=csv,noheader,nounits \
      2>/dev/null | grep parity >> "$file"
    sleep 0.2
  done
}
peak() { awk -F', ' 'BEGIN{m=0} {if ($2 > m) m = $2} END{print m " MiB"}' "$1"; }

prompts="--prompt-tokens 1,92543,1008,364,505,395 --prompt-tokens 1,5,17,300,4000,12"
run_compare() {  # name, then compare arguments
  local name=$1; shift
  step "compare $name"
  local sampler=""
  if [[ "$device" == cuda ]]; then sample_memory "$out/mem_$name.txt" & sampler=$!; fi
  /usr/bin/time -v timeout 420 "$parity" compare "$@" $prompts --device "$device" \
    --out "$work/out_$name" > "$out/compare_$name.log" 2>&1
  echo "exit $?" | tee -a "$out/compare_$name.log"
  [[ -n "$sampler" ]] && kill "$sampler" && echo "peak GPU memory of parity: $(peak "$out/mem_$name.txt")" \
    | tee -a "$out/compare_$name.log"
  cp "$work/out_$name/summary.json" "$out/summary_$name.json" 2>/dev/null
  grep -E "step [0-9]+: |verdict|FP64 oracle|Elapsed|needs" "$out/compare_$name.log" | head -20
}

# Hold all but $limit_gb of the card in another process for the oracle run.
hog=""
if [[ "$device" == cuda ]]; then
  python3 - "$limit_gb" <<'PY' > "$out/hog.log" 2>&1 &
import sys, time, torch
free, total = torch.cuda.mem_get_info()
keep = int(sys.argv[1]) * 10**9
hold = max(0, free - keep)
x = torch.empty(hold, dtype=torch.uint8, device="cuda")
print(f"holding {hold / 1e9:.1f} GB of {total / 1e9:.1f} GB; about {(free - hold) / 1e9:.1f} GB left",
      flush=True)
time.sleep(3600)
PY
  hog=$!
  sleep 15; cat "$out/hog.log"
fi
run_compare oracle "$work/original" "$work/converted" --dtypes bf16,fp64 --max-new-tokens 32
[[ -z "${SKIP_FAULT:-}" ]] && run_compare fault "$work/original" "$work/faulty" --dtypes bf16 --oracle --max-new-tokens 32
[[ -n "$hog" ]] && kill "$hog"
run_compare bf16 "$work/original" "$work/converted" --dtypes bf16 --max-new-tokens 32

step done
cat "$out/steps.log"
