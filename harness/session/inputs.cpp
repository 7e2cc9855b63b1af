#include "harness/session/inputs.h"

#include <cctype>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "harness/core/error.h"
#include "harness/decode/tokenizer.h"

namespace parity::session {
namespace {

std::string Trimmed(const std::string& text) {
  size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return text.substr(begin, end - begin);
}

}  // namespace

std::vector<int64_t> ParseTokenIds(const std::string& text, const std::string& what) {
  auto fail = [&](const std::string& why) {
    return InputError(fmt::format("{}: expected comma-separated token ids, got \"{}\"{}", what, text,
                                  why.empty() ? "" : " (" + why + ")"));
  };
  std::vector<int64_t> ids;
  size_t start = 0;
  while (true) {
    size_t end = text.find(',', start);
    std::string item =
        Trimmed(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (item.empty()) throw fail(ids.empty() && end == std::string::npos ? "empty" : "an empty item");
    int64_t id = 0;
    try {
      size_t used = 0;
      id = std::stoll(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw fail(fmt::format("\"{}\" is not an integer", item));
    }
    if (id < 0) throw fail(fmt::format("{} is negative", id));
    ids.push_back(id);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return ids;
}

std::string ModelLabel(const std::string& dir) {
  std::filesystem::path path = std::filesystem::path(dir).lexically_normal();
  std::string name = path.filename().string();
  if (name.empty() || name == ".") {
    name = std::filesystem::absolute(path).lexically_normal().filename().string();
  }
  if (name.empty()) name = std::filesystem::absolute(path).lexically_normal().parent_path().filename().string();
  for (char& c : name) {
    if (c == '@' || c == '/' || c == ' ') c = '_';
  }
  return name;
}

std::pair<std::string, std::string> DistinctLabels(const std::string& dir_a,
                                                   const std::string& dir_b) {
  std::string a = ModelLabel(dir_a), b = ModelLabel(dir_b);
  if (a.empty() || b.empty() || a == b) return {"a", "b"};
  return {a, b};
}

bool HasTokenizer(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.model", ec) ||
         std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json", ec);
}

ResolvedPrompt ResolvePrompt(const PromptSpec& prompt, const std::vector<std::string>& dirs) {
  ResolvedPrompt resolved;
  resolved.token_text = [](int64_t id) { return fmt::format("<{}>", id); };
  std::shared_ptr<decode::Tokenizer> tokenizer;
  for (const std::string& dir : dirs) {
    if (HasTokenizer(dir)) {
      tokenizer = std::make_shared<decode::Tokenizer>(decode::Tokenizer::Load(dir));
      break;
    }
  }
  if (tokenizer) {
    resolved.eos_ids = tokenizer->eos_ids();
    resolved.token_text = [tokenizer](int64_t id) { return tokenizer->TokenText(id); };
  }
  if (!prompt.token_ids.empty()) {
    resolved.tokens = ParseTokenIds(prompt.token_ids, "--tokens");
  } else {
    if (prompt.text.empty()) throw InputError("give a prompt: --prompt TEXT or --tokens IDS");
    if (!tokenizer) {
      throw InputError(fmt::format(
          "--prompt: a text prompt needs a tokenizer.model or tokenizer.json in {} (or pass "
          "--tokens)",
          dirs.empty() ? std::string("the model directory") : dirs.front()));
    }
    resolved.tokens = prompt.chat ? tokenizer->EncodeChat(prompt.text)
                                  : tokenizer->Encode(prompt.text, true);
  }
  if (resolved.tokens.empty()) throw InputError("the prompt has no tokens");
  return resolved;
}

void CheckTokenIds(const std::vector<int64_t>& tokens, int64_t vocab_size, const std::string& label,
                   const std::string& where) {
  for (int64_t id : tokens) {
    if (id < 0 || id >= vocab_size) {
      throw InputError(fmt::format("{}: token {} is outside {}'s vocabulary of {}", where, id, label,
                                   vocab_size));
    }
  }
}

}  // namespace parity::session
