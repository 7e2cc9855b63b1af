"""Writes the config.json that InternLM's tools/convert2llama.py produces, with the transformers
installed where this runs (the GPU machine has transformers 5.x; see README.md beside this file).

    python3 convert_config.py SRC_DIR DST_DIR

convert2llama reads the source config with AutoConfig(trust_remote_code=True), i.e. the checkpoint's
own InternLM2Config. That class is not part of transformers, so a stand-in with the same constructor
(arguments and defaults of the remote configuration_internlm2.py) is defined here; the conversion
steps below are those of convert2llama's save_conifg().
"""
import json
import sys

from transformers import LlamaConfig, PretrainedConfig


class InternLM2Config(PretrainedConfig):
    model_type = "internlm2"

    def __init__(self, vocab_size=103168, hidden_size=4096, intermediate_size=11008,
                 num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=None,
                 hidden_act="silu", max_position_embeddings=2048, initializer_range=0.02,
                 rms_norm_eps=1e-6, use_cache=True, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                 tie_word_embeddings=False, bias=True, rope_theta=10000, rope_scaling=None,
                 attn_implementation=None, **kwargs):
        self.vocab_size = vocab_size
        self.max_position_embeddings = max_position_embeddings
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.bias = bias
        self.num_key_value_heads = num_attention_heads if num_key_value_heads is None else num_key_value_heads
        self.hidden_act = hidden_act
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.use_cache = use_cache
        self.rope_theta = rope_theta
        self.rope_scaling = rope_scaling
        self.attn_implementation = attn_implementation or "eager"
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id,
                         eos_token_id=eos_token_id, tie_word_embeddings=tie_word_embeddings, **kwargs)


def main(src, dst):
    with open(f"{src}/config.json") as f:
        config = InternLM2Config(**json.load(f))
    # convert2llama's save_conifg():
    config_dict = config.to_dict()
    for key in ["_name_or_path", "auto_map", "transformers_version", "model_type", "architectures",
                "tokenizer_class", "attn_implementation"]:
        config_dict.pop(key, None)
    config_dict["attention_bias"] = config_dict.pop("bias")
    config_dict["architectures"] = ["LlamaForCausalLM"]
    LlamaConfig(**config_dict).save_pretrained(dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
