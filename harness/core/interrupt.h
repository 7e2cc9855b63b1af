// SIGINT (Ctrl-C) and SIGTERM as a request to stop at the next step boundary, so that a long run
// keeps what it finished: the handler only sets a flag; the decode loop and the suite call
// ThrowIfInterrupted() between steps, the suite catches Interrupted, writes a summary marked
// interrupted with the runs that finished, and the command line exits 130 (128 + SIGINT). A second
// signal while stopping ends the process at once (the default action). SIGKILL is not catchable:
// atomic writes (atomic_file.h) still guarantee that no file is left torn.
#pragma once

#include <stdexcept>

namespace parity {

inline constexpr int kExitInterrupted = 130;

class Interrupted : public std::runtime_error {
 public:
  Interrupted() : std::runtime_error("interrupted") {}
};

// Installs the handlers for SIGINT and SIGTERM (the command line does, once, at start).
void InstallInterruptHandler();
bool InterruptRequested();
// Throws Interrupted when a stop was requested.
void ThrowIfInterrupted();
// For tests: request a stop, or clear a request.
void SetInterruptRequested(bool requested);

}  // namespace parity
