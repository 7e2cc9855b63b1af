// libFuzzer harness: a case file through compare::ParseCase. Seeds: cases/*.json,
// tests/fuzz/corpus/fuzz_case.
// The target itself is in fuzz_targets.h (shared with fuzz_regression_test.cpp).
#include "tests/fuzz/fuzz_common.h"

PARITY_FUZZ_HARNESS("fuzz_case")
