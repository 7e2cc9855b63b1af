#!/usr/bin/env python3
"""Golden reference logits from Hugging Face transformers for the converted test fixture.

Two subcommands:

  prompts  (runs here, needs only python3-sentencepiece)
      /usr/bin/python3 scripts/golden_hf.py prompts --fixture cases/fixtures/internlm2-tiny \\
          --out tests/data/golden/prompts.json
      Encodes the prompt set with the fixture's tokenizer.model (BOS=1 prepended; ChatML prompts with
      the <|im_start|>/<|im_end|> ids) and writes text and ids, so that the GPU machine needs no
      tokenizer and every implementation reads identical ids.

  run      (runs on the GPU machine: torch 2.x, transformers 4.4x/5.x, safetensors)
      python3 scripts/golden_hf.py run --llama LLAMA_DIR --prompts tests/data/golden/prompts.json \\
          --out tests/data/golden
      LLAMA_DIR is the output of `parity convert internlm2-to-llama` on the fixture. Loads
      LlamaForCausalLM in FP32 with eager attention on CPU and on CUDA (TF32 off), and per prompt runs
      greedy `generate(..., output_logits=True, return_dict_in_generate=True)` (KV cache, one token
      per step) and one teacher-forced full forward (no cache) of prompt + generated tokens. Writes
        OUT/llama_fp32_golden.json               ids, generated tokens, versions, devices, checks
        OUT/llama_fp32_golden_logits.safetensors  FP32 logits, named "<prompt>.<device>.<kind>":
            <prompt>.<device>.generate_logits  [n_generated, vocab]  raw logits of generate step i,
                                               i.e. the distribution that chose generated token i
            <prompt>.cpu.forward_logits        [n_prompt + n_generated, vocab]  teacher-forced
                                               logits at every position (row j predicts token j+1)
      (forward logits are stored for the CPU only, to keep the files small; for CUDA the JSON has
      their max difference from the generate logits.)

  families (runs on the GPU machine's CPU: torch 2.x, transformers 5.x, safetensors)
      python3 scripts/golden_hf.py families --out tests/data/golden/families
      (runs scripts/golden_families.py) Builds small random HF models of each family Parity reads (Qwen2 with and without sliding
      window, Qwen3, Mistral, Qwen3-MoE twice) with odd shapes (GQA ratios 3 and 6, head_dim !=
      hidden / heads, q/k/v biases, tied and untied heads, top-2 of 8 experts with dense layers
      between), saves each with save_pretrained, reloads it (the loading must be clean) and runs
      FP32 eager greedy generation on the CPU for 64 steps on two random prompts. Writes per family
        OUT/<name>/config.json, model.safetensors  the checkpoint as transformers saved it
        OUT/<name>/golden.json                     prompts, generated ids, margins, versions, and
                                                   the MoE router/experts source HF ran
        OUT/<name>/logits.safetensors              "<prompt>.generate_logits" [64, V] and
                                                   "<prompt>.forward_logits" [n_prompt + 64, V]

Generation stops at max_new_tokens or at an EOS id from prompts.json (the fixture's
generation_config.json: </s> and <|im_end|>), exactly as an EOS-honouring greedy decoder would.
"""

import argparse
import hashlib
import json
import os
import platform
import re
import sys

SCHEMA_VERSION = 1

# Three prompts: a ChatML question whose answer is a multi-line license paragraph, and two plain
# license openings. All are in the style of the fixture's training data, so greedy output is fluent
# and its first newline comes within the first ~20 generated tokens (measured on the trained
# fixture: at steps 17, 4 and 0), leaving room after it for a divergence within 32 tokens.
PROMPTS = [
    {"name": "chat_gpl3", "chat": True,
     "text": "What does paragraph 2 of the GPL-3 license say?"},
    {"name": "plain_free_software", "chat": False,
     "text": "This program is free software; you can redistribute it"},
    {"name": "plain_mit", "chat": False,
     "text": "Permission is hereby granted, free of charge, to any person obtaining a copy"},
]
DEFAULT_MAX_NEW_TOKENS = 32

IM_START, IM_END = "<|im_start|>", "<|im_end|>"


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path + ".tmp"
    with open(tmp, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------
# prompts


def render_chat(question):
    return f"{IM_START}user\n{question}{IM_END}\n{IM_START}assistant\n"


def encode(sp, text):
    """Splits on the ChatML special tokens, encodes the text between them with SentencePiece
    (add_dummy_prefix is off in the fixture's model, so this equals encoding the whole string)."""
    ids = []
    for part in re.split(r"(<\|im_start\|>|<\|im_end\|>)", text):
        if part in (IM_START, IM_END):
            ids.append(sp.piece_to_id(part))
        elif part:
            ids.extend(sp.encode(part))
    whole = sp.encode(text)
    if ids != whole:
        raise SystemExit(f"segment-wise encoding {ids} differs from whole-string {whole} for {text!r}")
    return ids


def cmd_prompts(args):
    import sentencepiece as spm

    model_path = os.path.join(args.fixture, "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=model_path)
    generation = json.load(open(os.path.join(args.fixture, "generation_config.json")))
    eos_ids = generation["eos_token_id"]
    eos_ids = eos_ids if isinstance(eos_ids, list) else [eos_ids]
    bos = generation["bos_token_id"]
    im_start, im_end = sp.piece_to_id(IM_START), sp.piece_to_id(IM_END)
    if sp.id_to_piece(im_start) != IM_START or sp.id_to_piece(im_end) != IM_END:
        raise SystemExit(f"{model_path}: <|im_start|>/<|im_end|> are not single pieces")
    prompts = []
    for prompt in PROMPTS:
        rendered = render_chat(prompt["text"]) if prompt["chat"] else prompt["text"]
        ids = [bos] + encode(sp, rendered)
        if sp.decode(ids[1:]) != rendered:
            raise SystemExit(f"prompt {prompt['name']}: ids do not decode back to the text")
        prompts.append({"name": prompt["name"], "chat": prompt["chat"], "text": prompt["text"],
                        "rendered": "<s>" + rendered, "input_ids": ids})
    document = {
        "schema_version": SCHEMA_VERSION,
        "generator": "scripts/golden_hf.py prompts",
        "tokenizer": os.path.relpath(model_path),
        "tokenizer_sha256": sha256_file(model_path),
        "bos_id": bos,
        "eos_ids": eos_ids,
        "im_start_id": im_start,
        "im_end_id": im_end,
        "max_new_tokens": args.max_new_tokens,
        "prompts": prompts,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_atomic(args.out, json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    for p in prompts:
        print(f"{p['name']}: {len(p['input_ids'])} ids {p['input_ids']}")
    print(f"wrote {args.out}")


# ------------------------------------------------------------------------------------------------
# run


def configure_torch(torch):
    """Strict FP32 everywhere: TF32 off for matmul and cuDNN, deterministic algorithms."""
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    # warn_only: an op without a deterministic CUDA kernel inside transformers must not abort the run
    torch.use_deterministic_algorithms(True, warn_only=True)


def version_at_least(version, wanted):
    numbers = [int(x) for x in re.findall(r"\d+", version)[:2]]
    return tuple(numbers) >= wanted


def load_llama(llama_dir, device, torch, transformers):
    """LlamaForCausalLM in FP32, eager attention, on `device`; fails on any missing/unexpected key."""
    from transformers import LlamaForCausalLM

    # transformers >= 4.56 names the argument `dtype`; older ones `torch_dtype`.
    dtype_key = "dtype" if version_at_least(transformers.__version__, (4, 56)) else "torch_dtype"
    model, info = LlamaForCausalLM.from_pretrained(
        llama_dir, attn_implementation="eager", output_loading_info=True,
        **{dtype_key: torch.float32})
    # info: missing_keys, unexpected_keys, mismatched_keys, error_msgs; rotary inv_freq buffers are
    # computed, not loaded, and some versions list them.
    problems = {k: v for k, v in info.items()
                if v and not all("rotary_emb.inv_freq" in str(name) for name in v)}
    if problems:
        raise SystemExit(f"{llama_dir}: loading was not clean: {problems}")
    wrong = [n for n, p in model.named_parameters() if p.dtype != torch.float32]
    if wrong:
        raise SystemExit(f"parameters not in FP32 after loading: {wrong[:5]}")
    attn = (getattr(model.config, "_attn_implementation", None)
            or getattr(model.config, "attn_implementation", None))
    if attn != "eager":
        raise SystemExit(f"attention implementation is {attn!r}, expected 'eager'")
    return model.to(device).eval()


def run_prompt(model, prompt, max_new_tokens, eos_ids, pad_id, device, torch, transformers):
    """Greedy generate with raw per-step logits, then a teacher-forced forward of the result."""
    from transformers import GenerationConfig

    # An explicit config, so nothing from the checkpoint's generation_config (sampling settings,
    # repetition penalties) applies: plain argmax, stop at EOS.
    config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                              eos_token_id=eos_ids, pad_token_id=pad_id, bos_token_id=1,
                              output_logits=True, return_dict_in_generate=True, use_cache=True)
    ids = torch.tensor([prompt["input_ids"]], dtype=torch.long, device=device)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             generation_config=config)
        sequence = out.sequences[0]
        generated = sequence[ids.shape[1]:].tolist()
        generate_logits = torch.cat([step.float() for step in out.logits], dim=0)  # [n, vocab]
        forward_logits = model(input_ids=sequence[None], use_cache=False).logits[0].float()
    n_prompt, n_gen = ids.shape[1], len(generated)
    if generate_logits.shape[0] != n_gen:
        raise SystemExit(f"{prompt['name']}: {generate_logits.shape[0]} logit rows for {n_gen} tokens")
    argmax = generate_logits.argmax(-1).tolist()
    if argmax != generated:
        raise SystemExit(f"{prompt['name']} on {device}: generated {generated} is not the argmax "
                         f"{argmax} of the returned logits")
    overlap = forward_logits[n_prompt - 1: n_prompt - 1 + n_gen]
    top2 = generate_logits.topk(2, dim=-1).values
    return {
        "generated_ids": generated,
        "stopped_at_eos": bool(n_gen and generated[-1] in eos_ids),
        "margins_top1_top2": [round(float(m), 6) for m in (top2[:, 0] - top2[:, 1]).tolist()],
        "max_abs_diff_forward_vs_generate": float((overlap - generate_logits).abs().max()),
        "forward_argmax_equals_generated": overlap.argmax(-1).tolist() == generated,
    }, generate_logits.cpu().contiguous(), forward_logits.cpu().contiguous()


def device_description(device, torch):
    if device == "cuda":
        return {"name": torch.cuda.get_device_name(0), "cuda": torch.version.cuda}
    model_name = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"name": model_name, "threads": torch.get_num_threads()}


def cmd_run(args):
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed for deterministic cuBLAS
    import torch
    import transformers
    from safetensors.torch import save_file

    configure_torch(torch)
    prompts_doc = json.load(open(args.prompts))
    max_new = args.max_new_tokens or prompts_doc["max_new_tokens"]
    eos_ids, pad_id = prompts_doc["eos_ids"], prompts_doc["eos_ids"][0]
    devices = [d for d in args.devices.split(",") if d]
    if "cuda" in devices and not torch.cuda.is_available():
        raise SystemExit("--devices includes cuda but torch.cuda.is_available() is False")

    tensors, results = {}, {p["name"]: {} for p in prompts_doc["prompts"]}
    device_info = {}
    for device in devices:
        model = load_llama(args.llama, device, torch, transformers)
        device_info[device] = device_description(device, torch)
        for prompt in prompts_doc["prompts"]:
            summary, gen_logits, fwd_logits = run_prompt(
                model, prompt, max_new, eos_ids, pad_id, device, torch, transformers)
            tensors[f"{prompt['name']}.{device}.generate_logits"] = gen_logits
            summary["generate_logits"] = f"{prompt['name']}.{device}.generate_logits"
            if device == "cpu":
                tensors[f"{prompt['name']}.cpu.forward_logits"] = fwd_logits
                summary["forward_logits"] = f"{prompt['name']}.cpu.forward_logits"
            results[prompt["name"]][device] = summary
            print(f"{prompt['name']} [{device}]: {summary['generated_ids']} "
                  f"(forward vs generate max |diff| {summary['max_abs_diff_forward_vs_generate']:.3g})")
        del model

    entries = []
    for prompt in prompts_doc["prompts"]:
        runs = results[prompt["name"]]
        entry = {"name": prompt["name"], "chat": prompt["chat"], "text": prompt["text"],
                 "input_ids": prompt["input_ids"], "runs": runs}
        if "cpu" in runs and "cuda" in runs:
            a = tensors[f"{prompt['name']}.cpu.generate_logits"]
            b = tensors[f"{prompt['name']}.cuda.generate_logits"]
            n = min(a.shape[0], b.shape[0])
            entry["cpu_vs_cuda"] = {
                "same_tokens": runs["cpu"]["generated_ids"] == runs["cuda"]["generated_ids"],
                "max_abs_diff_generate_logits": float((a[:n] - b[:n]).abs().max()) if n else 0.0,
            }
        entries.append(entry)

    llama_files = sorted(f for f in os.listdir(args.llama)
                         if f.endswith((".json", ".safetensors", ".model")))
    document = {
        "schema_version": SCHEMA_VERSION,
        "generator": "scripts/golden_hf.py run",
        "reference": "transformers LlamaForCausalLM, FP32, attn_implementation=eager, TF32 off, "
                     "greedy generate (KV cache) with output_logits=True; forward_logits from one "
                     "teacher-forced forward without cache",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
        "devices": device_info,
        "model_dir_files_sha256": {f: sha256_file(os.path.join(args.llama, f)) for f in llama_files},
        "prompts_file_sha256": sha256_file(args.prompts),
        "settings": {"dtype": "float32", "attn_implementation": "eager", "do_sample": False,
                     "max_new_tokens": max_new, "eos_token_id": eos_ids, "pad_token_id": pad_id},
        "logits_file": "llama_fp32_golden_logits.safetensors",
        "prompts": entries,
    }
    os.makedirs(args.out, exist_ok=True)
    logits_path = os.path.join(args.out, document["logits_file"])
    save_file(tensors, logits_path + ".tmp", metadata={"generator": "scripts/golden_hf.py run"})
    os.replace(logits_path + ".tmp", logits_path)
    json_path = os.path.join(args.out, "llama_fp32_golden.json")
    write_atomic(json_path, json.dumps(document, indent=1) + "\n")
    print(f"wrote {json_path} and {logits_path} ({os.path.getsize(logits_path)} bytes)")


# ------------------------------------------------------------------------------------------------
# families


def cmd_families(args):
    """The families golden is made by scripts/golden_families.py (kept short enough to travel to the
    GPU machine inside one command line); this runs it."""
    import runpy
    os.makedirs(args.out, exist_ok=True)
    sys.argv = [os.path.join(os.path.dirname(__file__), "golden_families.py"), args.out]
    runpy.run_path(sys.argv[0], run_name="__main__")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prompts", help="encode the prompt set with the fixture tokenizer")
    p.add_argument("--fixture", default="cases/fixtures/internlm2-tiny")
    p.add_argument("--out", default="tests/data/golden/prompts.json")
    p.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    r = sub.add_parser("run", help="produce golden logits with HF transformers")
    r.add_argument("--llama", required=True, help="converted Llama-format checkpoint directory")
    r.add_argument("--prompts", default="tests/data/golden/prompts.json")
    r.add_argument("--out", default="tests/data/golden")
    r.add_argument("--devices", default="cpu,cuda", help="comma-separated: cpu, cuda")
    r.add_argument("--max-new-tokens", type=int, default=0, help="0: take it from prompts.json")
    f = sub.add_parser("families", help="random small HF models of every family, with golden logits")
    f.add_argument("--out", default="tests/data/golden/families")
    args = parser.parse_args()
    {"prompts": cmd_prompts, "run": cmd_run, "families": cmd_families}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
