"""Writes small hand-made byte-level BPE tokenizer.json files (tests/data/tokenizers/<name>/) that
exercise the options the real Qwen3 file does not: Llama-3's layout (\\p{N}{1,3}, ignore_merges,
"a b" merges, a BOS template) and a GPT-2 style one (NFKC, ByteLevel with its own regex and prefix
space, added tokens with lstrip / rstrip / single_word / normalized, Split behaviours, a suffix
template), plus one with the remaining Split behaviours. Their merges come from a tiny deterministic
BPE trainer here; what the files mean is decided by HF's tokenizers (reference_ids.mjs), not by this
script. Usage: python3 make_small_tokenizers.py CORPUS_JSON OUT_DIR"""
import collections
import json
import os
import re
import sys

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def train(texts, merges_wanted):
    byte_map = bytes_to_unicode()
    words = collections.Counter()
    for text in texts:
        for word in re.findall(r" ?[A-Za-z\u00c0-\uffff]+| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]+|\s+", text):
            words[tuple(byte_map[b] for b in word.encode("utf-8"))] += 1
    merges = []
    for _ in range(merges_wanted):
        pairs = collections.Counter()
        for word, count in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += count
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        merged = collections.Counter()
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    vocab = {}
    for b in range(256):
        vocab[byte_map[b]] = len(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return vocab, merges


def added(content, id_, special=True, lstrip=False, rstrip=False, single_word=False, normalized=None):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip,
            "rstrip": rstrip, "normalized": (not special) if normalized is None else normalized,
            "special": special}


def template(prefix, suffix):
    single = [{"SpecialToken": {"id": t, "type_id": 0}} for t, _ in prefix]
    single.append({"Sequence": {"id": "A", "type_id": 0}})
    single += [{"SpecialToken": {"id": t, "type_id": 0}} for t, _ in suffix]
    special = {t: {"id": t, "ids": [i], "tokens": [t]} for t, i in prefix + suffix}
    return {"type": "TemplateProcessing", "single": single,
            "pair": single + [{"Sequence": {"id": "B", "type_id": 1}}], "special_tokens": special}


def write(out_dir, name, tokenizer):
    os.makedirs(os.path.join(out_dir, name), exist_ok=True)
    with open(os.path.join(out_dir, name, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    texts = json.load(open(sys.argv[1], encoding="utf-8"))["texts"]
    out_dir = sys.argv[2]
    vocab, merges = train(texts * 3, 700)
    byte_map = bytes_to_unicode()
    # Whole words the merges never build: with ignore_merges they are one token, without they split.
    for word in [" sword", "hello", "    ", "202", " 3", "'RE"]:
        vocab.setdefault("".join(byte_map[b] for b in word.encode("utf-8")), len(vocab))
    n = len(vocab)
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": False}
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False}

    llama3_added = [added(t, n + i) for i, t in enumerate(
        ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
         "<|eot_id|>"])]
    write(out_dir, "llama3_style", {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": llama3_added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated",
             "invert": False}, byte_level]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            template([("<|begin_of_text|>", n)], [])]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": dict(model, ignore_merges=True, vocab=vocab, merges=[f"{a} {b}" for a, b in merges]),
    })

    gpt2_added = [
        added("<s>", n), added("</s>", n + 1), added("<|im_start|>", n + 2), added("<|im_end|>", n + 3),
        added("[MASK]", n + 4, lstrip=True), added("<rs>", n + 5, rstrip=True),
        added("word", n + 6, special=False, single_word=True),
        added("Héllo", n + 7, special=False, normalized=True),
        added("<think>", n + 8, special=False, normalized=False),
    ]
    write(out_dir, "gpt2_style", {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": gpt2_added,
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": "--"}, "behavior": "Removed", "invert": False},
            {"type": "Split", "pattern": {"Regex": "[.!?]"}, "behavior": "MergedWithPrevious",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]},
        "post_processor": template([("<s>", n)], [("</s>", n + 1)]),
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": dict(model, ignore_merges=False, vocab=vocab, merges=[[a, b] for a, b in merges]),
    })

    write(out_dir, "split_behaviors", {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": {"type": "NFD"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": r"\s+"}, "behavior": "MergedWithNext",
             "invert": False},
            {"type": "Split", "pattern": {"Regex": r"\p{N}"}, "behavior": "Contiguous",
             "invert": True},
            dict(byte_level, add_prefix_space=True)]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": dict(model, ignore_merges=True, vocab=vocab, merges=[[a, b] for a, b in merges]),
    })


main()
