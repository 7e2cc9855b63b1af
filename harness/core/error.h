// Error types shared by every layer. The command line catches them once and maps them to exit codes.
#pragma once

#include <stdexcept>
#include <string>

namespace parity {

// Exit codes of the `parity` command line.
enum ExitCode : int {
  kExitOk = 0,           // success; for diff/drift commands: no difference
  kExitDifferent = 1,    // diff/drift commands: the two sides differ or a gate tripped
  kExitBadInput = 2,     // a file, a config field, a case or an argument is wrong
  kExitInternal = 3,     // a bug in Parity or the environment (e.g. out of memory)
};

// Something the user gave us is wrong. The message names the file, the tensor or the field and what
// was expected, e.g. "tensor 'output.weight': expected [2048, 256], got [256, 2048] (file x.safetensors)".
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace parity
