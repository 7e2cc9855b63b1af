#!/usr/bin/env python3
"""Writes DST/tokenizer.model: the SentencePiece model BASE padded with placeholder pieces (or cut)
to DST/config.json's vocab_size, so that a random checkpoint written for a benchmark decodes its ids
to text. Used by scripts/gpu_bench.sh and scripts/gpu_verdicts.sh.

    scripts/pad_spm_tokenizer.py DST BASE
"""
import json
import os
import sys

from sentencepiece import sentencepiece_model_pb2 as pb

dst, base = sys.argv[1], sys.argv[2]
vocab = json.load(open(os.path.join(dst, "config.json")))["vocab_size"]
m = pb.ModelProto()
m.ParseFromString(open(base, "rb").read())
while len(m.pieces) < vocab:
    p = m.pieces.add()
    p.piece = f"\u2581x{len(m.pieces)}"
    p.score = -1000.0 - len(m.pieces)
    p.type = pb.ModelProto.SentencePiece.NORMAL
del m.pieces[vocab:]
open(os.path.join(dst, "tokenizer.model"), "wb").write(m.SerializeToString())
print("tokenizer.model with", len(m.pieces), "pieces")
