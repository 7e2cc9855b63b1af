// What every command takes from its user besides the models themselves, parsed in one place so that
// the commands agree: token ids ("1, 2,3"), model labels made from directory names, and prompts
// (text through the first tokenizer.model found, or token ids). Precision names have their one parser
// in forward/numerics.h (ParsePrecision).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace parity::session {

// Parses comma-separated token ids; whitespace around each id is allowed. Throws InputError naming
// `what` (e.g. "--tokens") for an empty list, an empty item, a negative id or anything not an integer.
std::vector<int64_t> ParseTokenIds(const std::string& text, const std::string& what);

// The label of a model directory in outputs: its last path component ("cases/fixtures/m/" -> "m"),
// with '@', '/' and spaces (which would break "label@dtype" and run ids) written as '_'.
std::string ModelLabel(const std::string& dir);
// Labels for two models: ModelLabel of each, or "a" and "b" when they coincide or one is empty.
std::pair<std::string, std::string> DistinctLabels(const std::string& dir_a, const std::string& dir_b);

// Whether `dir` ships a tokenizer (tokenizer.model or tokenizer.json: tokenizer/tokenizer.h).
bool HasTokenizer(const std::string& dir);

// A prompt as the command lines take it: text (optionally wrapped in the chat template) tokenized
// with the tokenizer of the first of the given directories that has one, or token ids ("1,2,3").
struct PromptSpec {
  std::string text;
  bool chat = false;
  std::string token_ids;  // "1,2,3"; when non-empty, used instead of text
};
struct ResolvedPrompt {
  std::vector<int64_t> tokens;
  std::vector<int64_t> eos_ids;  // from the tokenizer's generation_config.json; empty without one
  // Token ids to text for outputs ("<17>" when no tokenizer is available).
  std::function<std::string(int64_t)> token_text;
};
// Throws InputError when the prompt is empty, the ids do not parse, or text needs a tokenizer that
// none of `dirs` has.
ResolvedPrompt ResolvePrompt(const PromptSpec& prompt, const std::vector<std::string>& dirs);

// Throws InputError when an id in `tokens` is outside [0, vocab_size) of the model `label`, naming
// `where` (e.g. "--tokens" or "cases/x.json: prompts[2]").
void CheckTokenIds(const std::vector<int64_t>& tokens, int64_t vocab_size, const std::string& label,
                   const std::string& where);

}  // namespace parity::session
