// `parity convert hf-to-gguf SRC DST.gguf --type f32|f16|bf16|q8_0`: a Hugging Face checkpoint
// (llama, qwen2, qwen3) written as the GGUF file llama.cpp's convert_hf_to_gguf.py writes, so that
// users can make a reference conversion to compare a third-party GGUF with, and the tests get GGUF
// files that the real llama.cpp runs.
//
// What is written:
// - tensors under llama.cpp's names (model/gguf_model.h), every one read as FP32 first (as the
//   script does); 1-D tensors (norms, biases) stay F32 whatever the type, 2-D ones become `type`
//   (F16 / BF16 by round to nearest even, Q8_0 exactly as ggml's quantize_row_q8_0_ref); a matrix
//   whose rows are not a multiple of 32 falls back to F16 for Q8_0, as the script does;
//   attn_q / attn_k (and their biases) of families with permuted_qk get LlamaModel.permute
//   (io::PermuteLlamaQK, n_head for q, n_kv_head for k); the LM head is left out when the
//   embeddings are tied;
// - general.architecture / name / file_type (0 F32, 1 F16, 7 Q8_0, 32 BF16) /
//   quantization_version 2, the `<arch>.*` hyper-parameters;
// - the vocabulary, as the script's set_vocab writes it:
//   * tokenizer.model (SentencePiece): tokenizer.ggml.model "llama", pre "default", tokens, scores
//     and token_type (SentencePiece's own type numbers) from the model proto, added tokens of
//     tokenizer_config.json's added_tokens_decoder as control (special) or user-defined (score
//     -1000), ids up to vocab_size padded with "[PAD<i>]" (score -1000, unused);
//   * else tokenizer.json (byte-level BPE): tokenizer.ggml.model "gpt2", pre "qwen2" for Qwen
//     families and "llama-bpe" for Llama (the script recognises the pre-tokenizer by hashing its
//     output on a test text; Parity names it by family), tokens by id, token_type normal / control
//     (special added tokens) / user-defined (other added tokens) / unused ("[PAD<i>]" for ids no
//     entry has), merges as "a b";
//   * bos / eos (the first of the config's eos ids) / unknown / padding ids, add_bos_token and
//     add_eos_token from tokenizer_config.json when it says.
//   * neither: tokenizer.ggml.model "none" and a note (node-llama-cpp's llama.cpp aborts on such a
//     file, seen with the HF-made random Qwen checkpoints, which have no tokenizer).
// Refuses (InputError, before writing): a family without a GGUF form (InternLM2: convert it to Llama
// first), MoE, sliding window, mlp_bias, a source whose tensors disagree with its config, a DST that
// is a directory. DST is written atomically.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace parity::convert {

struct HfToGgufResult {
  std::string src;
  std::string dst;
  std::string gguf_architecture;              // "llama"
  std::string type;                           // "Q8_0"
  std::string tokenizer;                      // "llama (SentencePiece)", "gpt2 (byte-level BPE)", "none"
  int64_t tensors = 0;
  std::map<std::string, int64_t> tensors_by_type;  // "F32" -> 9
  uint64_t bytes = 0;                         // size of DST
  std::vector<std::string> notes;             // what was left out or changed, and why
};

// `type`: f32, f16, bf16 or q8_0 (any case).
HfToGgufResult ConvertHfToGguf(const std::string& src, const std::string& dst, const std::string& type);

nlohmann::json HfToGgufResultToJson(const HfToGgufResult& result);
std::string FormatHfToGgufResult(const HfToGgufResult& result);

}  // namespace parity::convert
