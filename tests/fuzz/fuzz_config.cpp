// libFuzzer harness: config.json through model::ParseConfig. Seeds: tests/data/configs, the
// fixtures' configs.
// The target itself is in fuzz_targets.h (shared with fuzz_regression_test.cpp).
#include "tests/fuzz/fuzz_common.h"

PARITY_FUZZ_HARNESS("fuzz_config")
