// libFuzzer harness: engine log-prob JSON (vLLM, SGLang, OpenAI) imported as a trace and validated.
// Seeds: tests/fuzz/corpus/fuzz_trace_import.
// The target itself is in fuzz_targets.h (shared with fuzz_regression_test.cpp).
#include "tests/fuzz/fuzz_common.h"

PARITY_FUZZ_HARNESS("fuzz_trace_import")
