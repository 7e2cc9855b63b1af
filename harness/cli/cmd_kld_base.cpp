// `parity kld-base BASE [OTHER] [--json]`: llama.cpp's KL-divergence base files (written by
// `llama-perplexity --kl-divergence-base`). With BASE alone: its header and perplexity. With OTHER
// (a second base file over the same tokens, e.g. from a quantized model): llama-perplexity
// --kl-divergence's statistics of OTHER's stored log-probs against BASE, so two base files can be
// compared without running either model again.
#include <cmath>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/cli/command.h"
#include "harness/core/error.h"
#include "harness/io/kld_base.h"

namespace parity::cli {
namespace {

struct KldBaseOptions {
  std::string base;
  std::string other;
  bool json = false;
};

// OTHER must describe the same evaluation as BASE.
void CheckSameEvaluation(const io::KldBaseFile& base, const io::KldBaseFile& other,
                         const KldBaseOptions& options) {
  if (base.n_ctx != other.n_ctx || base.n_vocab != other.n_vocab || base.n_chunk != other.n_chunk) {
    throw InputError(fmt::format("{} has n_ctx {}, n_vocab {}, n_chunk {}; {} has {}, {}, {}: not the "
                                 "same evaluation",
                                 options.base, base.n_ctx, base.n_vocab, base.n_chunk, options.other,
                                 other.n_ctx, other.n_vocab, other.n_chunk));
  }
  for (size_t i = 0; i < base.tokens.size(); ++i) {
    if (base.tokens[i] != other.tokens[i]) {
      throw InputError(fmt::format("{} and {} evaluate different tokens (first at index {}: {} vs {})",
                                   options.base, options.other, i, base.tokens[i], other.tokens[i]));
    }
  }
}

int RunKldBase(const KldBaseOptions& options) {
  io::KldBaseFile base = io::KldBaseFile::Read(options.base);
  io::KldBaseSummary summary = io::SummarizeBase(base);
  nlohmann::json out = {{"base", options.base},
                        {"n_ctx", base.n_ctx},
                        {"n_vocab", base.n_vocab},
                        {"n_chunk", base.n_chunk},
                        {"scored_positions", summary.count},
                        {"ppl_base", summary.ppl_base},
                        {"floored_targets", summary.floored_targets}};
  std::string text = fmt::format(
      "{}: n_ctx {}, n_vocab {}, n_chunk {}, {} scored positions\n  PPL(base) {:.6f}  ({} targets at "
      "the 16-nat floor)\n",
      options.base, base.n_ctx, base.n_vocab, base.n_chunk, summary.count, summary.ppl_base,
      summary.floored_targets);
  if (!options.other.empty()) {
    io::KldBaseFile other = io::KldBaseFile::Read(options.other);
    CheckSameEvaluation(base, other, options);
    io::KldStatistics stats = io::CompareWithBase(
        base, [&other](int64_t chunk, int64_t position) {
          return other.LogProbs(chunk, position - other.n_ctx / 2);
        });
    out["other"] = options.other;
    out["statistics"] = {{"count", stats.count},
                         {"ppl", std::exp(stats.mean_nll)},
                         {"ppl_base", std::exp(stats.mean_nll_base)},
                         {"ln_ppl_ratio", stats.mean_nll - stats.mean_nll_base},
                         {"mean_kld", stats.mean_kld},
                         {"max_kld", stats.max_kld},
                         {"same_top", stats.same_top},
                         {"rms_p_diff", stats.rms_p_diff},
                         {"max_abs_p_diff", stats.max_abs_p_diff}};
    text += fmt::format(
        "{} against it (llama-perplexity --kl-divergence statistics, from its stored log-probs):\n"
        "  PPL {:.6f}  ln(PPL/PPL(base)) {:.6f}  mean KL {:.6g}  max KL {:.6g}  same top {:.3f}%  "
        "RMS dp {:.4f}%\n",
        options.other, std::exp(stats.mean_nll), stats.mean_nll - stats.mean_nll_base,
        stats.mean_kld, stats.max_kld, 100 * stats.same_top, 100 * stats.rms_p_diff);
  }
  if (options.json) {
    PrintJson(out.dump(2));
  } else {
    std::cout << text;
  }
  return kExitOk;
}

CommandRegistrar kld_base_command("kld-base", [](CLI::App& app, Action& action) {
  auto options = std::make_shared<KldBaseOptions>();
  CLI::App* command = app.add_subcommand(
      "kld-base",
      "Read llama.cpp KL-divergence base files (llama-perplexity --kl-divergence-base): header and "
      "PPL, and with a second file over the same tokens, --kl-divergence's statistics against it");
  command->add_option("BASE", options->base, "Base file (\"_logits_\" format)")
      ->required()
      ->check(CLI::ExistingFile);
  command->add_option("OTHER", options->other, "A second base file over the same tokens")
      ->check(CLI::ExistingFile);
  command->add_flag("--json", options->json, "Print one JSON object instead of text");
  command->callback([options, &action] { action = [options] { return RunKldBase(*options); }; });
});

}  // namespace
}  // namespace parity::cli
