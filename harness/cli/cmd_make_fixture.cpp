// `parity make-fixture OUT_DIR [--seed N]`: a small deterministic random InternLM2 checkpoint.
#include <iostream>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "harness/cli/command.h"
#include "harness/convert/random_fixture.h"
#include "harness/core/error.h"
#include "harness/session/out_dir.h"

namespace parity::cli {
namespace {

struct MakeFixtureOptions {
  std::string out_dir;
  convert::FixtureOptions fixture;
  bool json = false;
};

CommandRegistrar make_fixture_command("make-fixture", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<MakeFixtureOptions>();
  convert::FixtureOptions& f = options->fixture;
  CLI::App* command = app.add_subcommand(
      "make-fixture",
      "Write a small random InternLM2 checkpoint (GQA, BF16, two shards, SentencePiece tokenizer "
      "trained here). Same options and seed -> same bytes.");
  command->add_option("OUT_DIR", options->out_dir, "Output directory (created if needed)")
      ->required();
  command->add_option("--seed", f.seed, "Seed of the weights")->capture_default_str();
  command->add_option("--layers", f.num_layers, "Decoder layers")->capture_default_str();
  command->add_option("--hidden", f.hidden_size, "Model width D")->capture_default_str();
  command->add_option("--heads", f.num_heads, "Query heads H")->capture_default_str();
  command->add_option("--kv-heads", f.num_kv_heads, "KV heads (GQA)")->capture_default_str();
  command->add_option("--intermediate", f.intermediate_size, "MLP width F")->capture_default_str();
  command->add_option("--vocab", f.vocab_size, "Tokenizer pieces = model vocab")->capture_default_str();
  command->add_option("--max-position", f.max_position_embeddings, "max_position_embeddings")
      ->capture_default_str();
  command->add_option("--dtype", f.dtype, "Stored dtype: bfloat16, float16 or float32")
      ->capture_default_str();
  command->add_flag("--json", options->json, "Print the result as JSON");
  command->callback([options, &action] {
    action = [options] {
      session::PrepareOutputDir(options->out_dir, "OUT_DIR");
      const convert::FixtureResult result = convert::MakeFixture(options->out_dir, options->fixture);
      if (options->json) {
        PrintJson(convert::FixtureResultToJson(result).dump(2));
      } else {
        std::cout << fmt::format(
            "Wrote InternLM2 fixture {} (seed {}): {} tensors, {} parameters, {}; tokenizer "
            "{} pieces (<|im_start|> = {}, <|im_end|> = {})\n",
            result.dir, options->fixture.seed, result.tensors, result.parameters,
            options->fixture.dtype, options->fixture.vocab_size, result.im_start_id,
            result.im_end_id);
      }
      return static_cast<int>(kExitOk);
    };
  });
});

}  // namespace
}  // namespace parity::cli
