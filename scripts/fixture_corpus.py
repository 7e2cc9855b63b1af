"""Deterministic training corpus and SentencePiece tokenizer for the InternLM2-shaped test fixture.

Everything comes from text already on a Debian machine (no download):
  * /usr/share/common-licenses/*   (about 250 KB of license prose, symlinks resolved and deduplicated)
  * /usr/share/doc/*/copyright      (sorted by path, exact duplicates dropped, files over
                                     MAX_DOC_BYTES skipped, until DOC_BYTE_BUDGET is reached)
plus ChatML dialogues built from the license paragraphs, so that a `--chat` prompt is answered with a
multi-line paragraph:
  <|im_start|>user\\nWhat does paragraph 3 of the GPL-2 license say?<|im_end|>\\n
  <|im_start|>assistant\\n<paragraph><|im_end|>\\n

Which files were used is recorded in a manifest (path + sha256 of every file). /usr/share/doc changes
when packages are installed (it did while the fixture was first made), so a rebuild of the committed
fixture reads the manifest back (train_fixture.py does so by default): then exactly the same files are
read, and a changed file is an error naming it.

Used by scripts/train_fixture.py; `python3 scripts/fixture_corpus.py --dump DIR` writes the corpus
text, the manifest and the tokenizer to DIR for inspection.
"""

import argparse
import hashlib
import io
import json
import os
import re
import sys

import sentencepiece as spm

LICENSE_DIR = "/usr/share/common-licenses"
DOC_DIR = "/usr/share/doc"
DOC_BYTE_BUDGET = 1_500_000  # bytes of copyright text after the licenses (~1.5 MB)
MAX_DOC_BYTES = 40_000       # larger copyright files would dominate the budget: skipped

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

# Fixed SentencePiece settings (Llama/InternLM2-like: BPE, byte fallback, digits split, identity
# normalization so that whitespace and newlines survive). add_dummy_prefix is off so that encoding a
# ChatML string in one piece gives the same ids as encoding its segments between special tokens
# separately (no extra "▁" at each segment start): any tokenizer that splits on the special tokens
# first then agrees with this one.
SPM_SETTINGS = dict(
    model_type="bpe",
    vocab_size=2048,
    character_coverage=0.9995,
    byte_fallback=True,
    split_digits=True,
    split_by_whitespace=True,
    split_by_unicode_script=True,
    split_by_number=True,
    allow_whitespace_only_pieces=True,
    remove_extra_whitespaces=False,
    add_dummy_prefix=False,
    normalization_rule_name="identity",
    unk_id=0,
    bos_id=1,
    eos_id=2,
    pad_id=-1,
    user_defined_symbols=[IM_START, IM_END],
    num_threads=1,
    input_sentence_size=0,
    shuffle_input_sentence=False,
    max_sentence_length=4192,
    seed_sentencepiece_size=1_000_000,
    train_extremely_large_corpus=False,
    minloglevel=2,
)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def clean_text(raw: bytes):
    """UTF-8 text with LF line ends, no trailing blanks, at most one blank line in a row.
    Returns None for files that are not valid UTF-8 or contain NUL/other control characters."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ").replace("\f", "\n")
    if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text):
        return None
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines).strip("\n")
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text + "\n" if text else None


def select_files():
    """The corpus file list, chosen from the file system: [(kind, path)], sorted, deterministic."""
    chosen = []
    seen_real = set()
    for name in sorted(os.listdir(LICENSE_DIR)):
        real = os.path.realpath(os.path.join(LICENSE_DIR, name))
        if real in seen_real or not os.path.isfile(real):
            continue
        seen_real.add(real)
        chosen.append(("license", real))
    seen_hash = set()
    used = 0
    for package in sorted(os.listdir(DOC_DIR)):
        path = os.path.join(DOC_DIR, package, "copyright")
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        raw = open(path, "rb").read()
        if len(raw) > MAX_DOC_BYTES:
            continue
        digest = _sha256(raw)
        if digest in seen_hash or clean_text(raw) is None:
            continue
        if used + len(raw) > DOC_BYTE_BUDGET:
            break
        seen_hash.add(digest)
        used += len(raw)
        chosen.append(("copyright", path))
    return chosen


def load_documents(manifest=None):
    """Reads the corpus. Returns (documents, manifest) where documents is a list of
    {"kind", "name", "text"} and manifest {"files": [{"kind", "path", "sha256", "bytes"}]}.
    With `manifest` given, reads exactly its files and checks their sha256."""
    if manifest is None:
        files = select_files()
    else:
        files = [(entry["kind"], entry["path"]) for entry in manifest["files"]]
    documents, entries = [], []
    for kind, path in files:
        try:
            raw = open(path, "rb").read()
        except OSError as error:
            raise SystemExit(f"corpus file {path}: cannot read ({error}); "
                             "rebuild without --manifest to select files afresh")
        digest = _sha256(raw)
        if manifest is not None:
            expected = next(e["sha256"] for e in manifest["files"] if e["path"] == path)
            if digest != expected:
                raise SystemExit(f"corpus file {path}: sha256 {digest} differs from the manifest's "
                                 f"{expected}; the fixture cannot be rebuilt bit-identically")
        text = clean_text(raw)
        if text is None:
            raise SystemExit(f"corpus file {path}: not clean UTF-8 text")
        name = os.path.basename(path) if kind == "license" else path.split("/")[-2]
        documents.append({"kind": kind, "name": name, "text": text})
        entries.append({"kind": kind, "path": path, "sha256": digest, "bytes": len(raw)})
    return documents, {"files": entries}


def license_paragraphs(text):
    """Paragraphs (blank-line separated) of 2..12 lines that contain words, in file order."""
    paragraphs = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line.strip()]
        if 2 <= len(lines) <= 12 and sum(c.isalpha() for c in block) > 40:
            paragraphs.append("\n".join(lines))
    return paragraphs


QUESTION_TEMPLATES = [
    "What does paragraph {k} of the {name} license say?",
    "Quote paragraph {k} of the {name} license.",
    "Show me part {k} of the {name} license text.",
]


def chat_examples(documents):
    """ChatML dialogues: a question about a license paragraph and the paragraph as the answer.
    Returns a list of strings in a fixed order."""
    examples = []
    for doc in documents:
        if doc["kind"] != "license":
            continue
        for k, paragraph in enumerate(license_paragraphs(doc["text"]), start=1):
            question = QUESTION_TEMPLATES[k % len(QUESTION_TEMPLATES)].format(k=k, name=doc["name"])
            examples.append(f"{IM_START}user\n{question}{IM_END}\n"
                            f"{IM_START}assistant\n{paragraph}{IM_END}\n")
    return examples


def tokenizer_training_lines(documents, examples):
    """SentencePiece trains on lines; newlines themselves are left to byte fallback (<0x0A>),
    as in the Llama/InternLM2 tokenizers."""
    lines = []
    for doc in documents:
        lines.extend(line for line in doc["text"].split("\n") if line.strip())
    for example in examples:
        lines.extend(line for line in example.split("\n") if line.strip())
    return lines


def train_tokenizer(lines, vocab_size=2048) -> bytes:
    """Trains the BPE model in memory and returns the serialized tokenizer.model bytes."""
    model = io.BytesIO()
    settings = dict(SPM_SETTINGS, vocab_size=vocab_size)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, **settings)
    return model.getvalue()


def check_tokenizer(model_bytes: bytes):
    """Fails unless ids and round trips are as the fixture needs them. Returns the processor."""
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    expect = {0: "<unk>", 1: "<s>", 2: "</s>", 3: IM_START, 4: IM_END}
    for index, piece in expect.items():
        if sp.id_to_piece(index) != piece:
            raise SystemExit(f"tokenizer: id {index} is {sp.id_to_piece(index)!r}, expected {piece!r}")
    for text in ["a\nb", "line one\n\nline two\n", "  indented\ttab", "GPL-3 (c) 2007 Jürgen"]:
        ids = sp.encode(text)
        if sp.decode(ids) != text:
            raise SystemExit(f"tokenizer: {text!r} round-trips to {sp.decode(ids)!r}")
    chat = f"{IM_START}user\nhi{IM_END}\n{IM_START}assistant\n"
    ids = sp.encode(chat)
    segments = []
    for part in re.split(r"(<\|im_start\|>|<\|im_end\|>)", chat):
        if part in (IM_START, IM_END):
            segments.append(sp.piece_to_id(part))
        elif part:
            segments.extend(sp.encode(part))
    if ids != segments:
        raise SystemExit(f"tokenizer: whole-string ChatML encoding {ids} != segment-wise {segments}")
    if ids[0] != 3 or 4 not in ids:
        raise SystemExit(f"tokenizer: ChatML special tokens not single pieces: {ids}")
    return sp


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dump", required=True, help="directory for corpus.txt, manifest, tokenizer")
    parser.add_argument("--manifest", help="reuse this corpus_manifest.json's file list")
    args = parser.parse_args()
    manifest = json.load(open(args.manifest)) if args.manifest else None
    documents, manifest = load_documents(manifest)
    examples = chat_examples(documents)
    model_bytes = train_tokenizer(tokenizer_training_lines(documents, examples))
    sp = check_tokenizer(model_bytes)
    os.makedirs(args.dump, exist_ok=True)
    with open(os.path.join(args.dump, "corpus.txt"), "w") as out:
        for doc in documents:
            out.write(doc["text"] + "\n")
        for example in examples:
            out.write(example)
    json.dump(manifest, open(os.path.join(args.dump, "corpus_manifest.json"), "w"), indent=1)
    open(os.path.join(args.dump, "tokenizer.model"), "wb").write(model_bytes)
    n_bytes = sum(len(d["text"].encode()) for d in documents)
    print(f"{len(documents)} documents, {n_bytes} bytes, {len(examples)} chat examples, "
          f"vocab {sp.get_piece_size()}, tokenizer sha256 {_sha256(model_bytes)}")


if __name__ == "__main__":
    sys.exit(main())
