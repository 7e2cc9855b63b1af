#!/usr/bin/env python3
"""Writes a Parity logit trace (reports/TRACES.md) from any HF transformers causal LM, so that Python
users can point Parity at their own pipeline's output.

    python3 scripts/hf_trace.py --model DIR_OR_NAME --prompt "who are you" [--prompt ...] \\
        --max-new-tokens 64 --dtype bf16 --device cuda --out TRACE_DIR [--chat]

Greedy decoding with generate(do_sample=False, output_logits=True, return_dict_in_generate=True): per
prompt, the prompt's ids, the generated ids and the raw FP32 logits of every step. The arrays go to
TRACE_DIR/trace.safetensors (written here without the safetensors package: an 8-byte header length,
the JSON header padded with spaces to a multiple of 8, little-endian data), the rest to trace.json.

`--self-test DIR` writes a small synthetic trace with exactly representable values and no
transformers import; tests/trace_test.cpp reads it with Parity's reader (interop of the two sides).
"""
import argparse
import json
import os
import struct
import sys

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def write_safetensors(path, tensors):
    """tensors: list of (name, torch tensor of dtype int64 or float32), written in that order."""
    assert sys.byteorder == "little", "safetensors data is little-endian"
    codes = {torch.int64: "I64", torch.float32: "F32"}
    header, blobs, offset = {}, [], 0
    for name, tensor in tensors:
        data = tensor.contiguous().cpu().numpy().tobytes()  # native order: little-endian (checked)
        header[name] = {"dtype": codes[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    os.replace(tmp, path)


def write_trace(out_dir, producer, vocab_size, prompts, mode="free"):
    """prompts: list of dicts with name, text (or None), prompt_tokens, tokens (lists of ints) and
    logits (float32 tensor [T, V])."""
    os.makedirs(out_dir, exist_ok=True)
    tensors, entries = [], []
    for i, p in enumerate(prompts):
        steps = len(p["tokens"])
        assert tuple(p["logits"].shape) == (steps, vocab_size), (p["name"], p["logits"].shape)
        tensors += [(f"p{i}.prompt_tokens", torch.tensor(p["prompt_tokens"], dtype=torch.int64)),
                    (f"p{i}.tokens", torch.tensor(p["tokens"], dtype=torch.int64)),
                    (f"p{i}.logits", p["logits"].to(torch.float32))]
        entry = {"name": p["name"], "prompt_tokens": len(p["prompt_tokens"]), "steps": steps}
        if p.get("text") is not None:
            entry["text"] = p["text"]
        entries.append(entry)
    write_safetensors(os.path.join(out_dir, "trace.safetensors"), tensors)
    description = {"format": "parity-trace", "version": 1, "producer": producer,
                   "vocab_size": vocab_size, "content": "logits", "top_k": None, "mode": mode,
                   "prompts": entries}
    with open(os.path.join(out_dir, "trace.json.tmp"), "w", encoding="utf-8") as f:
        json.dump(description, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(os.path.join(out_dir, "trace.json.tmp"), os.path.join(out_dir, "trace.json"))


def self_test(out_dir):
    vocab = 13
    prompts = []
    for i, steps in enumerate([4, 1]):
        index = torch.arange(steps * vocab, dtype=torch.float64).reshape(steps, vocab)
        logits = (((index + i) % 17) - 8) / 4  # exact in FP32
        prompts.append({"name": f"p{i}", "text": "who are you" if i == 0 else None,
                        "prompt_tokens": [1, 2, 3][: i + 2],
                        "tokens": [int(t) for t in logits.argmax(-1)], "logits": logits.float()})
    write_trace(out_dir, {"engine": "hf_trace.py --self-test", "engine_version": torch.__version__,
                          "model": "synthetic", "dtype": "fp32", "device": "cpu", "settings": {}},
                vocab, prompts)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--prompt", action="append", default=[])
    parser.add_argument("--prompt-ids", action="append", default=[],
                        help="a prompt as comma-separated token ids (repeatable; no tokenizer needed)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chat", action="store_true", help="wrap each prompt in the chat template")
    parser.add_argument("--attn-implementation", default=None)
    parser.add_argument("--out")
    parser.add_argument("--self-test", metavar="DIR")
    args = parser.parse_args()
    if args.self_test:
        self_test(args.self_test)
        return
    if not (args.model and (args.prompt or args.prompt_ids) and args.out):
        parser.error("--model, --prompt (or --prompt-ids) and --out are required (or --self-test DIR)")

    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    # FP32 means FP32: no TF32 in CUDA matmuls or convolutions (recorded in the settings).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    tokenizer = AutoTokenizer.from_pretrained(args.model) if args.prompt else None
    kwargs = {"dtype": DTYPES[args.dtype]}
    if args.attn_implementation:
        kwargs["attn_implementation"] = args.attn_implementation
    model = AutoModelForCausalLM.from_pretrained(args.model, **kwargs).to(args.device).eval()
    prompts = []
    inputs = [(text, None) for text in args.prompt]
    inputs += [(None, [int(x) for x in spec.split(",")]) for spec in args.prompt_ids]
    eos = model.generation_config.eos_token_id
    pad = eos[0] if isinstance(eos, list) else eos
    for i, (text, given) in enumerate(inputs):
        if given is not None:
            ids = torch.tensor([given], dtype=torch.long)
        elif args.chat:
            ids = tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                                add_generation_prompt=True, return_tensors="pt")
            ids = getattr(ids, "input_ids", ids)
        else:
            ids = tokenizer(text, return_tensors="pt").input_ids
        ids = ids.to(args.device)
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=args.max_new_tokens, output_logits=True,
                                 return_dict_in_generate=True, pad_token_id=pad)
        logits = torch.stack(out.logits, dim=1)[0].float().cpu()
        prompts.append({"name": f"p{i}", "text": text, "prompt_tokens": ids[0].tolist(),
                        "tokens": out.sequences[0, ids.shape[1]:].tolist(), "logits": logits})
    device = args.device
    if device.startswith("cuda"):
        device = f"cuda ({torch.cuda.get_device_name()})"
    producer = {"engine": "hf-transformers", "engine_version": transformers.__version__,
                "model": args.model, "dtype": args.dtype, "device": device,
                "settings": {"attn_implementation": model.config._attn_implementation,
                             "torch": torch.__version__, "chat": args.chat,
                             "allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                             "eos_token_id": eos}}
    write_trace(args.out, producer, prompts[0]["logits"].shape[1], prompts)
    print(f"{args.out}: {len(prompts)} prompts, {sum(len(p['tokens']) for p in prompts)} steps",
          file=sys.stderr)


if __name__ == "__main__":
    main()
