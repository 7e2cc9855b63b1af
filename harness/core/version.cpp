#include "harness/core/version.h"

#include <torch/version.h>

namespace parity {

std::string ParityVersion() { return PARITY_VERSION; }
std::string LibtorchVersion() { return TORCH_VERSION; }

}  // namespace parity
