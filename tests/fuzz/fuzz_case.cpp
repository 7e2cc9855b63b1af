// libFuzzer harness: a case file through compare::ParseCase (models, prompts, pairs, dtypes,
// thresholds, drift gates). Seeds: cases/*.json and tests/fuzz/corpus/case.
#include "harness/compare/case.h"
#include "harness/core/error.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::ordered_json json =
      nlohmann::ordered_json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  try {
    parity::compare::Case c = parity::compare::ParseCase(json, "fuzz/case.json");
    (void)c.pairs.size();
  } catch (const parity::InputError&) {
  }
  return 0;
}
