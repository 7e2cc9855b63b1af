#include "harness/core/interrupt.h"

#include <csignal>

namespace parity {
namespace {

volatile std::sig_atomic_t g_requested = 0;

extern "C" void OnStopSignal(int signal) {
  if (g_requested) {
    // Second signal: stop now, by the signal's default action.
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  g_requested = 1;
}

}  // namespace

void InstallInterruptHandler() {
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool InterruptRequested() { return g_requested != 0; }

void ThrowIfInterrupted() {
  if (g_requested) throw Interrupted();
}

void SetInterruptRequested(bool requested) { g_requested = requested ? 1 : 0; }

}  // namespace parity
