// What a GGUF file means to Parity, in both directions (reading a GGUF as a checkpoint, writing one
// with `parity convert hf-to-gguf`):
// - tensor names: llama.cpp's LLM_TENSOR_NAMES, shared by every family (token_embd,
//   blk.N.attn_norm, attn_q / attn_k / attn_v / attn_output (+ .bias), attn_q_norm / attn_k_norm,
//   ffn_norm, ffn_gate / ffn_up / ffn_down, output_norm, output), mapped to roles;
// - which family a general.architecture value is, and whether its Q/K rows are permuted
//   (ArchSpec::gguf, harness/archs);
// - hyper-parameters: `<arch>.*` keys <-> config.json fields:
//     vocab_size <- <arch>.vocab_size (else the tokenizer's token count, else token_embd's rows)
//     hidden_size <- embedding_length          num_hidden_layers <- block_count
//     intermediate_size <- feed_forward_length  max_position_embeddings <- context_length
//     num_attention_heads <- attention.head_count
//     num_key_value_heads <- attention.head_count_kv (default: head_count)
//     head_dim <- attention.key_length (must equal value_length and rope.dimension_count)
//     rms_norm_eps <- attention.layer_norm_rms_epsilon   rope_theta <- rope.freq_base
//     rope_scaling <- rope.scaling.type "linear" + rope.scaling.factor ("none" or absent: none)
//     attention_bias <- blk.0.attn_q.bias present (llama)   tie_word_embeddings <- no output.weight
//     bos / eos / pad_token_id <- tokenizer.ggml.bos_token_id / eos_token_id / padding_token_id
//   FP32 metadata values are read at their shortest decimal spelling (1e-05, not 9.99999974738e-06),
//   which is what the config.json they were written from said.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "harness/model/arch.h"
#include "harness/model/arch_spec.h"

namespace parity::io {
class GgufFile;
class GgufWriter;
}  // namespace parity::io

namespace parity::model {

// The family a GGUF general.architecture value reads as; nullptr when Parity does not read it.
const ArchSpec* FindArchByGgufName(const std::string& gguf_architecture);
// "internlm2, llama, qwen2, qwen3" for messages.
std::string KnownGgufArchitectures();

// llama.cpp's name of `role` (layer for per-layer roles), e.g. "blk.3.attn_q.weight"; nullopt for
// roles GGUF has no name for here (packed qkv, MoE experts).
std::optional<std::string> GgufTensorName(Role role, int64_t layer = -1);
// The role and layer of a GGUF tensor name; nullopt when not one of the names above.
std::optional<ParsedName> ParseGgufTensorName(const std::string& name);

// The config.json object `file`'s metadata describes (model_type and architectures of the family,
// the fields above). Throws one InputError naming the file and every missing or unsupported key.
nlohmann::json GgufConfigJson(const io::GgufFile& file);

// Writes general.architecture and the `<arch>.*` hyper-parameters of `config` as
// convert_hf_to_gguf.py does. Throws InputError when the family has no GGUF form or the config has
// something llama.cpp cannot represent (sliding window, MoE, rope scaling other than linear/dynamic:
// dynamic is left out as the converter leaves it out; `note` says so).
void WriteGgufHyperParameters(const ModelConfig& config, io::GgufWriter& writer, std::string* note);

}  // namespace parity::model
