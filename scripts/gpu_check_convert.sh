#!/usr/bin/env bash
# Checks `parity convert internlm2-to-llama` against the reference: runs InternLM's own
# tools/convert2llama.py on SRC and compares every file it writes with Parity's DST.
#
#   scripts/gpu_check_convert.sh SRC DST [CONVERT2LLAMA_PY]
#
# SRC: an InternLM2 checkpoint (e.g. from `parity make-fixture`); DST: `parity convert
# internlm2-to-llama SRC DST`; CONVERT2LLAMA_PY defaults to .gpu/convert2llama.py (a copy of
# InternLM/InternLM tools/convert2llama.py; .gpu/ is git-ignored, the script is never committed).
# Needs python3 with torch, transformers and safetensors (the GPU machine has them; no GPU is used).
#
# What is compared, and the verdict:
#   weights   every *.safetensors file: same tensor names in the same files, dtypes, shapes, bytes;
#             also whether the files are byte-identical (Python's safetensors layout)
#   index     model.safetensors.index.json parsed (weight_map order follows os.listdir there)
#   config    config.json parsed; the script's output depends on the transformers version it runs
#             under (Parity emulates 4.41, the version InternLM2 checkpoints declare), so every
#             difference is listed and only the fields that define the network decide the verdict
#   tokenizer tokenizer.model bytes; other tokenizer files listed (transformers-version specific)
# Exit 0 when weights, index, the network-defining config fields and (where the reference writes
# one) tokenizer.model all agree.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
SRC=$(cd "$1" && pwd)
DST=$(cd "$2" && pwd)
SCRIPT=${3:-.gpu/convert2llama.py}
[[ -f "$SCRIPT" ]] || { echo "gpu_check_convert: $SCRIPT not found (copy InternLM's tools/convert2llama.py there)"; exit 2; }
SCRIPT=$(cd "$(dirname "$SCRIPT")" && pwd)/$(basename "$SCRIPT")
PYTHON=${PYTHON:-python3}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/src" "$WORK/ref" "$WORK/pylib" "$WORK/hf"
cp -R "$SRC"/. "$WORK/src/"

# The checkpoint's auto_map points at the remote configuration_internlm2.py, which AutoConfig needs
# (trust_remote_code). Published checkpoints ship InternLM's file; a fixture does not, so this writes
# a minimal config class with the same constructor fields and defaults.
if [[ ! -f "$WORK/src/configuration_internlm2.py" ]]; then
  cat > "$WORK/src/configuration_internlm2.py" <<'PY'
from transformers import PretrainedConfig


class InternLM2Config(PretrainedConfig):
    """Stand-in for the remote InternLM2Config: its fields and defaults, nothing more."""
    model_type = "internlm2"
    _auto_class = "AutoConfig"

    def __init__(self, vocab_size=103168, hidden_size=4096, intermediate_size=11008,
                 num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=None,
                 hidden_act="silu", max_position_embeddings=2048, initializer_range=0.02,
                 rms_norm_eps=1e-6, use_cache=True, pad_token_id=0, bos_token_id=1,
                 eos_token_id=2, tie_word_embeddings=False, bias=True, rope_theta=10000,
                 rope_scaling=None, attn_implementation=None, **kwargs):
        self.vocab_size = vocab_size
        self.max_position_embeddings = max_position_embeddings
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.bias = bias
        self.num_key_value_heads = (num_attention_heads if num_key_value_heads is None
                                    else num_key_value_heads)
        self.hidden_act = hidden_act
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.use_cache = use_cache
        self.rope_theta = rope_theta
        self.rope_scaling = rope_scaling
        self.attn_implementation = attn_implementation or "eager"
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id,
                         eos_token_id=eos_token_id, tie_word_embeddings=tie_word_embeddings,
                         **kwargs)
PY
fi

# convert2llama imports einops (for two reshapes) and tqdm. Where einops is missing, a stand-in for
# the two patterns it uses goes on the path (said in the output).
if ! "$PYTHON" -c 'import einops' 2>/dev/null; then
  echo "note: einops is not installed; using a stand-in rearrange for '(h gs d) dim <-> h gs d dim'"
  cat > "$WORK/pylib/einops.py" <<'PY'
def rearrange(tensor, pattern, **sizes):
    if pattern == '(h gs d) dim -> h gs d dim':
        gs, d = sizes['gs'], sizes['d']
        return tensor.reshape(-1, gs, d, tensor.shape[-1])
    if pattern == 'h gs d dim -> (h gs d) dim':
        return tensor.reshape(-1, tensor.shape[-1])
    raise NotImplementedError(pattern)
PY
fi

echo "== running $(basename "$SCRIPT") on $SRC"
(cd "$WORK" && PYTHONPATH="$WORK/pylib${PYTHONPATH:+:$PYTHONPATH}" HF_HOME="$WORK/hf" \
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  "$PYTHON" "$SCRIPT" --src "$WORK/src" --tgt "$WORK/ref") > "$WORK/reference.log" 2>&1 || {
  echo "convert2llama.py failed:"; tail -40 "$WORK/reference.log"; exit 1; }
tail -3 "$WORK/reference.log"

"$PYTHON" - "$WORK/ref" "$DST" <<'PY'
import hashlib, json, os, sys

import torch
import transformers
from safetensors import safe_open

ref_dir, our_dir = sys.argv[1], sys.argv[2]
print(f"== comparing reference {ref_dir} with Parity {our_dir} "
      f"(torch {torch.__version__}, transformers {transformers.__version__})")

def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()

def load_json(path):
    with open(path) as f:
        return json.load(f)

ref_files = set(os.listdir(ref_dir))
our_files = set(os.listdir(our_dir))
problems = []     # decide the verdict
notes = []        # reported, do not decide

for name in sorted(ref_files - our_files):
    (problems if name.endswith('.safetensors') or name in ('config.json', 'model.safetensors.index.json')
     else notes).append(f"{name}: written by convert2llama, not by Parity")
for name in sorted(our_files - ref_files):
    (problems if name.endswith('.safetensors') else notes).append(
        f"{name}: written by Parity, not by convert2llama")

# Weights.
tensors = equal = 0
for name in sorted(f for f in ref_files & our_files if f.endswith('.safetensors')):
    ref, ours = safe_open(os.path.join(ref_dir, name), 'pt'), safe_open(os.path.join(our_dir, name), 'pt')
    ref_keys, our_keys = set(ref.keys()), set(ours.keys())
    for key in sorted(ref_keys ^ our_keys):
        problems.append(f"{name}: tensor {key} only in {'reference' if key in ref_keys else 'Parity'}")
    for key in sorted(ref_keys & our_keys):
        a, b = ref.get_tensor(key), ours.get_tensor(key)
        tensors += 1
        if a.dtype != b.dtype or a.shape != b.shape:
            problems.append(f"{name}: {key}: {a.dtype} {list(a.shape)} vs {b.dtype} {list(b.shape)}")
        elif not torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8)):
            diff = (a.double() - b.double()).abs().max().item()
            problems.append(f"{name}: {key}: values differ (max |diff| {diff:.6g})")
        else:
            equal += 1
    same = sha(os.path.join(ref_dir, name)) == sha(os.path.join(our_dir, name))
    print(f"  {name}: {len(ref_keys)} tensors; file bytes {'IDENTICAL' if same else 'differ'}")
print(f"weights: {equal}/{tensors} tensors bitwise equal, same names in the same shard files")

# Index.
index = 'model.safetensors.index.json'
if index in ref_files and index in our_files:
    a, b = load_json(os.path.join(ref_dir, index)), load_json(os.path.join(our_dir, index))
    same_bytes = sha(os.path.join(ref_dir, index)) == sha(os.path.join(our_dir, index))
    if a != b:
        problems.append(f"{index}: content differs")
    print(f"index: {'same content' if a == b else 'DIFFERENT'}"
          f"{'' if same_bytes else ' (bytes differ: weight_map order follows os.listdir)'}")

# Config: every difference listed; the network-defining fields decide.
def rope(config):
    params = config.get('rope_parameters')
    if isinstance(params, dict):  # transformers 5
        scaling = {k: v for k, v in params.items() if k not in ('rope_theta', 'rope_type')}
        kind = params.get('rope_type', 'default')
        return (float(params.get('rope_theta', config.get('rope_theta'))),
                None if kind == 'default' else (kind, float(scaling.get('factor', 1.0))))
    scaling = config.get('rope_scaling')
    return (float(config['rope_theta']),
            None if not scaling else (scaling.get('rope_type', scaling.get('type')),
                                      float(scaling['factor'])))

DEFINING = ['architectures', 'attention_bias', 'hidden_act', 'hidden_size', 'intermediate_size',
            'max_position_embeddings', 'num_attention_heads', 'num_hidden_layers',
            'num_key_value_heads', 'rms_norm_eps', 'vocab_size', 'tie_word_embeddings',
            'bos_token_id', 'eos_token_id', 'pad_token_id']
a, b = load_json(os.path.join(ref_dir, 'config.json')), load_json(os.path.join(our_dir, 'config.json'))
for key in sorted(set(a) | set(b)):
    if a.get(key, '<absent>') != b.get(key, '<absent>'):
        notes.append(f"config.json {key}: reference {json.dumps(a.get(key, '<absent>'))}, "
                     f"Parity {json.dumps(b.get(key, '<absent>'))}")
for key in DEFINING:
    if a.get(key) != b.get(key):
        problems.append(f"config.json {key}: reference {a.get(key)!r}, Parity {b.get(key)!r}")
if rope(a) != rope(b):
    problems.append(f"config.json rope: reference {rope(a)}, Parity {rope(b)}")
if a.get('dtype', a.get('torch_dtype')) != b.get('dtype', b.get('torch_dtype')):
    problems.append("config.json dtype / torch_dtype differ")
print(f"config: {'identical content' if a == b else 'network-defining fields compared; other differences below'}")

# Tokenizer. transformers 4.x's slow LlamaTokenizer saves tokenizer.model (Parity copies it, as
# that does); transformers 5 saves tokenizer.json (+ chat_template.jinja) instead.
agreed = ['weights', 'shards', 'index' if index in ref_files else 'no index (unsharded)',
          'network-defining config fields']
if 'tokenizer.model' in ref_files and 'tokenizer.model' in our_files:
    same = sha(os.path.join(ref_dir, 'tokenizer.model')) == sha(os.path.join(our_dir, 'tokenizer.model'))
    print(f"tokenizer.model: {'IDENTICAL' if same else 'DIFFERENT'}")
    if same:
        agreed.append('tokenizer.model')
    else:
        problems.append('tokenizer.model differs')
elif 'tokenizer.model' in our_files:
    print(f"tokenizer.model: not written by convert2llama under transformers {transformers.__version__} "
          "(it writes tokenizer.json); not compared")
for name in sorted(f for f in ref_files & our_files if f.endswith('.json') and f.startswith(('tokenizer', 'special', 'added'))):
    a, b = load_json(os.path.join(ref_dir, name)), load_json(os.path.join(our_dir, name))
    if a != b:
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        notes.append(f"{name}: differs in {keys}")
    else:
        print(f"{name}: same content")

for note in notes:
    print(f"note: {note}")
for problem in problems:
    print(f"PROBLEM: {problem}")
print("VERDICT: " + (f"PASS: {', '.join(agreed)} agree with convert2llama.py"
                     if not problems else f"FAIL: {len(problems)} problem(s) above"))
sys.exit(0 if not problems else 1)
PY
