// libFuzzer harness: model.safetensors.index.json beside a valid config.json and two valid shards,
// through io::Checkpoint::Open (shard names, weight_map, tensors in the named shard, duplicates).
// Seeds: tests/fuzz/corpus/index.
#include <filesystem>
#include <string>

#include <ATen/ATen.h>

#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/io/safetensors.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

const std::string& CheckpointDir() {
  static const std::string dir = [] {
    const std::string d = parity::fuzz::ScratchDir() + "/checkpoint";
    std::filesystem::create_directories(d);
    const std::string config = R"({"model_type": "llama", "hidden_size": 8})";
    parity::fuzz::WriteBytes(d + "/config.json", reinterpret_cast<const uint8_t*>(config.data()),
                             config.size());
    parity::io::WriteSafetensors(d + "/model-00001-of-00002.safetensors",
                                 {{"a.weight", at::ones({2, 3})}, {"b.weight", at::zeros({4})}});
    parity::io::WriteSafetensors(d + "/model-00002-of-00002.safetensors",
                                 {{"c.weight", at::ones({1}, at::kBFloat16)}});
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = CheckpointDir();
  parity::fuzz::WriteBytes(dir + "/model.safetensors.index.json", data, size);
  try {
    parity::io::Checkpoint checkpoint = parity::io::Checkpoint::Open(dir);
    for (const std::string& name : checkpoint.names()) {
      (void)checkpoint.ShardOf(name);
      (void)checkpoint.Get(name).numel();
    }
    (void)checkpoint.parameter_count();
  } catch (const parity::InputError&) {
  }
  return 0;
}
