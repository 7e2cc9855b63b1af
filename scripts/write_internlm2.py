#!/usr/bin/env python3
"""Writes a random InternLM2 checkpoint of any size on the GPU machine (no download): config.json,
sharded safetensors with an index, std-0.02 matrices and unit norms, generated on the GPU from a
fixed seed. Used by scripts/gpu_placement.sh and scripts/gpu_placement_big.sh.

    scripts/write_internlm2.py DIR [--preset 1_8b|7b|40b] [--layers N] [--dtype bfloat16|float32]
        [--shards N]

Presets: 1_8b = internlm2-chat-1_8b's sizes (hidden 2048, 24 layers, 16 heads, 8 KV heads,
intermediate 8192, vocab 92544: 1.9B parameters); 7b = internlm2_5-7b-chat's (4096, 32, 32, 8,
14336: 7.7B); 40b = a 40B-shaped InternLM2 (hidden 6144, 84 layers, 48 heads, 8 KV heads,
intermediate 20480: 40.2B parameters, 80.5 GB at BF16, 161 GB at FP32).
"""
import argparse
import json
import os
import time

import torch
from safetensors.torch import save_file

PRESETS = {
    "1_8b": dict(D=2048, L=24, H=16, KV=8, F=8192),
    "7b": dict(D=4096, L=32, H=32, KV=8, F=14336),
    "40b": dict(D=6144, L=84, H=48, KV=8, F=20480),
}

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--preset", default="1_8b", choices=sorted(PRESETS))
ap.add_argument("--layers", type=int)
ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
ap.add_argument("--shards", type=int, default=4)
a = ap.parse_args()
p = dict(PRESETS[a.preset])
if a.layers:
    p["L"] = a.layers
V, D, L, H, KV, F = 92544, p["D"], p["L"], p["H"], p["KV"], p["F"]
d, G = D // H, H // KV
dtype = getattr(torch, a.dtype)
t0 = time.time()
cfg = {"architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2", "vocab_size": V,
       "hidden_size": D, "intermediate_size": F, "num_hidden_layers": L,
       "num_attention_heads": H, "num_key_value_heads": KV, "hidden_act": "silu",
       "max_position_embeddings": 32768, "rms_norm_eps": 1e-5, "rope_theta": 1000000,
       "rope_scaling": {"type": "dynamic", "factor": 2.0}, "bias": False,
       "torch_dtype": a.dtype, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2,
       "tie_word_embeddings": False, "attn_implementation": "eager"}
g = torch.Generator(device="cuda").manual_seed(0)


def rnd(*shape):
    return (torch.randn(*shape, generator=g, device="cuda") * 0.02).to(dtype).cpu()


names = ["model.tok_embeddings.weight"]
for i in range(L):
    q = f"model.layers.{i}."
    names += [q + "attention.wqkv.weight", q + "attention.wo.weight", q + "feed_forward.w1.weight",
              q + "feed_forward.w3.weight", q + "feed_forward.w2.weight",
              q + "attention_norm.weight", q + "ffn_norm.weight"]
names += ["model.norm.weight", "output.weight"]


def make(name):
    if name.endswith("norm.weight"):
        return torch.ones(D, dtype=dtype)
    if "tok_embeddings" in name or name == "output.weight":
        return rnd(V, D)
    if "wqkv" in name:
        return rnd(KV * (G + 2) * d, D)
    if "wo" in name:
        return rnd(D, D)
    if "w2" in name:
        return rnd(D, F)
    return rnd(F, D)


os.makedirs(a.dir, exist_ok=True)
per = (len(names) + a.shards - 1) // a.shards
weight_map, total = {}, 0
for s in range(a.shards):
    file = f"model-{s + 1:05d}-of-{a.shards:05d}.safetensors"
    tensors = {n: make(n) for n in names[s * per:(s + 1) * per]}
    save_file(tensors, os.path.join(a.dir, file), metadata={"format": "pt"})
    for n, t in tensors.items():
        weight_map[n] = file
        total += t.numel() * t.element_size()
json.dump(cfg, open(os.path.join(a.dir, "config.json"), "w"), indent=2)
json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
          open(os.path.join(a.dir, "model.safetensors.index.json"), "w"), indent=2)
print(f"wrote {len(names)} tensors ({a.preset}, {L} layers, {a.dtype}), {total / 1e9:.1f} GB, "
      f"{time.time() - t0:.0f} s")
