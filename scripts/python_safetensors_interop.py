#!/usr/bin/env python3
"""Checks that Parity's safetensors files and Python's `safetensors` agree, in both directions.

Needs torch (>= 2.1 for the FP8 dtypes) and the `safetensors` package, e.g. on the GPU machine.

  write DIR                  Writes DIR/python_written.safetensors with safetensors.torch.save_file
                             (every dtype, a scalar, an empty tensor, metadata) and
                             DIR/python_written.expected.json with each tensor's dtype, shape, raw
                             bytes (hex) and values. Parity's test SafetensorsInterop.ReadsFileWrittenByPython
                             reads both (commit them to tests/data/safetensors/).
  read FILE EXPECTED.json    Loads a file written by Parity (test SafetensorsInterop.WritesFileForPythonCheck
                             with PARITY_INTEROP_OUT=DIR, or the committed
                             tests/data/safetensors/parity_written.safetensors) with Python's safetensors,
                             checks names, dtypes, shapes, bytes, values and metadata against the JSON,
                             then re-saves the loaded tensors with save_file and checks that the bytes are
                             identical to FILE. Exit status 0 when everything matches, 1 otherwise.

The expected JSON: {"metadata": {...}, "tensors": [{"name", "dtype", "shape", "hex", "values"}]}, where
values are the elements, flattened, as float64 (FP8 decoded per the OCP FP8 spec).
"""
import json
import os
import sys
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

# torch dtype -> safetensors dtype name.
DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
HAS_FP8 = hasattr(torch, "float8_e4m3fn") and hasattr(torch, "float8_e5m2")
if HAS_FP8:
    DTYPE_NAMES[torch.float8_e4m3fn] = "F8_E4M3"
    DTYPE_NAMES[torch.float8_e5m2] = "F8_E5M2"

METADATA = {"format": "pt"}  # one key: Python serialises a larger metadata map in no fixed order


def sample_tensors():
    """Tensors of every dtype, including a scalar and an empty tensor; values exact in their dtype."""
    tensors = {
        "f64": torch.tensor([[0.1, -1e300], [5e-324, 2.5]], dtype=torch.float64),
        "f32": torch.tensor([[1.0, -0.5, 3.25], [1e-8, 65504.0, -7.0]], dtype=torch.float32),
        "bf16": torch.tensor([1.0, -2.5, 3.140625, 1e-3], dtype=torch.bfloat16),
        "f16": torch.tensor([[1.0, -2.5], [65504.0, 6e-8]], dtype=torch.float16),
        "i64": torch.tensor([-(2**40) - 1, 0, 2**52], dtype=torch.int64),
        "i32": torch.tensor([-(2**31), 7, 2**31 - 1], dtype=torch.int32),
        "i16": torch.tensor([-32768, 1, 32767], dtype=torch.int16),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 128, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True, True, False]),
        "scalar": torch.tensor(0.25, dtype=torch.float32),
        "empty": torch.zeros((0, 4), dtype=torch.float32),
    }
    if HAS_FP8:
        tensors["f8_e4m3"] = torch.tensor([1.0, 2.0, 1.5, -1.0, 2.0**-9]).to(torch.float8_e4m3fn)
        tensors["f8_e5m2"] = torch.tensor([1.0, 2.0, 1.5, -1.0, 2.0**-16]).to(torch.float8_e5m2)
    else:
        print("warning: this torch has no FP8 dtypes; FP8 tensors left out", file=sys.stderr)
    return tensors


def describe(name, tensor):
    flat = tensor.contiguous().reshape(-1)
    return {
        "name": name,
        "dtype": DTYPE_NAMES[tensor.dtype],
        "shape": list(tensor.shape),
        "hex": flat.view(torch.uint8).numpy().tobytes().hex(),
        "values": [float(v) for v in flat.to(torch.float64).tolist()],
    }


def write(directory):
    os.makedirs(directory, exist_ok=True)
    tensors = sample_tensors()
    path = os.path.join(directory, "python_written.safetensors")
    save_file(tensors, path, metadata=METADATA)
    expected = {"metadata": METADATA, "tensors": [describe(n, t) for n, t in tensors.items()]}
    with open(os.path.join(directory, "python_written.expected.json"), "w") as out:
        json.dump(expected, out, indent=1)
        out.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(tensors)} tensors)")
    return 0


def read(path, expected_path):
    with open(expected_path) as f:
        expected = json.load(f)
    loaded = load_file(path)
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
    problems = []
    if metadata != expected["metadata"]:
        problems.append(f"metadata {metadata} != expected {expected['metadata']}")
    names = [e["name"] for e in expected["tensors"]]
    if sorted(loaded) != sorted(names):
        problems.append(f"tensor names {sorted(loaded)} != expected {sorted(names)}")
    for e in expected["tensors"]:
        name = e["name"]
        if name not in loaded:
            continue
        got = describe(name, loaded[name])
        for field in ("dtype", "shape", "hex", "values"):
            if got[field] != e[field]:
                problems.append(f"tensor '{name}': {field} {got[field]} != expected {e[field]}")
    if problems:
        print("FAIL: Python's safetensors reads " + path + " differently:")
        for p in problems:
            print("  " + p)
        return 1
    print(f"OK: Python's safetensors reads {len(loaded)} tensors of {path} as expected")

    # Byte identity: save_file of the same tensors (it sorts them itself) must give the same file.
    with tempfile.TemporaryDirectory() as tmp:
        resaved = os.path.join(tmp, "resaved.safetensors")
        save_file({n: loaded[n] for n in names}, resaved, metadata=metadata or None)
        with open(resaved, "rb") as a, open(path, "rb") as b:
            ours, theirs = b.read(), a.read()
    if ours != theirs:
        first = next((i for i, (x, y) in enumerate(zip(ours, theirs)) if x != y),
                     min(len(ours), len(theirs)))
        print(f"FAIL: bytes differ from Python's save_file of the same tensors, first at offset "
              f"{first} (sizes {len(ours)} vs {len(theirs)})")
        print("  Parity header: " + ours[8:8 + int.from_bytes(ours[:8], 'little')].decode(errors='replace'))
        print("  Python header: " + theirs[8:8 + int.from_bytes(theirs[:8], 'little')].decode(errors='replace'))
        return 1
    print("OK: byte-identical to Python's save_file of the same tensors")
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "write":
        return write(argv[2])
    if len(argv) == 4 and argv[1] == "read":
        return read(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
