// A GGUF file standing where a checkpoint directory stands: an io::Checkpoint view whose config is
// made from the file's metadata (gguf_model.h) and whose tensors carry their Hugging Face names,
// dequantized to FP32 when read (exactly as ggml dequantizes) and, for families whose converter
// permutes Q/K rows for llama.cpp's rope (llama, internlm2), put back into HF's row order
// (io::UnpermuteLlamaQK with n_head for attn_q, n_kv_head for attn_k). Each tensor remembers its GGUF
// name and stored type (io::ExternalTensor), which diff-weights and inspect show.
//
// A tensor name GGUF does not map to a role of the family keeps its GGUF name, so that it shows up
// as unexpected (inspect, diff-weights) instead of vanishing.
#pragma once

#include <string>

#include "harness/io/checkpoint.h"

namespace parity::model {

// True when `path` is a regular file starting with the GGUF magic.
bool IsGgufFile(const std::string& path);

// Opens `path` as above. Throws InputError naming the file and the key or tensor at fault.
io::Checkpoint OpenGgufCheckpoint(const std::string& path);

// A checkpoint directory (io::Checkpoint::Open) or a GGUF file (OpenGgufCheckpoint).
io::Checkpoint OpenCheckpointPath(const std::string& path);

}  // namespace parity::model
