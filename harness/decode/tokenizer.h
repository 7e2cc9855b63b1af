// Tokenization with a SentencePiece `tokenizer.model`, plus the checkpoint's added special tokens
// (e.g. <|im_start|> from tokenizer_config.json / added_tokens.json / special_tokens_map.json), BOS
// handling, the EOS ids from generation_config.json, and the ChatML template.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace parity::decode {

class Tokenizer {
 public:
  // Loads DIR/tokenizer.model and the special tokens and EOS ids from DIR's tokenizer_config.json,
  // added_tokens.json, special_tokens_map.json, generation_config.json and config.json (whichever
  // exist). Throws InputError naming the file when tokenizer.model is missing or unreadable.
  static Tokenizer Load(const std::string& dir);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Encodes text; added special tokens written literally in the text (e.g. "<|im_start|>") become
  // their ids. Prepends BOS when `add_bos`.
  std::vector<int64_t> Encode(const std::string& text, bool add_bos = true) const;
  // Decodes ids to text (special tokens written literally, BOS/EOS omitted).
  std::string Decode(const std::vector<int64_t>& ids) const;
  // The text of one token as it appears inside a decoded stream (e.g. "\n", " the").
  std::string TokenText(int64_t id) const;
  // ChatML: "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n", encoded with BOS.
  std::vector<int64_t> EncodeChat(const std::string& user_message) const;

  int64_t vocab_size() const;  // SentencePiece pieces (added tokens may extend beyond)
  int64_t bos_id() const { return bos_id_; }
  const std::vector<int64_t>& eos_ids() const { return eos_ids_; }
  bool IsEos(int64_t id) const;

 private:
  Tokenizer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t bos_id_ = 1;
  std::vector<int64_t> eos_ids_;
};

// Trains a BPE SentencePiece model on `corpus_path`, deterministically (one thread, fixed settings),
// with `user_defined_symbols` (e.g. "<|im_start|>", "<|im_end|>") as single pieces, and writes
// `model_path` atomically. ids: <unk>=0, <s>=1, </s>=2.
void TrainSentencePiece(const std::string& corpus_path, const std::string& model_path,
                        int64_t vocab_size, const std::vector<std::string>& user_defined_symbols);

}  // namespace parity::decode
