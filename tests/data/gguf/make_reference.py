"""Independent reference for Parity's GGUF reader and ggml dequantization (tests/gguf_test.cpp).

A small numpy implementation written from the GGUF specification (ggml-org/ggml docs/gguf.md) and
the block layouts of gguf-py/gguf/quants.py: it writes tiny.gguf (v3, alignment 64, one metadata
entry of every value type, tensors of type F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K with random block
bytes) and expected.json (metadata values, tensor shapes/types, and the dequantized values computed
here with the same FP32 operation order as ggml's dequantize_row_*).
Usage: /usr/bin/python3 make_reference.py   (deterministic; writes beside itself)"""
import json
import os
import struct

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(1128)
ALIGN = 64


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
          11: "<q", 12: "<d"}


def gguf_value(vtype, value, etype=None):
    if vtype == 8:
        return gguf_string(value)
    if vtype == 9:
        out = struct.pack("<IQ", etype, len(value))
        for v in value:
            out += gguf_value(etype, v[1], v[2]) if etype == 9 else gguf_value(etype, v)
        return out
    return struct.pack(SCALAR[vtype], value)


metadata = [
    ("general.architecture", 8, "llama", None),
    ("general.alignment", 4, ALIGN, None),
    ("test.u8", 0, 200, None), ("test.i8", 1, -100, None), ("test.u16", 2, 60000, None),
    ("test.i16", 3, -30000, None), ("test.u32", 4, 4000000000, None), ("test.i32", 5, -2000000000, None),
    ("test.f32", 6, 0.15625, None), ("test.bool", 7, True, None), ("test.string", 8, "héllo ✓", None),
    ("test.u64", 10, 2**63 + 5, None), ("test.i64", 11, -2**62, None), ("test.f64", 12, 1e-300, None),
    ("test.array_i32", 9, [1, -2, 3], 5),
    ("test.array_string", 9, ["a", "", "ü"], 8),
    ("test.array_nested", 9, [(None, [1, 2], 0), (None, [3], 0)], 9),
]


def half_bytes(values):
    return np.asarray(values, dtype=np.float16).tobytes()


def random_halves(n):
    return (rng.standard_normal(n) * 0.05).astype(np.float16)


def block_q8_0(n_blocks):
    d = random_halves(n_blocks)
    q = rng.integers(-128, 128, size=(n_blocks, 32)).astype(np.int8)
    raw = b"".join(d[i:i + 1].tobytes() + q[i].tobytes() for i in range(n_blocks))
    values = (q.astype(np.float32) * d.astype(np.float32)[:, None]).reshape(-1)
    return raw, values


def block_q4_0(n_blocks):
    d = random_halves(n_blocks)
    qs = rng.integers(0, 256, size=(n_blocks, 16), dtype=np.uint8)
    raw = b"".join(d[i:i + 1].tobytes() + qs[i].tobytes() for i in range(n_blocks))
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int32) - 8  # value j, then j + 16
    values = (q.astype(np.float32) * d.astype(np.float32)[:, None]).reshape(-1)
    return raw, values


def block_q4_k(n_blocks):
    raw, values = b"", []
    for _ in range(n_blocks):
        d, dmin = random_halves(1), random_halves(1)
        scales = rng.integers(0, 256, size=12, dtype=np.uint8)
        qs = rng.integers(0, 256, size=128, dtype=np.uint8)
        raw += d.tobytes() + dmin.tobytes() + scales.tobytes() + qs.tobytes()
        lo, mid, hi = scales[0:4], scales[4:8], scales[8:12]
        sc = np.concatenate([lo & 63, (hi & 0x0F) | ((lo >> 6) << 4)])
        mn = np.concatenate([mid & 63, (hi >> 4) | ((mid >> 6) << 4)])
        out = np.empty(256, dtype=np.float32)
        for sub in range(8):
            group = qs[32 * (sub // 2):32 * (sub // 2) + 32]
            q = (group & 0x0F) if sub % 2 == 0 else (group >> 4)
            d1 = np.float32(d[0]) * np.float32(sc[sub])
            m1 = np.float32(dmin[0]) * np.float32(mn[sub])
            out[32 * sub:32 * sub + 32] = d1 * q.astype(np.float32) - m1
        values.append(out)
    return raw, np.concatenate(values)


def block_q6_k(n_blocks):
    raw, values = b"", []
    for _ in range(n_blocks):
        ql = rng.integers(0, 256, size=128, dtype=np.uint8)
        qh = rng.integers(0, 256, size=64, dtype=np.uint8)
        scales = rng.integers(-128, 128, size=16).astype(np.int8)
        d = random_halves(1)
        raw += ql.tobytes() + qh.tobytes() + scales.tobytes() + d.tobytes()
        out = np.empty(256, dtype=np.float32)
        for half in range(2):
            lq, hq = ql[64 * half:64 * half + 64], qh[32 * half:32 * half + 32]
            for k in range(4):  # 32-value quarter k of this half
                low = (lq[32 * (k % 2):32 * (k % 2) + 32] >> (4 * (k // 2))) & 0x0F
                high = (hq >> (2 * k)) & 0x03
                q = (low | (high << 4)).astype(np.int32) - 32
                for i in range(32):
                    index = 128 * half + 32 * k + i
                    scale = scales[index // 16]
                    out[index] = np.float32(d[0]) * np.float32(scale) * np.float32(q[i])
        values.append(out)
    return raw, np.concatenate(values)


f32 = rng.standard_normal(24).astype(np.float32)
f16 = np.concatenate([random_halves(28), np.array([6e-8, -0.0, 65504, -2.0**-14], np.float16)])
bf16_bits = (rng.standard_normal(16).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
tensors = [  # name, GGUF dims (innermost first), ggml type, raw bytes, values
    ("f32.weight", [8, 3], 0, f32.tobytes(), f32),
    ("f16.weight", [16, 2], 1, f16.tobytes(), f16.astype(np.float32)),
    ("bf16.weight", [8, 2], 30, bf16_bits.tobytes(),
     (bf16_bits.astype(np.uint32) << 16).view(np.float32)),
    ("q8_0.weight", [64, 2], 8, *block_q8_0(4)),
    ("q4_0.weight", [32, 3], 2, *block_q4_0(3)),
    ("q4_k.weight", [256, 2], 12, *block_q4_k(2)),
    ("q6_k.weight", [512], 14, *block_q6_k(2)),
]

header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
for key, vtype, value, etype in metadata:
    header += gguf_string(key) + struct.pack("<I", vtype) + gguf_value(vtype, value, etype)
offset, data = 0, b""
for name, dims, gtype, raw, _ in tensors:
    header += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
    header += struct.pack("<IQ", gtype, offset)
    data += raw + b"\0" * (-len(raw) % ALIGN)
    offset = len(data)
header += b"\0" * (-len(header) % ALIGN)
open(os.path.join(here, "tiny.gguf"), "wb").write(header + data)


def plain(value, etype):
    return [plain(v[1], v[2]) for v in value] if etype == 9 else value


expected = {
    "version": 3, "alignment": ALIGN, "data_offset": len(header),
    "metadata": {key: {"type": vtype, "value": plain(value, etype) if vtype == 9 else value}
                 for key, vtype, value, etype in metadata},
    "tensors": [{"name": name, "dims": dims, "type": gtype, "bytes": len(raw),
                 "values": [float(v) for v in values]} for name, dims, gtype, raw, values in tensors],
}
json.dump(expected, open(os.path.join(here, "expected.json"), "w"), indent=1)
print(len(header + data), "bytes")
