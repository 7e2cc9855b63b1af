// Reading a serialized SentencePiece ModelProto without the protobuf library (which Parity keeps out
// of its own process: see the tokenizer shim), e.g. to learn the ids a training gave to symbols.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace parity::convert {

// The pieces of a serialized ModelProto in id order (ModelProto field 1, each SentencePiece's field 1),
// e.g. to find the ids the trainer gave to user-defined symbols. Throws InputError naming `source`
// when the bytes are not a well-formed protobuf message.
std::vector<std::string> ModelPieces(const std::string& model_bytes, const std::string& source);

// One vocabulary entry as SentencePiece stores it: SentencePiece.piece (1), .score (2, float) and
// .type (3: 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte; absent = 1), the
// same numbers llama.cpp's tokenizer.ggml.token_type uses.
struct PieceEntry {
  std::string piece;
  float score = 0.0f;
  int32_t type = 1;
};
std::vector<PieceEntry> ModelPieceEntries(const std::string& model_bytes, const std::string& source);

}  // namespace parity::convert
