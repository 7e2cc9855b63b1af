// HF `tokenizer.json` with a byte-level BPE model, as Qwen2/2.5/3 and Llama-3 ship it, encoded the
// way HF's Rust `tokenizers` does (the reference ids in tests/data/tokenizers come from its npm build):
//   1. added tokens are split out of the raw text (leftmost-longest; lstrip/rstrip/single_word as
//      declared); tokens with "normalized": true are matched after normalization instead;
//   2. the normalizer (NFC/NFD/NFKC/NFKD, or a Sequence of them) runs on the text between them;
//   3. the pre-tokenizer (Split by regex or string, ByteLevel with or without the GPT-2 regex and the
//      prefix space, or a Sequence of those) cuts words and maps their bytes to the GPT-2 alphabet;
//   4. the BPE model merges each word (bpe_model.h);
//   5. the post-processor's template (TemplateProcessing, e.g. Llama-3's <|begin_of_text|>) gives
//      the ids added around the text when special tokens are requested.
// Decoding maps tokens back through the byte alphabet and repairs broken UTF-8 as the reference does.
// Anything else in the file (WordPiece/Unigram models, Metaspace, Replace, ...) is refused by name.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "harness/tokenizer/backend.h"

namespace parity::tokenizer {

// Reads `path` (a tokenizer.json). Throws InputError naming the file and the field for anything
// malformed or outside what is listed above.
std::unique_ptr<Backend> LoadTokenizerJson(const std::string& path);

}  // namespace parity::tokenizer
