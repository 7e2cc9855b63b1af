// libFuzzer harness: tokenizer.json loaded, a short text encoded and decoded. Seeds:
// tests/data/tokenizers/*/tokenizer.json.
// The target itself is in fuzz_targets.h (shared with fuzz_regression_test.cpp).
#include "tests/fuzz/fuzz_common.h"

PARITY_FUZZ_HARNESS("fuzz_tokenizer_json")
