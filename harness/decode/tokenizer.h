// The tokenizer moved to harness/tokenizer/ (SentencePiece and tokenizer.json behind one facade);
// this header keeps the decode:: names its callers use.
#pragma once

#include "harness/tokenizer/sentencepiece_backend.h"
#include "harness/tokenizer/tokenizer.h"

namespace parity::decode {
using tokenizer::Tokenizer;
using tokenizer::TrainSentencePiece;
}  // namespace parity::decode
