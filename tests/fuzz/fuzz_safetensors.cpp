// libFuzzer harness: a whole safetensors file (length, JSON header, data area) through
// io::SafetensorsFile::Open and Get of every tensor it lists. Seeds: tests/data/safetensors.
#include <string>

#include "harness/core/error.h"
#include "harness/io/safetensors.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = parity::fuzz::ScratchDir() + "/input.safetensors";
  parity::fuzz::WriteBytes(path, data, size);
  try {
    parity::io::SafetensorsFile file = parity::io::SafetensorsFile::Open(path);
    for (const parity::io::TensorInfo& info : file.tensors()) {
      at::Tensor tensor = file.Get(info.name);
      (void)tensor.numel();
      (void)file.Bytes(info.name);
    }
  } catch (const parity::InputError&) {
  }
  return 0;
}
