// libFuzzer harness: a trace directory (trace.json, NUL, trace.safetensors) read, written and read
// back. Seeds: tests/fuzz/corpus/fuzz_trace.
// The target itself is in fuzz_targets.h (shared with fuzz_regression_test.cpp).
#include "tests/fuzz/fuzz_common.h"

PARITY_FUZZ_HARNESS("fuzz_trace")
