#!/usr/bin/env bash
# diff-weights on a 7B-shaped checkpoint pair, on the GPU machine (its CPU does the work: weight
# explanation runs on the CPU). Writes a random BF16 Llama checkpoint with internlm2_5-7b-chat sizes
# (vocab 92544, hidden 4096, 32 layers, 32 heads, 8 KV heads, intermediate 14336; 8 shards), makes B
# from it with hard links except one shard rewritten with planted faults, and times
# `parity diff-weights A B` with all cores and with 2 (taskset), writing the logs under $OUT.
# Usage (repository root, after scripts/gpu_build.sh build-gpu -DPARITY_BUILD_TESTS=OFF):
#   bash scripts/weight_explain_7b.sh build-gpu /tmp/w7b
set -euo pipefail
build=${1:-build-gpu}
work=${2:-/tmp/w7b}
out=${OUT:-$work/out}
mkdir -p "$work" "$out"
python3 - "$work" <<'PY'
import json, os, sys, torch
from safetensors.torch import save_file
work = sys.argv[1]
V, D, L, H, KV, F = 92544, 4096, 32, 32, 8, 14336
d = D // H
torch.manual_seed(0)
dev = "cuda" if torch.cuda.is_available() else "cpu"
def w(*shape): return (torch.randn(*shape, device=dev) * 0.02).to(torch.bfloat16).cpu()
def norm(): return (1 + torch.randn(D, device=dev) * 0.02).to(torch.bfloat16).cpu()
names = {}
shards = [dict() for _ in range(8)]
shards[0]["model.embed_tokens.weight"] = w(V, D)
for i in range(L):
    s = shards[i // 4]
    p = f"model.layers.{i}."
    s[p + "input_layernorm.weight"] = norm(); s[p + "post_attention_layernorm.weight"] = norm()
    s[p + "self_attn.q_proj.weight"] = w(H * d, D); s[p + "self_attn.k_proj.weight"] = w(KV * d, D)
    s[p + "self_attn.v_proj.weight"] = w(KV * d, D); s[p + "self_attn.o_proj.weight"] = w(D, H * d)
    s[p + "mlp.gate_proj.weight"] = w(F, D); s[p + "mlp.up_proj.weight"] = w(F, D)
    s[p + "mlp.down_proj.weight"] = w(D, F)
shards[7]["model.norm.weight"] = norm(); shards[7]["lm_head.weight"] = w(V, D)
config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": V,
          "hidden_size": D, "intermediate_size": F, "num_hidden_layers": L,
          "num_attention_heads": H, "num_key_value_heads": KV, "max_position_embeddings": 32768,
          "rms_norm_eps": 1e-5, "rope_theta": 1000000.0, "attention_bias": False,
          "tie_word_embeddings": False, "torch_dtype": "bfloat16", "bos_token_id": 1,
          "eos_token_id": 2, "hidden_act": "silu"}
def write(dir, shards):
    os.makedirs(dir, exist_ok=True)
    weight_map, total = {}, 0
    for k, s in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-00008.safetensors"
        save_file(s, os.path.join(dir, fname), metadata={"format": "pt"})
        for n, t in s.items():
            weight_map[n] = fname; total += t.numel() * 2
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
              open(os.path.join(dir, "model.safetensors.index.json"), "w"), indent=2)
    json.dump(config, open(os.path.join(dir, "config.json"), "w"), indent=2)
write(os.path.join(work, "A"), shards)
# B: shard 1 (layers 0-3 and the embedding) with faults; the other shards hard-linked.
s = dict(shards[0])
p = "model.layers."
s[p + "0.mlp.down_proj.weight"] = (s[p + "0.mlp.down_proj.weight"].float() * 1.01).to(torch.bfloat16)
q = s[p + "1.self_attn.q_proj.weight"]; s[p + "1.self_attn.q_proj.weight"] = torch.cat([q[d:], q[:d]])
s[p + "2.mlp.gate_proj.weight"], s[p + "2.mlp.up_proj.weight"] = s[p + "2.mlp.up_proj.weight"], s[p + "2.mlp.gate_proj.weight"]
e = s["model.embed_tokens.weight"].clone(); e[[5, 6]] = e[[6, 5]]; s["model.embed_tokens.weight"] = e
s[p + "3.self_attn.o_proj.weight"] = -s[p + "3.self_attn.o_proj.weight"]
k = s[p + "3.self_attn.k_proj.weight"]
s[p + "3.self_attn.k_proj.weight"] = k.reshape(KV, 2, d // 2, D).swapaxes(1, 2).reshape(k.shape).contiguous()
u = s[p + "3.mlp.up_proj.weight"]; s[p + "3.mlp.up_proj.weight"] = (u.float() + torch.randn(u.shape) * 1e-3).to(torch.bfloat16)
b = os.path.join(work, "B"); os.makedirs(b, exist_ok=True)
save_file(s, os.path.join(b, "model-00001-of-00008.safetensors"), metadata={"format": "pt"})
for k in range(1, 8):
    f = f"model-{k + 1:05d}-of-00008.safetensors"
    os.link(os.path.join(work, "A", f), os.path.join(b, f))
for f in ("model.safetensors.index.json", "config.json"):
    os.link(os.path.join(work, "A", f), os.path.join(b, f))
PY
source "$build/env.sh"
du -sh "$work/A" > "$out/size.txt"
TIMEFORMAT='wall %R s, user %U s, sys %S s'
{ time "$build/parity" diff-weights "$work/A" "$work/B" --out "$out/all" > "$out/diff_all.txt" 2>&1; } 2> "$out/time_all.txt" || true
{ time taskset -c 0,1 env OMP_NUM_THREADS=2 "$build/parity" diff-weights "$work/A" "$work/B" > "$out/diff_2cores.txt" 2>&1; } 2> "$out/time_2cores.txt" || true
nproc > "$out/nproc.txt"
