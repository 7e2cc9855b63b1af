#!/usr/bin/python3
"""Trains the small InternLM2-shaped test fixture on CPU, deterministically, and writes it as a
Hugging Face InternLM2 checkpoint (config, BF16 weights in two safetensors shards + index, tokenizer).

    /usr/bin/python3 scripts/train_fixture.py --out cases/fixtures/internlm2-tiny

Why: random weights give near-uniform logits where nearly every greedy step is a near-tie. A model
trained for a few minutes on license text (scripts/fixture_corpus.py) has confident, fluent greedy
output, so a divergence between two implementations can happen the way it does on real checkpoints
(e.g. right after the first newline).

Determinism: fixed seeds, one fixed data order, torch.use_deterministic_algorithms(True), a fixed
thread count (torch and OpenBLAS), and a hand-written safetensors writer with a fixed layout. Two runs
on the same machine (same torch, same BLAS library, same corpus files) give byte-identical files.
The corpus is read from /usr/share/doc, which changes whenever a package is installed (seen while
this fixture was made), so the list of files used, with their sha256, is kept in
OUT/corpus_manifest.json and a rebuild into the same directory reads exactly those files
(`--fresh-corpus` selects afresh; a file that changed since is an error naming it).

The forward pass below follows InternLM2's remote modeling code (modeling_internlm2.py, eager
attention): packed wqkv, RMSNorm with FP32 upcast, rotate-half rotary embeddings from a precomputed
table, FP32 softmax, SiLU-gated MLP. It is written here from that description, not copied.
"""

import argparse
import hashlib
import json
import math
import os
import platform
import struct
import sys
import time

THREADS = 1
# One thread: on the shared 2-core machine, two OpenBLAS/OpenMP threads competing with compilers ran
# 3-8x slower per step than one (measured: 1.1-1.4 s vs 3.5-8.7 s per step). The count is forced, not
# defaulted, because OpenBLAS reads it at load time and the GEMM work split, and so the FP32 results,
# depend on it.
os.environ["OPENBLAS_NUM_THREADS"] = str(THREADS)
os.environ["OMP_NUM_THREADS"] = str(THREADS)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_corpus  # noqa: E402

# Model shape. head_dim = 256 / 8 = 32; G = heads / kv_heads = 4 query heads per KV head.
CONFIG = dict(
    hidden_size=256,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=2,
    intermediate_size=704,
    max_position_embeddings=512,
    rope_theta=1000000,
    rope_scaling={"type": "dynamic", "factor": 2.0},
    rms_norm_eps=1e-05,
    initializer_range=0.02,
)


class RMSNorm(nn.Module):
    """InternLM2RMSNorm: upcast to FP32, x * rsqrt(mean(x^2) + eps), cast back, times the weight."""

    def __init__(self, size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        in_dtype = x.dtype
        x32 = x.to(torch.float32)
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(in_dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotary_tables(head_dim, length, theta):
    """cos/sin [length, head_dim] as InternLM2 precomputes them (FP32, frequencies repeated twice).
    Dynamic NTK scaling only applies beyond max_position_embeddings, which training never reaches."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
    t = torch.arange(length, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.heads = cfg["num_attention_heads"]
        self.kv_heads = cfg["num_key_value_heads"]
        self.groups = self.heads // self.kv_heads
        self.head_dim = cfg["hidden_size"] // self.heads
        hidden = cfg["hidden_size"]
        # Rows: kv_heads blocks of (G + 2) * head_dim: G query heads, the group's K head, its V head.
        self.wqkv = nn.Linear(hidden, (self.heads + 2 * self.kv_heads) * self.head_dim, bias=False)
        self.wo = nn.Linear(self.heads * self.head_dim, hidden, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        qkv = self.wqkv(x).view(b, t, self.kv_heads, self.groups + 2, self.head_dim)
        q = qkv[..., : self.groups, :].reshape(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = qkv[..., -2, :].transpose(1, 2)  # [b, kv_heads, t, d]
        v = qkv[..., -1, :].transpose(1, 2)
        cos, sin = cos[:t].to(x.dtype), sin[:t].to(x.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # Query head i reads KV head i // G.
        k = k[:, :, None].expand(b, self.kv_heads, self.groups, t, self.head_dim).reshape(
            b, self.heads, t, self.head_dim)
        v = v[:, :, None].expand(b, self.kv_heads, self.groups, t, self.head_dim).reshape(
            b, self.heads, t, self.head_dim)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim) + mask
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, self.heads * self.head_dim)
        return self.wo(out)


class FeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        hidden, inner = cfg["hidden_size"], cfg["intermediate_size"]
        self.w1 = nn.Linear(hidden, inner, bias=False)  # gate
        self.w3 = nn.Linear(hidden, inner, bias=False)  # up
        self.w2 = nn.Linear(inner, hidden, bias=False)  # down

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attention = Attention(cfg)
        self.feed_forward = FeedForward(cfg)
        self.attention_norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.ffn_norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])

    def forward(self, h, cos, sin, mask):
        h = h + self.attention(self.attention_norm(h), cos, sin, mask)
        return h + self.feed_forward(self.ffn_norm(h))


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok_embeddings = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])


class InternLM2(nn.Module):
    """Parameter names equal the HF checkpoint's: model.tok_embeddings.weight, ..., output.weight."""

    def __init__(self, cfg):
        super().__init__()
        self.model = Backbone(cfg)
        self.output = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        head_dim = cfg["hidden_size"] // cfg["num_attention_heads"]
        cos, sin = rotary_tables(head_dim, cfg["max_position_embeddings"], cfg["rope_theta"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, ids):
        """ids [b, t] -> logits [b, t, vocab] in FP32."""
        t = ids.shape[1]
        h = self.model.tok_embeddings(ids)
        mask = torch.full((t, t), torch.finfo(h.dtype).min).triu(1).to(h.dtype)
        for layer in self.model.layers:
            h = layer(h, self.cos, self.sin, mask)
        return self.output(self.model.norm(h)).float()


def init_weights(model, cfg):
    std = cfg["initializer_range"]
    residual_std = std / math.sqrt(2 * cfg["num_hidden_layers"])  # GPT-2 style for wo and w2
    for name, param in model.named_parameters():
        if name.endswith("norm.weight"):
            continue
        scale = residual_std if name.endswith(("wo.weight", "w2.weight")) else std
        with torch.no_grad():
            param.normal_(0.0, scale)


def llama_split_logits(state, cfg, ids):
    """Independent Llama-layout forward from wqkv split as convert2llama does (q_proj/k_proj/v_proj),
    with repeat_interleave for the KV heads. Checks that the packing used in training is the one a
    converter will undo. ids [1, t] -> logits [t, vocab]."""
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hidden = cfg["hidden_size"]
    d, groups = hidden // heads, heads // kv_heads
    eps = cfg["rms_norm_eps"]

    def norm(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    cos, sin = rotary_tables(d, ids.shape[1], cfg["rope_theta"])
    t = ids.shape[1]
    h = state["model.tok_embeddings.weight"][ids[0]]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        wqkv = state[p + "attention.wqkv.weight"].view(kv_heads, groups + 2, d, hidden)
        q_proj = wqkv[:, :groups].reshape(heads * d, hidden)
        k_proj = wqkv[:, -2].reshape(kv_heads * d, hidden)
        v_proj = wqkv[:, -1].reshape(kv_heads * d, hidden)
        x = norm(h, state[p + "attention_norm.weight"])
        q = (x @ q_proj.T).view(t, heads, d).transpose(0, 1)
        k = (x @ k_proj.T).view(t, kv_heads, d).transpose(0, 1)
        v = (x @ v_proj.T).view(t, kv_heads, d).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(groups, dim=0)
        v = v.repeat_interleave(groups, dim=0)
        scores = (q @ k.transpose(1, 2)) / math.sqrt(d)
        scores = scores.masked_fill(~causal, float("-inf"))
        attn = (scores.softmax(-1) @ v).transpose(0, 1).reshape(t, hidden)
        h = h + attn @ state[p + "attention.wo.weight"].T
        x = norm(h, state[p + "ffn_norm.weight"])
        gate = x @ state[p + "feed_forward.w1.weight"].T
        up = x @ state[p + "feed_forward.w3.weight"].T
        h = h + (F.silu(gate) * up) @ state[p + "feed_forward.w2.weight"].T
    return norm(h, state["model.norm.weight"]) @ state["output.weight"].T


# ----------------------------------------------------------------------------------------------
# Data


class Batches:
    """Fixed-order batches of rows [BOS] + 128 tokens: most rows are windows of the document stream
    starting at a line start, the rest are packed ChatML dialogues. One numpy RandomState drives all."""

    def __init__(self, stream, line_starts, chat_rows, seq_len, batch, chat_per_batch, seed):
        self.stream, self.chat = stream, chat_rows
        self.line_starts = [s for s in line_starts if s + seq_len <= len(stream)]
        self.seq_len, self.batch, self.chat_per_batch = seq_len, batch, chat_per_batch
        self.rng = np.random.RandomState(seed)
        self.chat_order, self.chat_pos = self.rng.permutation(len(chat_rows)), 0

    def _chat_row(self, bos):
        row = [bos]
        while len(row) < self.seq_len + 1:
            if self.chat_pos == len(self.chat_order):
                self.chat_order, self.chat_pos = self.rng.permutation(len(self.chat)), 0
            row.extend(self.chat[self.chat_order[self.chat_pos]])
            self.chat_pos += 1
        return row[: self.seq_len + 1]

    def next(self, bos):
        rows = []
        for _ in range(self.batch - self.chat_per_batch):
            start = self.line_starts[self.rng.randint(len(self.line_starts))]
            rows.append([bos] + self.stream[start: start + self.seq_len])
        for _ in range(self.chat_per_batch):
            rows.append(self._chat_row(bos))
        data = torch.tensor(rows, dtype=torch.long)
        return data[:, :-1], data[:, 1:]


def build_data(documents, examples, sp):
    eos, newline = sp.eos_id(), sp.piece_to_id("<0x0A>")
    stream, line_starts = [], []
    for doc in documents:
        ids = sp.encode(doc["text"])
        line_starts.append(len(stream))
        for i, token in enumerate(ids[:-1]):
            if token == newline and ids[i + 1] != newline:
                line_starts.append(len(stream) + i + 1)
        stream.extend(ids)
        stream.append(eos)
    chat_rows = [sp.encode(example) for example in examples]
    return stream, line_starts, chat_rows


# ----------------------------------------------------------------------------------------------
# Checkpoint writing


def safetensors_bytes(tensors):
    """safetensors file for {name: bf16 tensor}: u64 LE header length, JSON header padded with spaces
    to a multiple of 8, then the data in sorted-name order."""
    header = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        assert tensor.dtype == torch.bfloat16, name
        blob = tensor.view(torch.int16).numpy().astype("<i2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write_file(path, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path + ".tmp"
    with open(tmp, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def write_json(path, value):
    write_file(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def hf_config(vocab_size):
    return {
        "architectures": ["InternLM2ForCausalLM"],
        "attn_implementation": "eager",
        "auto_map": {
            "AutoConfig": "configuration_internlm2.InternLM2Config",
            "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM",
            "AutoModel": "modeling_internlm2.InternLM2ForCausalLM",
        },
        "bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": CONFIG["hidden_size"],
        "initializer_range": CONFIG["initializer_range"],
        "intermediate_size": CONFIG["intermediate_size"],
        "max_position_embeddings": CONFIG["max_position_embeddings"],
        "model_type": "internlm2",
        "num_attention_heads": CONFIG["num_attention_heads"],
        "num_hidden_layers": CONFIG["num_hidden_layers"],
        "num_key_value_heads": CONFIG["num_key_value_heads"],
        "pad_token_id": 2,
        "rms_norm_eps": CONFIG["rms_norm_eps"],
        "rope_scaling": CONFIG["rope_scaling"],
        "rope_theta": CONFIG["rope_theta"],
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.41.0",
        "use_cache": True,
        "vocab_size": vocab_size,
        "pretraining_tp": 1,
    }


def special_token(content):
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": True}


def tokenizer_files(sp):
    im_start, im_end = sp.piece_to_id(fixture_corpus.IM_START), sp.piece_to_id(fixture_corpus.IM_END)
    decoder = {str(i): special_token(sp.id_to_piece(i)) for i in (0, 1, 2, im_start, im_end)}
    tokenizer_config = {
        "added_tokens_decoder": decoder,
        "additional_special_tokens": [fixture_corpus.IM_START, fixture_corpus.IM_END],
        "auto_map": {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer",
                                       "tokenization_internlm2_fast.InternLM2TokenizerFast"]},
        "bos_token": "<s>",
        "chat_template": ("{{ bos_token }}{% for message in messages %}{{'<|im_start|>' + "
                          "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
                          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                          "{% endif %}"),
        "clean_up_tokenization_spaces": False,
        "decode_with_prefix_space": False,
        "eos_token": "</s>",
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": "</s>",
        "sp_model_kwargs": None,
        "tokenizer_class": "InternLM2Tokenizer",
        "unk_token": "<unk>",
    }
    plain = {k: v for k, v in special_token("").items() if k != "special"}
    special_tokens_map = {
        "additional_special_tokens": [fixture_corpus.IM_START, fixture_corpus.IM_END],
        "bos_token": dict(plain, content="<s>"),
        "eos_token": dict(plain, content="</s>"),
        "pad_token": dict(plain, content="</s>"),
        "unk_token": dict(plain, content="<unk>"),
    }
    generation_config = {"bos_token_id": 1, "eos_token_id": [2, im_end], "pad_token_id": 2,
                         "transformers_version": "4.41.0"}
    return tokenizer_config, special_tokens_map, generation_config


def write_checkpoint(out, model, cfg, sp, model_bytes):
    os.makedirs(out, exist_ok=True)
    state = {name: t.detach().to(torch.bfloat16) for name, t in model.state_dict().items()
             if name not in ("cos", "sin")}
    # Two shards, split by layer as HF's size-based sharding would: embeddings + first half of the
    # layers, then the rest + final norm + output head.
    half = cfg["num_hidden_layers"] // 2

    def shard_of(name):
        if name.startswith("model.layers."):
            return 0 if int(name.split(".")[2]) < half else 1
        return 0 if name.startswith("model.tok_embeddings") else 1

    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map, total = {}, 0
    for index, filename in enumerate(files):
        part = {n: t for n, t in state.items() if shard_of(n) == index}
        write_file(os.path.join(out, filename), safetensors_bytes(part))
        for name, tensor in part.items():
            weight_map[name] = filename
            total += tensor.numel() * 2
    write_json(os.path.join(out, "model.safetensors.index.json"),
               {"metadata": {"total_size": total},
                "weight_map": {n: weight_map[n] for n in sorted(weight_map)}})
    write_json(os.path.join(out, "config.json"), hf_config(cfg["vocab_size"]))
    tokenizer_config, special_tokens_map, generation_config = tokenizer_files(sp)
    write_json(os.path.join(out, "tokenizer_config.json"), tokenizer_config)
    write_json(os.path.join(out, "special_tokens_map.json"), special_tokens_map)
    write_json(os.path.join(out, "generation_config.json"), generation_config)
    write_file(os.path.join(out, "tokenizer.model"), model_bytes)
    return state


# ----------------------------------------------------------------------------------------------
# Checks on the trained model


@torch.no_grad()
def greedy(model, ids, max_new, stop_ids):
    """Greedy continuation (full forward each step). Returns (new ids, top1-top2 margins)."""
    ids, new, margins = list(ids), [], []
    for _ in range(max_new):
        logits = model(torch.tensor([ids]))[0, -1]
        top = torch.topk(logits, 2).values
        margins.append(float(top[0] - top[1]))
        token = int(logits.argmax())
        ids.append(token)
        new.append(token)
        if token in stop_ids:
            break
    return new, margins


REBUILD_COMMAND = "/usr/bin/python3 scripts/train_fixture.py --out cases/fixtures/internlm2-tiny"

SAMPLE_PROMPTS = [
    ("plain", "This program is free software; you can redistribute it"),
    ("plain", "Permission is hereby granted, free of charge, to any person obtaining a copy"),
    ("plain", "THE SOFTWARE IS PROVIDED"),
    ("chat", "What does paragraph 2 of the GPL-3 license say?"),
    ("chat", "Quote paragraph 5 of the Apache-2.0 license."),
]


def encode_prompt(sp, kind, text):
    if kind == "chat":
        text = (f"{fixture_corpus.IM_START}user\n{text}{fixture_corpus.IM_END}\n"
                f"{fixture_corpus.IM_START}assistant\n")
    return [sp.bos_id()] + sp.encode(text)


def report_samples(model, sp, stop_ids, max_new):
    all_margins = []
    samples = []
    for kind, text in SAMPLE_PROMPTS:
        new, margins = greedy(model, encode_prompt(sp, kind, text), max_new, stop_ids)
        all_margins.extend(margins)
        decoded = sp.decode([t for t in new if t not in stop_ids])
        first_newline = next((i for i, t in enumerate(new) if sp.id_to_piece(t) == "<0x0A>"), None)
        print(f"--- [{kind}] {text!r} -> {len(new)} tokens, first newline at step {first_newline}, "
              f"min margin {min(margins):.3f}")
        print(decoded)
        samples.append({"kind": kind, "prompt": text, "new_ids": new,
                        "first_newline_step": first_newline})
    m = np.array(all_margins)
    print(f"--- greedy top1-top2 margins over {m.size} steps: min {m.min():.3f} p10 "
          f"{np.percentile(m, 10):.3f} median {np.median(m):.3f} max {m.max():.3f}; "
          f"{(m < 0.1).mean() * 100:.1f}% below 0.1, {(m < 1.0).mean() * 100:.1f}% below 1.0")
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output checkpoint directory")
    parser.add_argument("--manifest", help="corpus_manifest.json to read the corpus file list from "
                        "(default: OUT/corpus_manifest.json when it exists, so a rebuild reads the same "
                        "files; otherwise the files are selected from /usr/share afresh)")
    parser.add_argument("--fresh-corpus", action="store_true",
                        help="ignore OUT/corpus_manifest.json and select the corpus files afresh")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--sample-tokens", type=int, default=64)
    args = parser.parse_args()
    started = time.time()

    torch.manual_seed(args.seed)
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)

    manifest_path = args.manifest
    default_manifest = os.path.join(args.out, "corpus_manifest.json")
    if manifest_path is None and not args.fresh_corpus and os.path.exists(default_manifest):
        manifest_path = default_manifest
    print(f"corpus files: {'as listed in ' + manifest_path if manifest_path else 'selected afresh'}")
    manifest = json.load(open(manifest_path)) if manifest_path else None
    documents, manifest = fixture_corpus.load_documents(manifest)
    examples = fixture_corpus.chat_examples(documents)
    model_bytes = fixture_corpus.train_tokenizer(
        fixture_corpus.tokenizer_training_lines(documents, examples))
    sp = fixture_corpus.check_tokenizer(model_bytes)
    stream, line_starts, chat_rows = build_data(documents, examples, sp)
    print(f"corpus: {len(documents)} files, {len(stream)} tokens, {len(line_starts)} line starts, "
          f"{len(chat_rows)} chat examples; tokenizer vocab {sp.get_piece_size()} "
          f"({time.time() - started:.1f} s)", flush=True)

    cfg = dict(CONFIG, vocab_size=sp.get_piece_size())
    model = InternLM2(cfg)
    init_weights(model, cfg)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    warmup = max(1, args.steps // 20)

    def lr_at(step):  # linear warmup, cosine decay to 10% of the peak
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    batches = Batches(stream, line_starts, chat_rows, args.seq_len, args.batch,
                      chat_per_batch=args.batch // 4, seed=args.seed)
    print(f"model: {n_params} parameters; training {args.steps} steps of {args.batch} x "
          f"{args.seq_len} tokens, lr {args.lr} (warmup {warmup}, cosine)", flush=True)
    losses = []
    train_start = time.time()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        inputs, targets = batches.next(sp.bos_id())
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step % 20 == 0 or step == args.steps - 1:
            elapsed = time.time() - train_start
            print(f"step {step:4d}  loss {loss.item():.4f}  (mean of last 20: "
                  f"{np.mean(losses[-20:]):.4f})  lr {lr_at(step):.2e}  {elapsed:.0f} s", flush=True)
    train_seconds = time.time() - train_start

    # Evaluate and sample with the BF16 weights that are written, computed in FP32.
    model.eval()
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(param.to(torch.bfloat16).to(torch.float32))
        eval_batches = Batches(stream, line_starts, chat_rows, args.seq_len, args.batch,
                               chat_per_batch=args.batch // 4, seed=args.seed + 1)
        eval_losses = []
        for _ in range(4):
            inputs, targets = eval_batches.next(sp.bos_id())
            logits = model(inputs)
            eval_losses.append(F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                               targets.reshape(-1)).item())
        eval_loss = float(np.mean(eval_losses))
        print(f"final loss with BF16 weights (4 held-out-order batches): {eval_loss:.4f}")
        probe = torch.tensor([encode_prompt(sp, "chat", SAMPLE_PROMPTS[3][1])])
        state32 = {n: t for n, t in model.state_dict().items()}
        split_diff = (llama_split_logits(state32, cfg, probe) - model(probe)[0]).abs().max().item()
        print(f"self-check: Llama-layout forward from split wqkv vs packed forward: "
              f"max |diff| {split_diff:.2e}")
        if split_diff > 1e-3:
            raise SystemExit("self-check failed: the wqkv packing does not match the Llama split")

    stop_ids = {sp.eos_id(), sp.piece_to_id(fixture_corpus.IM_END)}
    samples = report_samples(model, sp, stop_ids, args.sample_tokens)

    write_checkpoint(args.out, model, cfg, sp, model_bytes)
    write_json(os.path.join(args.out, "corpus_manifest.json"), manifest)
    info = {
        "generator": "scripts/train_fixture.py",
        # Fixed text (not this run's paths), so that the file is identical wherever it is written.
        "rebuild_command": REBUILD_COMMAND,
        "settings": {k: getattr(args, k) for k in ("steps", "seq_len", "batch", "lr", "seed")},
        "model": {"parameters": n_params, **cfg},
        "corpus": {"files": len(documents), "tokens": len(stream),
                   "chat_examples": len(chat_rows),
                   "sha256_of_file_hashes": hashlib.sha256(
                       "".join(e["sha256"] for e in manifest["files"]).encode()).hexdigest()},
        "tokenizer_settings": {k: v for k, v in fixture_corpus.SPM_SETTINGS.items()},
        "final_train_loss_mean_last_20": float(np.mean(losses[-20:])),
        "final_eval_loss_bf16": eval_loss,
        "greedy_samples": samples,
        "environment": {"torch": torch.__version__, "numpy": np.__version__,
                        "python": platform.python_version(), "threads": THREADS,
                        "blas": os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")},
    }
    write_json(os.path.join(args.out, "fixture_info.json"), info)
    for name in sorted(os.listdir(args.out)):
        with open(os.path.join(args.out, name), "rb") as f:
            print(f"{hashlib.sha256(f.read()).hexdigest()}  {name}")
    print(f"wrote {args.out}; training {train_seconds:.0f} s, total {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
