// Versions recorded in every output, so a report says what produced it.
#pragma once

#include <string>

namespace parity {

std::string ParityVersion();   // e.g. "0.1.0"
std::string LibtorchVersion(); // e.g. "1.13.1" or "2.11.0"

}  // namespace parity
