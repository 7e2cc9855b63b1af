// libFuzzer harness: config.json through model::ParseConfig (every architecture's fields, defaults,
// rope scaling, Validate). Seeds: tests/data/configs.
#include "harness/core/error.h"
#include "harness/model/config.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json json = parity::fuzz::ParseJson(data, size);
  if (json.is_discarded()) return 0;
  try {
    parity::model::ModelConfig config = parity::model::ParseConfig(json, "fuzz/config.json");
    (void)parity::model::CountParameters(config);
  } catch (const parity::InputError&) {
  }
  return 0;
}
