// libFuzzer harness: a whole safetensors file (length, JSON header, data area). Seeds:
// tests/data/safetensors and the fixtures' shards.
// The target itself is in fuzz_targets.h (shared with fuzz_regression_test.cpp).
#include "tests/fuzz/fuzz_common.h"

PARITY_FUZZ_HARNESS("fuzz_safetensors")
