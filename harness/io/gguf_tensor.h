// GGUF tensors as libtorch tensors, and the Q/K row permutation llama.cpp's converter applies to
// llama-family attention weights (not to Qwen2/Qwen3), for the GGUF side of a checkpoint comparison.
// The mapping of GGUF names to Parity's roles is the architecture registry's job (harness/archs).
#pragma once

#include <cstdint>

#include <ATen/Tensor.h>

#include "harness/io/gguf.h"

namespace parity::io {

// The tensor dequantized to FP32 with PyTorch's shape (GGUF dims reversed): a GGUF
// [hidden, vocab] token_embd is [vocab, hidden], as in a safetensors checkpoint.
at::Tensor GgufTensorToTorch(const GgufFile& file, const GgufTensorInfo& tensor);

// convert_hf_to_gguf.py's LlamaModel.permute for q_proj (n_head) and k_proj (n_kv_head) weights or
// biases of `rows` = n_head * head_dim rows: within each head, the two rotary halves are interleaved,
// w.reshape(n_head, 2, head_dim / 2, ...).swapaxes(1, 2).reshape(w.shape).
// Throws InputError when rows is not a multiple of 2 * n_head.
at::Tensor PermuteLlamaQK(const at::Tensor& weight, int64_t n_head);
// Its inverse: a GGUF llama-family attn_q/attn_k back to HF's q_proj/k_proj layout.
at::Tensor UnpermuteLlamaQK(const at::Tensor& weight, int64_t n_head);

}  // namespace parity::io
