// A C interface over Debian's SentencePiece, built as its own shared library (libparity_spm.so).
// Why: Debian's libsentencepiece exports a bundled protobuf 3.14 whose symbols clash with the protobuf
// 3.21 that libtorch loads; linked into one process the two crash in static initialisation. The
// tokenizer loads this shim with dlmopen(LM_ID_NEWLM), in a link-map namespace of its own with its own
// libstdc++ and libc, so each side binds to its own protobuf. (RTLD_DEEPBIND is not enough: the
// shim then writes to libstdc++'s never-constructed std::cerr.) Memory therefore never crosses the
// boundary: strings and id arrays the shim returns are malloc'd by its own libc and must be freed with
// parity_spm_free_buffer.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

char* CopyString(const std::string& text) {
  char* out = static_cast<char*>(std::malloc(text.size() + 1));
  std::memcpy(out, text.data(), text.size());
  out[text.size()] = '\0';
  return out;
}

sentencepiece::SentencePieceProcessor* Processor(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

// Feeds the trainer one line of an in-memory text at a time.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(std::string text) : text_(std::move(text)) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    if (position_ > text_.size()) {
      done_ = true;
      return;
    }
    size_t end = text_.find('\n', position_);
    if (end == std::string::npos) end = text_.size();
    line_ = text_.substr(position_, end - position_);
    position_ = end + 1;
    if (line_.empty() && position_ > text_.size()) done_ = true;
  }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  std::string text_;
  std::string line_;
  size_t position_ = 0;
  bool done_ = false;
};

}  // namespace

extern "C" {

int parity_spm_abi_version() { return 1; }

// Loads a model; on failure returns nullptr and sets *error (malloc'd).
void* parity_spm_load(const char* path, char** error) {
  auto* processor = new sentencepiece::SentencePieceProcessor();
  auto status = processor->Load(path);
  if (!status.ok()) {
    *error = CopyString(status.ToString());
    delete processor;
    return nullptr;
  }
  return processor;
}

void parity_spm_free(void* handle) { delete Processor(handle); }
void parity_spm_free_buffer(void* buffer) { std::free(buffer); }

// Encodes `size` bytes of text; returns the number of ids written to *ids (malloc'd).
int parity_spm_encode(void* handle, const char* text, size_t size, int** ids) {
  std::vector<int> out;
  Processor(handle)->Encode(std::string(text, size), &out);
  *ids = static_cast<int*>(std::malloc(sizeof(int) * (out.empty() ? 1 : out.size())));
  std::memcpy(*ids, out.data(), sizeof(int) * out.size());
  return static_cast<int>(out.size());
}

// Decodes ids; returns a malloc'd NUL-terminated string.
char* parity_spm_decode(void* handle, const int* ids, int count) {
  std::string text;
  Processor(handle)->Decode(std::vector<int>(ids, ids + count), &text);
  return CopyString(text);
}

char* parity_spm_id_to_piece(void* handle, int id) {
  return CopyString(Processor(handle)->IdToPiece(id));
}
int parity_spm_piece_to_id(void* handle, const char* piece) {
  return Processor(handle)->PieceToId(piece);
}
int parity_spm_vocab_size(void* handle) { return Processor(handle)->GetPieceSize(); }
int parity_spm_unk_id(void* handle) { return Processor(handle)->unk_id(); }
int parity_spm_is_byte(void* handle, int id) { return Processor(handle)->IsByte(id) ? 1 : 0; }
int parity_spm_is_control(void* handle, int id) { return Processor(handle)->IsControl(id) ? 1 : 0; }

// Trains a model on `size` bytes of text (one sentence per line) with a SentencePieceTrainer argument
// string. The model comes back in memory (*model, malloc'd, *model_size bytes), never through files,
// so no path ends up inside it and the same text and arguments give the same bytes. Returns 0 on
// success, else sets *error.
int parity_spm_train(const char* arguments, const char* text, size_t size, char** model,
                     size_t* model_size, char** error) {
  LineIterator lines(std::string(text, size));
  std::string serialized;
  auto status = sentencepiece::SentencePieceTrainer::Train(arguments, &lines, &serialized);
  if (!status.ok()) {
    *error = CopyString(status.ToString());
    return 1;
  }
  *model = static_cast<char*>(std::malloc(serialized.size() + 1));
  std::memcpy(*model, serialized.data(), serialized.size());
  *model_size = serialized.size();
  return 0;
}

}  // extern "C"
