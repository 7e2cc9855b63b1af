"""Independent reference for llama.cpp's KL-divergence base file (tests/kld_base_test.cpp).

Written from the description of tools/perplexity/perplexity.cpp (ggml-org/llama.cpp), with numpy:
writes base.kld (the file llama-perplexity --kl-divergence-base would write for the logits in
reference.json) and reference.json (the logits of the base model and of a second model, and the
statistics llama-perplexity --kl-divergence reports for the second against the base, in FP64).
Usage: python3 make_reference.py  (writes beside itself; deterministic)"""
import json
import os
import struct

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261128)
n_ctx, n_vocab, n_chunk = 10, 13, 2  # odd n_vocab: each record ends with one pad value
first = n_ctx // 2
scored = n_ctx - 1 - first
tokens = rng.integers(0, n_vocab, size=n_chunk * n_ctx).astype(np.int32)
base = (rng.standard_normal((n_chunk, n_ctx, n_vocab)) * 3).astype(np.float32)
base[0, first + 1, :] = 1.5          # all equal: scale 0, every q is 0
base[1, first, 3] = 40.0             # spread > 16 nats: the floor cuts the rest to q = 0
other = (base + rng.standard_normal(base.shape).astype(np.float32) * 0.3).astype(np.float32)


def quantize(logits):
    mx, mn = np.float32(logits.max()), np.float32(logits.min())
    mn = max(mn, np.float32(mx - np.float32(16)))
    log_sum_exp = np.float32(np.log(np.sum(np.exp((logits - mx).astype(np.float64)))))
    min_log_prob = np.float32(np.float32(mn - mx) - log_sum_exp)
    scale = np.float32(np.float32(mx - mn) / np.float32(65535))
    q = np.zeros(n_vocab + (n_vocab % 2), dtype=np.uint16)
    if scale != 0:
        inv = np.float32(1) / scale
        x = (inv * (logits - mn).astype(np.float32)).astype(np.float32)
        q[:n_vocab] = np.where(logits > mn, np.rint(x), 0).astype(np.uint16)  # rint: ties to even
    return struct.pack("<ff", scale, min_log_prob) + q.tobytes()


blob = b"_logits_" + struct.pack("<iii", n_ctx, n_vocab, n_chunk) + tokens.tobytes()
for c in range(n_chunk):
    for j in range(first, n_ctx - 1):
        blob += quantize(base[c, j])
open(os.path.join(here, "base.kld"), "wb").write(blob)

# Statistics of `other` against the quantized base, in FP64 (llama.cpp works in FP32 per position).
nll, nll_base, kld, same, p_diff = [], [], [], [], []
offset = 20 + 4 * tokens.size
record = 2 * ((n_vocab + 1) // 2) + 4
for c in range(n_chunk):
    for k, j in enumerate(range(first, n_ctx - 1)):
        start = offset + 2 * record * (c * scored + k)
        scale, min_log_prob = struct.unpack_from("<ff", blob, start)
        q = np.frombuffer(blob, dtype=np.uint16, count=n_vocab, offset=start + 8).astype(np.float64)
        log_p_base = scale * q + min_log_prob
        x = other[c, j].astype(np.float64)
        log_q = x - x.max() - np.log(np.sum(np.exp(x - x.max())))
        target = tokens[c * n_ctx + j + 1]
        nll.append(-log_q[target])
        nll_base.append(-log_p_base[target])
        keep = log_p_base > -16
        kld.append(np.sum(np.exp(log_p_base[keep]) * (log_p_base[keep] - log_q[keep])))
        same.append(int(np.argmax(x) == np.argmax(log_p_base)))
        p_diff.append(np.exp(-nll[-1]) - np.exp(-nll_base[-1]))
reference = {
    "n_ctx": n_ctx, "n_vocab": n_vocab, "n_chunk": n_chunk, "tokens": tokens.tolist(),
    "base_logits": base.astype(np.float64).tolist(), "other_logits": other.astype(np.float64).tolist(),
    "statistics": {"count": len(nll), "mean_nll": float(np.mean(nll)),
                   "mean_nll_base": float(np.mean(nll_base)), "mean_kld": float(np.mean(kld)),
                   "max_kld": float(np.max(kld)), "same_top": float(np.mean(same)),
                   "rms_p_diff": float(np.sqrt(np.mean(np.square(p_diff))))},
}
json.dump(reference, open(os.path.join(here, "reference.json"), "w"), indent=1)
print(len(blob), "bytes;", reference["statistics"])
