// The tokenizer of a checkpoint directory, whichever format it ships:
//   - `tokenizer.model` (SentencePiece; InternLM2, Llama-2 style), used when present, as before;
//   - otherwise `tokenizer.json` (HF byte-level BPE; Qwen2/2.5/3, Llama-3).
// Plus what the checkpoint's configs say around it: BOS, the EOS ids (generation_config.json may list
// several), and the chat template (ChatML with BOS for InternLM2, ChatML without BOS for Qwen, with
// Qwen2/2.5's default system message when its template has one; Llama-3's header template).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "harness/tokenizer/backend.h"

namespace parity::tokenizer {

// Which chat prompt EncodeChat builds.
enum class ChatTemplate {
  kChatMlWithBos,  // <s><|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n (InternLM2)
  kChatMl,         // the same without BOS, after the template's default system message if any (Qwen)
  kLlama3,         // <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{q}<|eot_id|>...
  kNone,           // the tokenizer has none of these tokens: EncodeChat refuses
};

class Tokenizer {
 public:
  // Loads DIR's tokenizer (see above) and its special tokens and EOS ids from tokenizer_config.json,
  // added_tokens.json, generation_config.json and config.json (whichever exist). Throws InputError
  // naming the directory when it has neither tokenizer file, or the file and field that is wrong.
  static Tokenizer Load(const std::string& dir);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Encodes text; added special tokens written literally in the text (e.g. "<|im_start|>") become
  // their ids. With `add_bos`, adds the special tokens the format adds by default: BOS for
  // SentencePiece checkpoints; the post-processor's template for tokenizer.json (Llama-3:
  // <|begin_of_text|>; Qwen: nothing).
  std::vector<int64_t> Encode(const std::string& text, bool add_bos = true) const;
  // Decodes ids to text (added tokens written literally; SentencePiece omits BOS/EOS).
  std::string Decode(const std::vector<int64_t>& ids) const;
  // The text of one token as it appears inside a decoded stream (e.g. "\n", " the"); valid UTF-8.
  std::string TokenText(int64_t id) const;
  // The vocabulary's spelling of one token ("Ġthe", "▁the", "<|im_start|>").
  std::string Piece(int64_t id) const;
  // The chat prompt for one user message, encoded (see ChatTemplate). Throws InputError when the
  // tokenizer has no chat template Parity knows.
  std::vector<int64_t> EncodeChat(const std::string& user_message) const;
  // The chat prompt as text, before encoding.
  std::string ChatText(const std::string& user_message) const;

  int64_t vocab_size() const;  // model vocabulary (tokenizer.json: plus added tokens above it)
  int64_t bos_id() const { return bos_id_; }  // -1 when the format adds none
  const std::vector<int64_t>& eos_ids() const { return eos_ids_; }
  bool IsEos(int64_t id) const;
  ChatTemplate chat_template() const { return chat_template_; }
  std::string kind() const;  // "sentencepiece (tokenizer.model)" or "tokenizer.json (byte-level BPE)"

 private:
  Tokenizer() = default;
  std::unique_ptr<Backend> backend_;
  std::string dir_;
  bool sentencepiece_ = false;  // tokenizer.model; else tokenizer.json
  int64_t bos_id_ = 1;
  std::vector<int64_t> eos_ids_;
  ChatTemplate chat_template_ = ChatTemplate::kNone;
  std::string default_system_message_;  // Qwen2/2.5 templates add one when the chat has none
};

}  // namespace parity::tokenizer
