// libFuzzer harness: a llama.cpp KL-divergence base file read, summarized, compared and written
// back. Seeds: tests/data/kld/base.kld.
// The target itself is in fuzz_targets.h (shared with fuzz_regression_test.cpp).
#include "tests/fuzz/fuzz_common.h"

PARITY_FUZZ_HARNESS("fuzz_kld_base")
