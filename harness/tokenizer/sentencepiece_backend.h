// SentencePiece `tokenizer.model` (InternLM2, Llama-2 style checkpoints) through libparity_spm.so,
// the shim loaded with dlmopen (shim/spm_shim.cpp says why), plus the added special tokens the
// checkpoint declares in tokenizer_config.json / added_tokens.json, split out before SentencePiece
// sees the text (as HF's slow tokenizers do).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "harness/tokenizer/backend.h"

namespace parity::tokenizer {

// Loads DIR/tokenizer.model and DIR's added tokens. Throws InputError naming the file when the model
// is unreadable.
std::unique_ptr<Backend> LoadSentencePiece(const std::string& dir);

// Trains a BPE SentencePiece model on `corpus_path`, deterministically (one thread, fixed settings),
// with `user_defined_symbols` (e.g. "<|im_start|>", "<|im_end|>") as single pieces, and writes
// `model_path` atomically. ids: <unk>=0, <s>=1, </s>=2.
void TrainSentencePiece(const std::string& corpus_path, const std::string& model_path,
                        int64_t vocab_size, const std::vector<std::string>& user_defined_symbols);

}  // namespace parity::tokenizer
