#include "harness/tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <regex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/tokenizer/sentencepiece_backend.h"
#include "harness/tokenizer/tokenizer_json.h"

namespace parity::tokenizer {
namespace {

nlohmann::json ReadIfExists(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) return nlohmann::json::object();
  return io::ReadJsonFile(path.string());
}

// Reads an id field that may be an int or a list of ints.
void AppendIds(const nlohmann::json& value, std::vector<int64_t>& out) {
  if (value.is_number_integer()) out.push_back(value.get<int64_t>());
  if (value.is_array()) {
    for (const auto& v : value) {
      if (v.is_number_integer()) out.push_back(v.get<int64_t>());
    }
  }
}

// tokenizer_config.json's chat_template: a string, or a list of {"name", "template"} (the "default").
std::string ChatTemplateText(const nlohmann::json& tokenizer_config) {
  auto it = tokenizer_config.find("chat_template");
  if (it == tokenizer_config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    for (const auto& entry : *it) {
      if (entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string()) {
        return entry["template"].get<std::string>();
      }
    }
  }
  return "";
}

// Qwen2/2.5 templates emit a fixed system turn when the conversation has none, as a Jinja literal:
// {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. ...<|im_end|>\n' }}.
// Returns its message ("" when the template has no such literal; Qwen3's has none).
std::string DefaultSystemMessage(const std::string& chat_template) {
  static const std::regex literal(R"('<\|im_start\|>system\\n([^'{}+]*)<\|im_end\|>\\n')");
  std::smatch match;
  if (!std::regex_search(chat_template, match, literal)) return "";
  std::string message = match[1].str();
  std::string out;
  for (size_t i = 0; i < message.size(); ++i) {  // Jinja string escapes: \n and \'
    if (message[i] == '\\' && i + 1 < message.size()) {
      char next = message[++i];
      out += next == 'n' ? '\n' : next;
    } else {
      out += message[i];
    }
  }
  return out;
}

std::string Trim(const std::string& text) {
  const char* space = " \t\n\r\f\v";
  size_t begin = text.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(space) - begin + 1);
}

// The id of a token spelled `text` in tokenizer_config.json's "eos_token" (a string or {content}).
std::optional<int64_t> ConfigTokenId(const nlohmann::json& tokenizer_config, const char* key,
                                     const Backend& backend) {
  auto it = tokenizer_config.find(key);
  if (it == tokenizer_config.end()) return std::nullopt;
  std::string text;
  if (it->is_string()) text = it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    text = (*it)["content"].get<std::string>();
  }
  if (text.empty()) return std::nullopt;
  return backend.PieceId(text);
}

}  // namespace

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::Load(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path root(dir);
  Tokenizer tokenizer;
  tokenizer.dir_ = dir;
  const bool sentencepiece = fs::exists(root / "tokenizer.model");
  tokenizer.sentencepiece_ = sentencepiece;
  if (sentencepiece) {
    tokenizer.backend_ = LoadSentencePiece(dir);
  } else if (fs::exists(root / "tokenizer.json")) {
    tokenizer.backend_ = LoadTokenizerJson((root / "tokenizer.json").string());
  } else {
    throw InputError(fmt::format(
        "{}: no tokenizer: Parity needs tokenizer.model (SentencePiece) or tokenizer.json (byte-level "
        "BPE)",
        dir));
  }
  const Backend& backend = *tokenizer.backend_;

  // BOS and EOS: generation_config.json first (it may list several EOS ids), then config.json, then
  // (tokenizer.json checkpoints) tokenizer_config.json's eos_token.
  nlohmann::json generation = ReadIfExists(root / "generation_config.json");
  nlohmann::json config = ReadIfExists(root / "config.json");
  nlohmann::json tokenizer_config = ReadIfExists(root / "tokenizer_config.json");
  for (const nlohmann::json* source : {&generation, &config}) {
    if (tokenizer.eos_ids_.empty() && source->contains("eos_token_id")) {
      AppendIds((*source)["eos_token_id"], tokenizer.eos_ids_);
    }
  }
  if (sentencepiece) {
    if (generation.contains("bos_token_id") && generation["bos_token_id"].is_number_integer()) {
      tokenizer.bos_id_ = generation["bos_token_id"].get<int64_t>();
    } else if (config.contains("bos_token_id") && config["bos_token_id"].is_number_integer()) {
      tokenizer.bos_id_ = config["bos_token_id"].get<int64_t>();
    }
    if (tokenizer.eos_ids_.empty()) tokenizer.eos_ids_.push_back(2);
    tokenizer.chat_template_ = ChatTemplate::kChatMlWithBos;
    return tokenizer;
  }

  // tokenizer.json: BOS is whatever its post-processor template puts first.
  std::vector<int64_t> prefix = backend.SpecialPrefix();
  tokenizer.bos_id_ = prefix.empty() ? -1 : prefix.front();
  if (tokenizer.eos_ids_.empty()) {
    if (auto eos = ConfigTokenId(tokenizer_config, "eos_token", backend)) {
      tokenizer.eos_ids_.push_back(*eos);
    }
  }
  const std::string chat_template = ChatTemplateText(tokenizer_config);
  const bool has_chatml = backend.PieceId("<|im_start|>") && backend.PieceId("<|im_end|>");
  const bool has_llama3 = backend.PieceId("<|start_header_id|>") &&
                          backend.PieceId("<|end_header_id|>") && backend.PieceId("<|eot_id|>");
  if (has_chatml && (chat_template.empty() || chat_template.find("<|im_start|>") != std::string::npos)) {
    tokenizer.chat_template_ = ChatTemplate::kChatMl;
    tokenizer.default_system_message_ = DefaultSystemMessage(chat_template);
  } else if (has_llama3 && (chat_template.empty() ||
                            chat_template.find("<|start_header_id|>") != std::string::npos)) {
    tokenizer.chat_template_ = ChatTemplate::kLlama3;
  }
  return tokenizer;
}

std::vector<int64_t> Tokenizer::Encode(const std::string& text, bool add_bos) const {
  std::vector<int64_t> ids;
  const bool sentencepiece = sentencepiece_;
  if (add_bos) {
    if (sentencepiece) {
      ids.push_back(bos_id_);
    } else {
      ids = backend_->SpecialPrefix();
    }
  }
  std::vector<int64_t> body = backend_->Encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  if (add_bos && !sentencepiece) {
    std::vector<int64_t> suffix = backend_->SpecialSuffix();
    ids.insert(ids.end(), suffix.begin(), suffix.end());
  }
  return ids;
}

std::string Tokenizer::Decode(const std::vector<int64_t>& ids) const { return backend_->Decode(ids); }

std::string Tokenizer::TokenText(int64_t id) const { return backend_->TokenText(id); }

std::string Tokenizer::Piece(int64_t id) const { return backend_->Piece(id); }

std::string Tokenizer::ChatText(const std::string& user_message) const {
  switch (chat_template_) {
    case ChatTemplate::kChatMlWithBos:
      return "<|im_start|>user\n" + user_message + "<|im_end|>\n<|im_start|>assistant\n";
    case ChatTemplate::kChatMl: {
      std::string system;
      if (!default_system_message_.empty()) {
        system = "<|im_start|>system\n" + default_system_message_ + "<|im_end|>\n";
      }
      return system + "<|im_start|>user\n" + user_message + "<|im_end|>\n<|im_start|>assistant\n";
    }
    case ChatTemplate::kLlama3:
      // Llama-3's template trims each message and writes BOS itself.
      return "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + Trim(user_message) +
             "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
    case ChatTemplate::kNone:
      break;
  }
  throw InputError(fmt::format(
      "{}: no chat template Parity knows: the tokenizer has neither <|im_start|>/<|im_end|> (ChatML) "
      "nor <|start_header_id|>/<|eot_id|> (Llama-3); give the prompt as text or tokens instead",
      dir_));
}

std::vector<int64_t> Tokenizer::EncodeChat(const std::string& user_message) const {
  // Only the SentencePiece (InternLM2) prompt starts with BOS added by the tokenizer; Qwen's has
  // none and Llama-3's writes <|begin_of_text|> in the text.
  return Encode(ChatText(user_message), chat_template_ == ChatTemplate::kChatMlWithBos);
}

int64_t Tokenizer::vocab_size() const { return backend_->vocab_size(); }

bool Tokenizer::IsEos(int64_t id) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end();
}

std::string Tokenizer::kind() const { return backend_->kind(); }

}  // namespace parity::tokenizer
