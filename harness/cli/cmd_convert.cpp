// `parity convert internlm2-to-llama SRC DST`: what InternLM's tools/convert2llama.py produces.
#include <iostream>
#include <memory>
#include <string>

#include "harness/cli/command.h"
#include "harness/convert/internlm2_to_llama.h"
#include "harness/core/error.h"

namespace parity::cli {
namespace {

struct ConvertOptions {
  std::string src;
  std::string dst;
  bool json = false;
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
});

}  // namespace
}  // namespace parity::cli
