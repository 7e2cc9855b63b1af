#!/usr/bin/env bash
# Issue 11 on the GPU machine, after scripts/gpu_build.sh built build-gpu/parity: CUDA graphs of the
# decode step (decode/piecewise.h) checked and timed, within ~150 s on one H200.
#   0. the graph translation unit (harness/decode/cuda/): if it did not build, its compiler errors go
#      to graph_build_errors.txt, build-gpu is reconfigured with -DPARITY_CUDA_GRAPHS=OFF and parity
#      relinked (nothing else recompiles), and the rest runs eagerly ("cuda graphs: not built");
#   1. `parity bench --check --device cuda --graphs off`, then with `--graphs on` (the default:
#      graphs vs eager logits bitwise, every family and dtype; CUDA_LAUNCH_BLOCKING=1 on failure);
#   2. a random BF16 InternLM2 with TinyLlama-1.1B's sizes (V 32000, D 2048, 22 layers, 32 heads,
#      4 KV heads, F 5632; ~2.2 GB) written on the GPU, converted to Llama;
#   3. `parity bench original converted` with --graphs off, then on (separate processes): ms per
#      model-token against the bandwidth limit measured there; results.md summarises.
# Results in $OUT/engine.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/parity-gpu-out}/engine"
work=${WORK:-/tmp/parity-engine}
mkdir -p "$out" "$work"
export PYTHONUNBUFFERED=1
t0=$SECONDS
step() { echo "=== $* (+$((SECONDS - t0)) s)" | tee -a "$out/steps.log"; }
source build-gpu/env.sh 2>/dev/null || true
parity=./build-gpu/parity

step graph-build
fallback() {  # $1: the build log holding the errors
  grep -E -B2 -A12 "error|undefined reference" "$1" | head -200 > "$out/graph_build_errors.txt"
  step "graph TU or link failed: reconfigure with PARITY_CUDA_GRAPHS=OFF, relink"
  timeout 60 cmake -S . -B build-gpu -DPARITY_CUDA_GRAPHS=OFF > "$out/reconfigure.txt" 2>&1
  timeout 150 cmake --build build-gpu --target parity >> "$out/reconfigure.txt" 2>&1
  tail -3 "$out/reconfigure.txt"
}
if grep -q "PARITY_CUDA_GRAPHS:BOOL=ON" build-gpu/CMakeCache.txt 2>/dev/null; then
  if ! timeout 120 cmake --build build-gpu --target parity_cuda_graphs > "$out/graph_build.txt" 2>&1; then
    fallback "$out/graph_build.txt"
  elif [[ ! -x "$parity" ]] && ! timeout 150 cmake --build build-gpu --target parity \
      > "$out/parity_link.txt" 2>&1; then
    fallback "$out/parity_link.txt"
  fi
else
  echo "build-gpu was configured without PARITY_CUDA_GRAPHS (or has no CMakeCache)" | tee "$out/graph_build.txt"
fi
[[ -x "$parity" ]] || { echo "no parity binary" | tee -a "$out/steps.log"; exit 3; }
grep -E "PARITY_CUDA_GRAPHS|TORCH_INSTALL_PREFIX" build-gpu/CMakeCache.txt > "$out/cmake_flags.txt" 2>&1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1

step check
# The engine with graphs off, then the graph rows (the default since they passed) on their own: first as a run uses them,
# then, if they failed, with synchronous launches so that an error names its API call (the first GPU
# run, 2026-11-28, failed with "CUDA error: invalid argument" and no row printed). The single-model
# graph rows run on one host thread, the pipelined ones on two: which of them fail says whether
# concurrency is involved.
timeout 60 "$parity" bench --check --device cuda --graphs off > "$out/check.txt" 2>&1
echo "exit $?" >> "$out/check.txt"
tail -2 "$out/check.txt"
timeout 60 "$parity" bench --check --device cuda --graphs on > "$out/check_graphs.txt" 2>&1
rc=$?
echo "exit $rc" >> "$out/check_graphs.txt"
grep -E "graphs|DIFFERS|exit" "$out/check_graphs.txt" | head -12
if [[ $rc != 0 ]]; then
  CUDA_LAUNCH_BLOCKING=1 timeout 60 "$parity" bench --check --device cuda --graphs on \
    > "$out/check_graphs_blocking.txt" 2>&1
  echo "exit $?" >> "$out/check_graphs_blocking.txt"
fi

step write-checkpoint
timeout 60 python3 - "$work" > "$out/write.log" 2>&1 <<'PY'
import json, os, sys, time, torch
from safetensors.torch import save_file
work = sys.argv[1]
t0 = time.time()
V, D, L, H, KV, F = 32000, 2048, 22, 32, 4, 5632
d, G = D // H, H // KV
cfg = {"architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2", "vocab_size": V,
       "hidden_size": D, "intermediate_size": F, "num_hidden_layers": L,
       "num_attention_heads": H, "num_key_value_heads": KV, "hidden_act": "silu",
       "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000,
       "bias": False, "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2,
       "pad_token_id": 2, "tie_word_embeddings": False, "attn_implementation": "eager"}
g = torch.Generator(device="cuda").manual_seed(0)
def rnd(*shape):
    return (torch.randn(*shape, generator=g, device="cuda") * 0.02).to(torch.bfloat16).cpu()
tensors = {"model.tok_embeddings.weight": rnd(V, D), "model.norm.weight": torch.ones(D, dtype=torch.bfloat16),
           "output.weight": rnd(V, D)}
for i in range(L):
    p = f"model.layers.{i}."
    tensors[p + "attention.wqkv.weight"] = rnd(KV * (G + 2) * d, D)
    tensors[p + "attention.wo.weight"] = rnd(D, D)
    tensors[p + "feed_forward.w1.weight"] = rnd(F, D)
    tensors[p + "feed_forward.w3.weight"] = rnd(F, D)
    tensors[p + "feed_forward.w2.weight"] = rnd(D, F)
    tensors[p + "attention_norm.weight"] = torch.ones(D, dtype=torch.bfloat16)
    tensors[p + "ffn_norm.weight"] = torch.ones(D, dtype=torch.bfloat16)
orig = os.path.join(work, "original")
os.makedirs(orig, exist_ok=True)
save_file(tensors, os.path.join(orig, "model.safetensors"), metadata={"format": "pt"})
json.dump(cfg, open(os.path.join(orig, "config.json"), "w"), indent=2)
print(f"wrote {len(tensors)} tensors, {sum(t.numel() for t in tensors.values()) * 2 / 1e9:.2f} GB, "
      f"{time.time() - t0:.0f} s")
PY
tail -1 "$out/write.log"
timeout 20 python3 scripts/pad_spm_tokenizer.py "$work/original" \
  cases/fixtures/internlm2-tiny/tokenizer.model >> "$out/write.log" 2>&1

step convert
timeout 40 "$parity" convert internlm2-to-llama "$work/original" "$work/converted" \
  > "$out/convert.log" 2>&1
tail -1 "$out/convert.log"

step bench
# Graphs off first (the default engine), then on, in separate processes: an error in the opt-in
# path must not cost the eager figures.
timeout 45 "$parity" bench "$work/original" "$work/converted" --device cuda --dtype bf16 \
  --prompt-tokens 16 --new-tokens 64 --graphs off --json > "$out/bench_bf16.json" \
  2> "$out/bench_bf16.err"
echo "exit $?" | tee -a "$out/steps.log"
timeout 45 "$parity" bench "$work/original" "$work/converted" --device cuda --dtype bf16 \
  --prompt-tokens 16 --new-tokens 64 --graphs on --json > "$out/bench_bf16_graphs.json" \
  2> "$out/bench_bf16_graphs.err"
echo "exit $?" | tee -a "$out/steps.log"
python3 -c 'import json,sys; json.dump(sum((json.load(open(f)) for f in sys.argv[1:] if open(f).read(1)), []), open(sys.argv[1], "w"))' \
  "$out/bench_bf16.json" "$out/bench_bf16_graphs.json" 2>/dev/null
timeout 10 python3 - "$out/bench_bf16.json" > "$out/results.md" 2>&1 <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
print("| graphs | ms / model-token | limit ms | x limit | ATen ops + graph launches / model-token | engine A | engine B |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {'on' if r['graphs_requested'] else 'off'} | {r['ms_per_model_token']:.3f} | "
          f"{r['limit_ms_per_model_token']:.3f} | {r['ratio_to_limit']:.2f} | "
          f"{r['aten_ops_per_model_token']:.0f} + {r['graph_launches_per_model_token']:.0f} | "
          f"{r['engine'][0]} | {r['engine'][1]} |")
for r in rows:
    print(f"graphs {'on' if r['graphs_requested'] else 'off'}: prefill+1 {r['prefill_ms']:.1f} ms, "
          f"alone {r['alone_ms_per_step']:.2f} ms/step (issue {r['alone_issue_ms_per_step']:.2f}), "
          f"sdpa kernel {r['sdpa_kernel']}, attention {r['attention']}, divergence {r['first_divergence_step']}")
PY
cat "$out/results.md"
step done
