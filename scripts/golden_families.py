# Random small HF models of every family Parity reads, with golden greedy tokens and logits (FP32,
# eager attention, CPU; 64 steps, two prompts each). Written tersely on purpose: it travels to the GPU
# machine compressed inside one command line (2,000 characters). Usage: golden_families.py OUT_DIR.
# Shapes are odd on purpose: GQA 3 and 6, head_dim != hidden/heads, q/k/v biases, tied and untied
# heads, sliding windows shorter than the sequence, top-2 of 8 experts with dense layers between.
# Weights: N(0, 1/fan_in) matrices, N(0, 1) embeddings, norms 1 + N(0, 0.01), biases N(0, 0.01).
import json,os,sys,inspect,torch,transformers as T
from safetensors.torch import save_file
torch.manual_seed(0)
def C(c,h,i,L,kv,**k):return c,dict(vocab_size=256,max_position_embeddings=128,hidden_size=h,intermediate_size=i,num_hidden_layers=L,num_attention_heads=6,num_key_value_heads=kv,**k)
M=dict(num_experts=8,num_experts_per_tok=2)
F=dict(qwen2=C("Qwen2",72,112,3,2,tie_word_embeddings=True),qwen2_sliding=C("Qwen2",72,112,4,2,use_sliding_window=True,sliding_window=8,max_window_layers=2),qwen3=C("Qwen3",64,96,3,1,head_dim=16),mistral=C("Mistral",96,128,3,2,head_dim=24,rms_norm_eps=1e-5,sliding_window=12),qwen3_moe=C("Qwen3Moe",64,96,4,2,head_dim=20,moe_intermediate_size=32,norm_topk_prob=True,mlp_only_layers=[1],**M),qwen3_moe_sparse2=C("Qwen3Moe",48,80,4,1,head_dim=12,tie_word_embeddings=True,moe_intermediate_size=24,decoder_sparse_step=2,**M))
for i,(n,(c,a)) in enumerate(F.items()):
 d=sys.argv[1]+"/"+n;os.makedirs(d)
 m=T.AutoModelForCausalLM.from_config(getattr(T,c+"Config")(**a),attn_implementation="eager").float()
 g=torch.Generator().manual_seed(1000+i)
 with torch.no_grad():
  for k,p in sorted(m.named_parameters()):
   r=torch.randn(p.shape,generator=g);p.copy_(1+.1*r if k.endswith("norm.weight") else .1*r if k.endswith("bias") else r if "embed" in k else r/p.shape[-1]**.5)
 m.save_pretrained(d);os.remove(d+"/generation_config.json")
 m,info=T.AutoModelForCausalLM.from_pretrained(d,attn_implementation="eager",output_loading_info=True,dtype=torch.float32)
 m.eval();g=torch.Generator().manual_seed(7+i);ts={};E=[]
 gc=T.GenerationConfig(do_sample=False,max_new_tokens=64,min_new_tokens=64,eos_token_id=None,pad_token_id=0,output_logits=True,return_dict_in_generate=True)
 for q in range(2):
  x=torch.randint(0,256,(1,6+3*q),generator=g)
  with torch.no_grad():
   o=m.generate(input_ids=x,attention_mask=torch.ones_like(x),generation_config=gc);gl=torch.cat(o.logits).float();fl=m(input_ids=o.sequences,use_cache=False).logits[0].float()
  s=o.sequences[0,x.shape[1]:].tolist();t=gl.topk(2).values;ts[f"p{q}.generate_logits"]=gl;ts[f"p{q}.forward_logits"]=fl
  E.append(dict(name=f"p{q}",input_ids=x[0].tolist(),generated_ids=s,argmax_ok=gl.argmax(-1).tolist()==s,margins_top1_top2=[round(float(v),6) for v in t[:,0]-t[:,1]],fwd_vs_gen=float((fl[x.shape[1]-1:-1]-gl).abs().max())))
 save_file(ts,d+"/logits.safetensors")
 src={type(u).__name__:inspect.getsource(type(u).forward) for u in m.modules() if any(w in type(u).__name__ for w in("Router","Experts","SparseMoe"))}
 json.dump(dict(family=n,config_class=c+"Config",config_arguments=a,loading_info=str(info),versions=[torch.__version__,T.__version__],experts_implementation=getattr(m.config,"_experts_implementation",None),moe_sources=src,prompts=E),open(d+"/golden.json","w"),indent=1)
 print(n,info,[min(e["margins_top1_top2"]) for e in E],[e["argmax_ok"] for e in E])
