# Where the token streams of HF FP32 (TF32 off), HF TF32, Parity @fp32 and Parity @tf32 (CUDA) first
# differ, per prompt, from hf.json and Parity's summary.json in DIR. Usage: tf32_table.py DIR.
import json, sys
d = sys.argv[1]
hf = json.load(open(d + "/hf.json"))
runs = json.load(open(d + "/parity_summary.json"))["runs"]
print("defaults:", json.dumps(hf["defaults"]))
def first_diff(x, y):
    n = min(len(x), len(y))
    return next((i for i in range(n) if x[i] != y[i]), "-" if len(x) == len(y) else n)
print("prompt  HF32-vs-HFTF32  P32-vs-HF32  PTF32-vs-HFTF32  P32-vs-HFTF32  PTF32-vs-HF32  P32-vs-PTF32  min margin HF32/HFTF32")
for q, (h32, htf) in enumerate(zip(hf["hf"]["fp32"], hf["hf"]["tf32"])):
    run = next(r for r in runs if r["prompt_tokens"] == h32["prompt"])
    p32, ptf = run["tokens_a"], run["tokens_b"]
    cells = [first_diff(h32["tokens"], htf["tokens"]), first_diff(p32, h32["tokens"]),
             first_diff(ptf, htf["tokens"]), first_diff(p32, htf["tokens"]),
             first_diff(ptf, h32["tokens"]), first_diff(p32, ptf)]
    print(f"p{q}      " + "  ".join(f"{str(c):>14}" for c in cells),
          f"  {min(h32['margins']):.4g}/{min(htf['margins']):.4g}", f"(steps {len(p32)}/{len(ptf)})")
print("('-' = identical for all 64 steps; a number = the first step where the two differ)")
