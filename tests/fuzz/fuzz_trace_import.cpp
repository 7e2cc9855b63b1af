// libFuzzer harness: engine log-prob JSON through io::ImportTrace (vLLM RequestOutput, SGLang
// /generate, OpenAI completions and chat; JSON or JSON lines), the first input byte choosing the
// format, then the writer's validation of the trace it returns. Seeds: tests/fuzz/corpus/trace_import.
#include <string>

#include "harness/core/error.h"
#include "harness/io/trace.h"
#include "harness/io/trace_import.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  parity::io::ImportOptions options;
  options.format = static_cast<parity::io::ImportFormat>(data[0] % 3);
  options.vocab_size = 4096;
  // Token strings: "t<id>" maps to <id>; anything else is unknown.
  options.token_id = [](const std::string& token) -> std::optional<int64_t> {
    if (token.size() < 2 || token.size() > 6 || token[0] != 't') return std::nullopt;
    if (token.find_first_not_of("0123456789", 1) != std::string::npos) return std::nullopt;
    return std::stoll(token.substr(1));
  };
  try {
    parity::io::Trace trace = parity::io::ImportTrace(
        std::string(reinterpret_cast<const char*>(data) + 1, size - 1), "fuzz/import.json", options);
    parity::io::ValidateTrace(trace, "fuzz/import.json");
  } catch (const parity::InputError&) {
  }
  return 0;
}
