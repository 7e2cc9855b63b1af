// llama.cpp's KL-divergence base file, as `llama-perplexity --kl-divergence-base FILE` writes it and
// `llama-perplexity --kl-divergence` reads it (tools/perplexity/perplexity.cpp in ggml-org/llama.cpp),
// so that llama.cpp users can analyse their base files with Parity and feed Parity's FP32/FP64 logits
// to llama-perplexity. Layout, all little-endian:
//   char[8] "_logits_"; int32 n_ctx; int32 n_vocab; int32 n_chunk; int32 tokens[n_chunk * n_ctx];
//   then per chunk, for the scored positions j = n_ctx/2 .. n_ctx-2 (each predicts token j+1), one
//   record of nv = 2*((n_vocab+1)/2) + 4 uint16 values:
//     float scale, float min_log_prob (the first 4 uint16), n_vocab quantized log-probs q, and one
//     zero pad when n_vocab is odd; log p_i = scale * q_i + min_log_prob.
// Quantization (per position, from the FP32 logits): max and min logit, the min raised to max - 16
// (a 16-nat floor); scale = (max - min) / 65535; q_i = round-half-even((logit_i - min) / scale) for
// logit_i > min, else 0; min_log_prob = min - max - log(sum exp(logit - max)).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace parity::io {

class KldBaseFile {
 public:
  int32_t n_ctx = 0;
  int32_t n_vocab = 0;
  int32_t n_chunk = 0;
  std::vector<int32_t> tokens;    // [n_chunk * n_ctx], the evaluated text
  std::vector<uint16_t> records;  // [n_chunk * scored_per_chunk() * record_size()]

  // Positions scored per chunk: n_ctx - 1 - n_ctx/2 (the second half, minus the last position).
  int64_t scored_per_chunk() const { return n_ctx - 1 - n_ctx / 2; }
  // uint16 values per record: 2*((n_vocab+1)/2) + 4.
  int64_t record_size() const { return 2 * ((int64_t{n_vocab} + 1) / 2) + 4; }
  // Position (within its chunk) of the logits behind record `index` of a chunk: n_ctx/2 + index.
  int64_t position(int64_t index) const { return n_ctx / 2 + index; }
  // The token that record (chunk, index) scores: tokens[chunk*n_ctx + n_ctx/2 + index + 1].
  int32_t target(int64_t chunk, int64_t index) const;
  float scale(int64_t chunk, int64_t index) const;
  float min_log_prob(int64_t chunk, int64_t index) const;
  // The record's log-probs, dequantized as llama.cpp does: scale * q + min_log_prob (FP32).
  std::vector<float> LogProbs(int64_t chunk, int64_t index) const;

  // Reads and validates FILE: magic, positive sizes, the exact file length they imply. Throws
  // InputError naming the file and what is wrong.
  static KldBaseFile Read(const std::string& path);
  // Writes atomically, byte for byte as llama-perplexity does.
  void Write(const std::string& path) const;

  // Builds a base file from FP32 logits: `logits(chunk, position)` returns the n_vocab logits the
  // model gives at `position` (n_ctx/2 .. n_ctx-2) of chunk `chunk` (whose tokens are
  // tokens[chunk*n_ctx ...]). `tokens` must hold n_chunk * n_ctx ids.
  static KldBaseFile FromLogits(int32_t n_ctx, int32_t n_vocab, std::vector<int32_t> tokens,
                                const std::function<std::vector<float>(int64_t, int64_t)>& logits);

 private:
  const uint16_t* record(int64_t chunk, int64_t index) const;
};

// Quantizes one position's logits into a record (record_size() uint16 values) as llama.cpp does;
// returns the negative log-likelihood of `target` computed on the way (llama.cpp's return value).
double QuantizeLogProbs(const float* logits, int32_t n_vocab, int32_t target, uint16_t* record);

// llama-perplexity --kl-divergence's statistics of a model's logits against a base file, computed as
// it computes them (FP32 per position, sums in FP64).
struct KldStatistics {
  int64_t count = 0;          // scored positions
  double mean_nll = 0;        // ln PPL(Q): mean -log q(target)
  double mean_nll_base = 0;   // ln PPL(base) from the quantized base log-probs
  double mean_kld = 0;        // mean KL(base || Q) over positions (terms with log p_base > -16)
  double max_kld = 0;
  double same_top = 0;        // fraction of positions where both argmaxes agree
  double rms_p_diff = 0;      // RMS of q(target) - p_base(target)
  double max_abs_p_diff = 0;
};

// What a base file says on its own: its perplexity over the scored positions, from the stored
// (quantized, floored) log-probs of the targets.
struct KldBaseSummary {
  int64_t count = 0;           // scored positions
  double mean_nll_base = 0;    // ln PPL(base)
  double ppl_base = 0;         // exp(mean_nll_base)
  int64_t floored_targets = 0; // targets stored at the 16-nat floor (their true NLL is larger)
};
KldBaseSummary SummarizeBase(const KldBaseFile& base);

// `logits(chunk, position)` as in FromLogits, for the model being compared with the base.
KldStatistics CompareWithBase(const KldBaseFile& base,
                              const std::function<std::vector<float>(int64_t, int64_t)>& logits);

}  // namespace parity::io
