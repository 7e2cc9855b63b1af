# TF32 on the GPU machine: a random HF Llama (TF32_SHAPE, below) written here (no download), 64 greedy steps with
# HF transformers in FP32 with TF32 off and with TF32 on, on CUDA, plus the torch / transformers
# defaults for TF32 as found in a fresh process. Usage: tf32_hf.py MODEL_DIR OUT_DIR.
# Weights: N(0, 1/fan_in) matrices, N(0, 1) embeddings, norms 1 + N(0, 0.1) (a realistic logit scale,
# as scripts/golden_families.py); no EOS, so every run makes 64 tokens.
import json, os, sys, torch, transformers as T

model_dir, out = sys.argv[1], sys.argv[2]
defaults = dict(torch=torch.__version__, transformers=T.__version__,
                allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                float32_matmul_precision=torch.get_float32_matmul_precision(),
                cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                fp32_precision=str(getattr(torch.backends.cuda.matmul, "fp32_precision", None)),
                gpu=torch.cuda.get_device_name(0))
torch.manual_seed(0)
# TF32_SHAPE=small: 8 layers, hidden 1024 (no TF32 flip in 3 x 64 steps on an H200, third session);
# 7b (default): Llama-2-7B's sizes, the depth at which HF's CUDA FP32 was seen leaving the CPU run.
shape = os.environ.get("TF32_SHAPE", "7b")
sizes = dict(small=dict(vocab_size=4096, hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                        num_attention_heads=16, num_key_value_heads=4),
             **{"7b": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008,
                           num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32)})[shape]
config = T.LlamaConfig(**sizes, max_position_embeddings=512, bos_token_id=None, eos_token_id=None,
                       pad_token_id=None, tie_word_embeddings=False)
with torch.device("cuda"):
    model = T.AutoModelForCausalLM.from_config(config).float()
g = torch.Generator(device="cuda").manual_seed(1)
with torch.no_grad():
    for name, p in sorted(model.named_parameters()):
        r = torch.randn(p.shape, generator=g, device="cuda")
        p.copy_(1 + .1 * r if name.endswith("norm.weight") else r if "embed" in name else r / p.shape[-1] ** .5)
        del r
defaults["shape"] = dict(sizes, name=shape)
model.save_pretrained(model_dir)
if os.path.exists(model_dir + "/generation_config.json"):
    os.remove(model_dir + "/generation_config.json")
model = model.eval()  # the weights just saved, already on the GPU (FP32: what was written is what runs)
defaults["attn_implementation"] = model.config._attn_implementation
defaults["allow_tf32_after_load"] = torch.backends.cuda.matmul.allow_tf32
prompts = [[(37 * (q + 1) + 101 * i) % 4000 + 3 for i in range(8)] for q in range(int(os.environ.get("TF32_PROMPTS", "8")))]
gc = T.GenerationConfig(do_sample=False, max_new_tokens=64, min_new_tokens=64, eos_token_id=None,
                        pad_token_id=0, output_logits=True, return_dict_in_generate=True)
results = {}
for mode in ("fp32", "tf32"):
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    runs = []
    for ids in prompts:
        x = torch.tensor([ids], device="cuda")
        with torch.no_grad():
            o = model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=gc)
        logits = torch.cat(o.logits).float()
        top = logits.topk(2).values
        runs.append(dict(prompt=ids, tokens=o.sequences[0, len(ids):].tolist(),
                         margins=[round(float(v), 5) for v in top[:, 0] - top[:, 1]]))
    results[mode] = runs
torch.backends.cuda.matmul.allow_tf32 = False
json.dump(dict(defaults=defaults, hf=results), open(out + "/hf.json", "w"), indent=1)
print(json.dumps(defaults))
