// `parity tokenize DIR TEXT [--json] [--chat] [--no-special]`: the ids a checkpoint's tokenizer gives
// for a text, with each token's vocabulary spelling and text, so users can build --prompt-tokens and
// see what the model is fed. DIR's tokenizer.model (SentencePiece) or tokenizer.json (byte-level
// BPE) is used, as for every other command.
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/cli/command.h"
#include "harness/core/error.h"
#include "harness/tokenizer/tokenizer.h"

namespace parity::cli {
namespace {

struct TokenizeOptions {
  std::string dir;
  std::string text;
  bool json = false;
  bool chat = false;
  bool no_special = false;
};

// A token's text for a terminal: control characters written as escapes.
std::string Visible(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

int RunTokenize(const TokenizeOptions& options) {
  tokenizer::Tokenizer tokenizer = tokenizer::Tokenizer::Load(options.dir);
  const std::string text = options.chat ? tokenizer.ChatText(options.text) : options.text;
  std::vector<int64_t> ids =
      options.chat ? tokenizer.EncodeChat(options.text) : tokenizer.Encode(text, !options.no_special);
  if (options.json) {
    nlohmann::json pieces = nlohmann::json::array();
    nlohmann::json texts = nlohmann::json::array();
    for (int64_t id : ids) {
      pieces.push_back(tokenizer.Piece(id));
      texts.push_back(tokenizer.TokenText(id));
    }
    nlohmann::json out = {{"tokenizer", tokenizer.kind()},
                          {"text", text},
                          {"ids", ids},
                          {"pieces", pieces},
                          {"token_texts", texts},
                          {"count", ids.size()}};
    // Invalid UTF-8 cannot occur (the tokenizer refuses it and decodes lossily), but replace rather
    // than throw if it ever did.
    PrintJson(out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    return kExitOk;
  }
  std::cout << fmt::format("{}: {} tokens ({})\n", options.dir, ids.size(), tokenizer.kind());
  std::string id_list;
  for (int64_t id : ids) id_list += (id_list.empty() ? "" : ",") + std::to_string(id);
  std::cout << "ids: " << id_list << "\n";
  for (size_t i = 0; i < ids.size(); ++i) {
    std::cout << fmt::format("{:>5} {:>8}  {:<24} \"{}\"\n", i, ids[i], Visible(tokenizer.Piece(ids[i])),
                             Visible(tokenizer.TokenText(ids[i])));
  }
  return kExitOk;
}

CommandRegistrar tokenize_command("tokenize", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<TokenizeOptions>();
  CLI::App* command = app.add_subcommand(
      "tokenize",
      "Print the token ids of a text with each token's vocabulary piece and text, using the "
      "checkpoint's tokenizer.model or tokenizer.json (ids usable as --prompt-tokens)");
  command->add_option("DIR", options->dir, "Checkpoint directory with tokenizer.model or tokenizer.json")
      ->required()
      ->check(CLI::ExistingDirectory);
  command->add_option("TEXT", options->text, "Text to tokenize")->required();
  command->add_flag("--chat", options->chat,
                    "Wrap TEXT as one user turn of the checkpoint's chat template (ChatML for "
                    "InternLM2/Qwen, Llama-3's headers) and print the prompt's ids");
  command->add_flag("--no-special", options->no_special,
                    "Do not add BOS or the template's special tokens around TEXT");
  command->add_flag("--json", options->json, "Print one JSON object instead of text");
  command->callback([options, &action] { action = [options] { return RunTokenize(*options); }; });
});

}  // namespace
}  // namespace parity::cli
