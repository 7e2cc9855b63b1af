// `parity import-trace --from vllm|sglang|openai FILE OUT [--tokenizer DIR] [--prompt TEXT |
// --prompt-tokens IDS]...`: turns the top-k log-prob JSON a serving engine returned into a top-k
// trace directory (reports/TRACES.md, io/trace_import.h), which can then stand as a side of
// `compare` / `run` against Parity's forward of the same checkpoint.
//
// --tokenizer DIR gives the vocabulary size (DIR/config.json's vocab_size, else the tokenizer's),
// tokenizes --prompt texts, and maps the OpenAI APIs' token strings back to ids (a vocabulary
// spelling such as "Ġthe", else a decoded text such as " the"; a string that is several tokens'
// text, or none, is refused: ask vLLM for return_tokens_as_token_ids).
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "harness/cli/command.h"
#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/io/trace.h"
#include "harness/io/trace_import.h"
#include "harness/session/inputs.h"
#include "harness/tokenizer/tokenizer.h"

namespace parity::cli {
namespace {

struct ImportTraceOptions {
  std::string from;
  std::string file;
  std::string out;
  std::string tokenizer;
  std::optional<int64_t> vocab_size;
  std::vector<std::string> prompts;
  std::vector<std::string> prompt_tokens;
  bool chat = false;
  int64_t top_k = 0;
  std::string engine_version, model, dtype, device;
};

// Token string -> id over a whole vocabulary: spellings first, then decoded texts; a text shared by
// several ids maps to none (ambiguous).
class TokenLookup {
 public:
  explicit TokenLookup(const tokenizer::Tokenizer& tok) {
    for (int64_t id = 0; id < tok.vocab_size(); ++id) {
      Add(pieces_, tok.Piece(id), id);
      Add(texts_, tok.TokenText(id), id);
    }
  }
  std::optional<int64_t> operator()(const std::string& token) const {
    for (const auto* table : {&pieces_, &texts_}) {
      auto it = table->find(token);
      if (it != table->end()) return it->second < 0 ? std::nullopt : std::optional<int64_t>(it->second);
    }
    return std::nullopt;
  }

 private:
  static void Add(std::map<std::string, int64_t>& table, const std::string& key, int64_t id) {
    auto [it, inserted] = table.emplace(key, id);
    if (!inserted && it->second != id) it->second = -1;  // ambiguous
  }
  std::map<std::string, int64_t> pieces_, texts_;
};

int RunImportTrace(const ImportTraceOptions& o) {
  io::ImportOptions options;
  options.format = io::ParseImportFormat(o.from);
  std::optional<tokenizer::Tokenizer> tok;
  std::shared_ptr<TokenLookup> lookup;
  if (!o.tokenizer.empty()) {
    tok = tokenizer::Tokenizer::Load(o.tokenizer);
    lookup = std::make_shared<TokenLookup>(*tok);
    options.token_id = [lookup](const std::string& token) { return (*lookup)(token); };
    const std::string config = o.tokenizer + "/config.json";
    options.vocab_size = tok->vocab_size();
    if (std::filesystem::exists(config)) {
      nlohmann::json j = io::ReadJsonFile(config);
      if (j.contains("vocab_size") && j["vocab_size"].is_number_integer()) options.vocab_size = j["vocab_size"];
    }
  }
  if (o.vocab_size) options.vocab_size = *o.vocab_size;
  if (options.vocab_size <= 0) {
    throw InputError("import-trace: the vocabulary size is unknown: give --tokenizer DIR or --vocab-size N");
  }
  for (const std::string& text : o.prompts) {
    if (!tok) throw InputError("import-trace: --prompt needs --tokenizer DIR to tokenize it");
    options.prompt_tokens.push_back(o.chat ? tok->EncodeChat(text) : tok->Encode(text, true));
    options.prompt_texts.push_back(text);
  }
  for (const std::string& ids : o.prompt_tokens) {
    options.prompt_tokens.push_back(session::ParseTokenIds(ids, "--prompt-tokens"));
    options.prompt_texts.push_back(std::nullopt);
  }
  options.top_k = o.top_k;
  options.producer.engine_version = o.engine_version;
  options.producer.model = o.model;
  options.producer.dtype = o.dtype;
  options.producer.device = o.device;

  std::ifstream in(o.file, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot read the file", o.file));
  std::stringstream buffer;
  buffer << in.rdbuf();
  io::Trace trace = io::ImportTrace(buffer.str(), o.file, options);
  io::WriteTrace(o.out, trace);
  int64_t steps = 0;
  for (const io::TracePrompt& p : trace.prompts) steps += static_cast<int64_t>(p.tokens.size());
  spdlog::info("wrote {}: {} prompt(s), {} steps, top-{} log-probs, vocabulary {}", o.out,
               trace.prompts.size(), steps, trace.top_k, trace.vocab_size);
  return kExitOk;
}

CommandRegistrar import_trace_command("import-trace", [](CLI::App& app, Action& action) {
  auto o = std::make_shared<ImportTraceOptions>();
  CLI::App* command = app.add_subcommand(
      "import-trace",
      "Turn a serving engine's top-k log-prob JSON (vLLM RequestOutput, SGLang /generate, OpenAI "
      "completions or chat) into a top-k trace directory (reports/TRACES.md) that compare/run accept "
      "as a side");
  command->add_option("--from", o->from, "vllm, sglang or openai")->required();
  command->add_option("FILE", o->file, "The JSON (one response, an array, or JSON lines)")
      ->required()
      ->check(CLI::ExistingFile);
  command->add_option("OUT", o->out, "Trace directory to write")->required();
  command->add_option("--tokenizer", o->tokenizer,
                      "Checkpoint directory whose tokenizer (and config.json vocab_size) to use");
  command->add_option("--vocab-size", o->vocab_size, "The model's vocabulary size (default: --tokenizer's)");
  command->add_option("--prompt", o->prompts, "Prompt text of each response, in order (repeatable; "
                                               "needs --tokenizer)");
  command->add_option("--prompt-tokens", o->prompt_tokens,
                      "Prompt token ids of each response, comma-separated (repeatable)");
  command->add_flag("--chat", o->chat, "--prompt texts were wrapped in the chat template");
  command->add_option("--top-k", o->top_k, "K to keep (default: the fewest listed at any step)");
  command->add_option("--engine-version", o->engine_version, "Recorded as producer.engine_version");
  command->add_option("--model", o->model, "Recorded as producer.model");
  command->add_option("--dtype", o->dtype, "The engine's precision, recorded as producer.dtype "
                                           "(e.g. bf16; the verdict's rounding budgets use it)");
  command->add_option("--device", o->device, "Recorded as producer.device");
  command->callback([o, &action] { action = [o] { return RunImportTrace(*o); }; });
});

}  // namespace
}  // namespace parity::cli
