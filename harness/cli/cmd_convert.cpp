// `parity convert internlm2-to-llama SRC DST`: what InternLM's tools/convert2llama.py produces.
// `parity convert hf-to-gguf SRC DST.gguf --type T`: what llama.cpp's convert_hf_to_gguf.py writes.
#include <iostream>
#include <memory>
#include <string>

#include "harness/cli/command.h"
#include "harness/convert/hf_to_gguf.h"
#include "harness/convert/internlm2_to_llama.h"
#include "harness/core/error.h"

namespace parity::cli {
namespace {

struct ConvertOptions {
  std::string src;
  std::string dst;
  bool json = false;
  std::string type = "f32";
};

CommandRegistrar convert_command("convert", [](CLI::App& app, Action& action) {
  CLI::App* convert = app.add_subcommand("convert", "Convert a checkpoint to another layout");
  convert->require_subcommand(1);
  auto options = std::make_shared<ConvertOptions>();
  CLI::App* to_llama = convert->add_subcommand(
      "internlm2-to-llama",
      "InternLM2 -> Llama as InternLM's tools/convert2llama.py does it: wqkv split per KV group, "
      "tensors renamed, same shards and dtypes, index/config/tokenizer rewritten. Refuses bias: true.");
  to_llama->add_option("SRC", options->src, "InternLM2 checkpoint directory")->required();
  to_llama->add_option("DST", options->dst, "Output directory (created if needed)")->required();
  to_llama->add_flag("--json", options->json, "Print the result as JSON");
  to_llama->callback([options, &action] {
    action = [options] {
      const convert::ConversionResult result =
          convert::ConvertInternLM2ToLlama(options->src, options->dst);
      if (options->json) {
        PrintJson(convert::ConversionResultToJson(result).dump(2));
      } else {
        std::cout << convert::FormatConversionResult(result);
      }
      return static_cast<int>(kExitOk);
    };
  });
  CLI::App* to_gguf = convert->add_subcommand(
      "hf-to-gguf",
      "HF checkpoint (llama, qwen2, qwen3) -> one GGUF file as llama.cpp's convert_hf_to_gguf.py "
      "writes it: llama.cpp tensor names, Q/K rows permuted for llama-family rope, hyper-parameters "
      "and vocabulary metadata; 2-D tensors as --type (Q8_0 bit-identical to ggml's reference "
      "quantizer), 1-D tensors F32. Written atomically.");
  to_gguf->add_option("SRC", options->src, "HF checkpoint directory")->required();
  to_gguf->add_option("DST", options->dst, "Output .gguf file")->required();
  to_gguf->add_option("--type", options->type, "f32 (default), f16, bf16 or q8_0");
  to_gguf->add_flag("--json", options->json, "Print the result as JSON");
  to_gguf->callback([options, &action] {
    action = [options] {
      const convert::HfToGgufResult result =
          convert::ConvertHfToGguf(options->src, options->dst, options->type);
      if (options->json) {
        PrintJson(convert::HfToGgufResultToJson(result).dump(2));
      } else {
        std::cout << convert::FormatHfToGgufResult(result);
      }
      return static_cast<int>(kExitOk);
    };
  });
});

}  // namespace
}  // namespace parity::cli
