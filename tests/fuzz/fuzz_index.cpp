// libFuzzer harness: model.safetensors.index.json beside a valid config and two shards. Seeds: the
// fixtures' indexes, tests/fuzz/corpus/fuzz_index.
// The target itself is in fuzz_targets.h (shared with fuzz_regression_test.cpp).
#include "tests/fuzz/fuzz_common.h"

PARITY_FUZZ_HARNESS("fuzz_index")
