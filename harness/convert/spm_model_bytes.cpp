#include "harness/convert/spm_model_bytes.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "harness/core/error.h"

namespace parity::convert {
namespace {

constexpr int kWireVarint = 0, kWireFixed64 = 1, kWireLengthDelimited = 2, kWireFixed32 = 5;
constexpr uint64_t kModelPieces = 1;        // ModelProto.pieces (repeated SentencePiece)
constexpr uint64_t kPieceText = 1;          // SentencePiece.piece
constexpr uint64_t kPieceScore = 2;         // SentencePiece.score (float)
constexpr uint64_t kPieceType = 3;          // SentencePiece.type (enum)

// One field of a message: its number, wire type and the byte ranges of the whole field and of its
// payload (for length-delimited fields, the bytes after the length).
struct Field {
  uint64_t number = 0;
  int wire_type = 0;
  size_t begin = 0, end = 0;
  size_t payload_begin = 0;
};

bool ReadVarint(const std::string& bytes, size_t& pos, size_t end, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && pos < end; shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(bytes[pos++]);
    value |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// Splits bytes[begin, end) into fields; throws when malformed.
std::vector<Field> ParseFields(const std::string& bytes, size_t begin, size_t end,
                               const std::string& source) {
  std::vector<Field> fields;
  size_t pos = begin;
  auto malformed = [&]() {
    return InputError(fmt::format("{}: not a SentencePiece model (malformed protobuf at byte {})",
                                  source, pos));
  };
  while (pos < end) {
    Field field;
    field.begin = pos;
    uint64_t key = 0, value = 0;
    if (!ReadVarint(bytes, pos, end, key)) throw malformed();
    field.number = key >> 3;
    field.wire_type = static_cast<int>(key & 7);
    switch (field.wire_type) {
      case kWireVarint:
        if (!ReadVarint(bytes, pos, end, value)) throw malformed();
        break;
      case kWireFixed64:
        pos += 8;
        break;
      case kWireFixed32:
        pos += 4;
        break;
      case kWireLengthDelimited:
        if (!ReadVarint(bytes, pos, end, value) || value > end - pos) throw malformed();
        field.payload_begin = pos;
        pos += value;
        break;
      default:
        throw malformed();
    }
    if (pos > end) throw malformed();
    field.end = pos;
    fields.push_back(field);
  }
  return fields;
}

}  // namespace

std::vector<std::string> ModelPieces(const std::string& model_bytes, const std::string& source) {
  std::vector<std::string> pieces;
  for (const Field& field : ParseFields(model_bytes, 0, model_bytes.size(), source)) {
    if (field.number != kModelPieces || field.wire_type != kWireLengthDelimited) continue;
    std::string text;
    for (const Field& inner : ParseFields(model_bytes, field.payload_begin, field.end, source)) {
      if (inner.number == kPieceText && inner.wire_type == kWireLengthDelimited) {
        text.assign(model_bytes, inner.payload_begin, inner.end - inner.payload_begin);
      }
    }
    pieces.push_back(std::move(text));
  }
  return pieces;
}

std::vector<PieceEntry> ModelPieceEntries(const std::string& model_bytes, const std::string& source) {
  std::vector<PieceEntry> entries;
  for (const Field& field : ParseFields(model_bytes, 0, model_bytes.size(), source)) {
    if (field.number != kModelPieces || field.wire_type != kWireLengthDelimited) continue;
    PieceEntry entry;
    for (const Field& inner : ParseFields(model_bytes, field.payload_begin, field.end, source)) {
      if (inner.number == kPieceText && inner.wire_type == kWireLengthDelimited) {
        entry.piece.assign(model_bytes, inner.payload_begin, inner.end - inner.payload_begin);
      } else if (inner.number == kPieceScore && inner.wire_type == kWireFixed32) {
        std::memcpy(&entry.score, model_bytes.data() + inner.end - 4, 4);
      } else if (inner.number == kPieceType && inner.wire_type == kWireVarint) {
        size_t pos = inner.begin;
        uint64_t key = 0, value = 0;
        ReadVarint(model_bytes, pos, inner.end, key);
        ReadVarint(model_bytes, pos, inner.end, value);
        entry.type = static_cast<int32_t>(value);
      }
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

}  // namespace parity::convert
