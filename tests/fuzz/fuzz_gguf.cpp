// libFuzzer harness: a GGUF file (header, metadata, tensor infos, inspect summary,
// dequantization). Seeds: tests/data/gguf/tiny.gguf.
// The target itself is in fuzz_targets.h (shared with fuzz_regression_test.cpp).
#include "tests/fuzz/fuzz_common.h"

PARITY_FUZZ_HARNESS("fuzz_gguf")
