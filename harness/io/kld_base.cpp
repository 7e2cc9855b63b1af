#include "harness/io/kld_base.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include <fmt/format.h>

#include "harness/core/atomic_file.h"
#include "harness/core/error.h"

namespace parity::io {
namespace {

constexpr char kMagic[8] = {'_', 'l', 'o', 'g', 'i', 't', 's', '_'};

// llama.cpp's nearest_int: adding 1.5 * 2^23 rounds to the nearest integer (ties to even) in the
// FPU's default mode, and the integer is read back from the mantissa. Valid for |x| < 2^22.
int NearestInt(float value) {
  float shifted = value + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof(bits));
  return (bits & 0x007fffff) - 0x00400000;
}

}  // namespace

double QuantizeLogProbs(const float* logits, int32_t n_vocab, int32_t target, uint16_t* record) {
  float max_logit = logits[0];
  float min_logit = logits[0];
  for (int32_t i = 1; i < n_vocab; ++i) {
    max_logit = std::max(max_logit, logits[i]);
    min_logit = std::min(min_logit, logits[i]);
  }
  min_logit = std::max(min_logit, max_logit - 16);
  double sum_exp = 0.0;
  for (int32_t i = 0; i < n_vocab; ++i) sum_exp += std::exp(logits[i] - max_logit);
  const float log_sum_exp = static_cast<float>(std::log(sum_exp));
  const float min_log_prob = min_logit - max_logit - log_sum_exp;
  const float scale = (max_logit - min_logit) / 65535.f;
  std::memcpy(record, &scale, sizeof(float));
  std::memcpy(record + 2, &min_log_prob, sizeof(float));
  uint16_t* q = record + 4;
  if (scale != 0.f) {
    const float inv_scale = 1 / scale;
    for (int32_t i = 0; i < n_vocab; ++i) {
      q[i] = logits[i] > min_logit ? static_cast<uint16_t>(NearestInt(inv_scale * (logits[i] - min_logit)))
                                   : 0;
    }
  } else {
    std::fill(q, q + n_vocab, 0);
  }
  return max_logit + log_sum_exp - logits[target];
}

const uint16_t* KldBaseFile::record(int64_t chunk, int64_t index) const {
  return records.data() + (chunk * scored_per_chunk() + index) * record_size();
}

int32_t KldBaseFile::target(int64_t chunk, int64_t index) const {
  return tokens[static_cast<size_t>(chunk * n_ctx + position(index) + 1)];
}

float KldBaseFile::scale(int64_t chunk, int64_t index) const {
  float value;
  std::memcpy(&value, record(chunk, index), sizeof(float));
  return value;
}

float KldBaseFile::min_log_prob(int64_t chunk, int64_t index) const {
  float value;
  std::memcpy(&value, record(chunk, index) + 2, sizeof(float));
  return value;
}

std::vector<float> KldBaseFile::LogProbs(int64_t chunk, int64_t index) const {
  const float s = scale(chunk, index), m = min_log_prob(chunk, index);
  const uint16_t* q = record(chunk, index) + 4;
  std::vector<float> out(static_cast<size_t>(n_vocab));
  for (int32_t i = 0; i < n_vocab; ++i) out[i] = s * q[i] + m;
  return out;
}

KldBaseFile KldBaseFile::Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw InputError(fmt::format("{}: cannot open the KL-divergence base file", path));
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  char magic[8] = {};
  int32_t header[3] = {};
  if (size < 20) {
    throw InputError(fmt::format("{}: {} bytes, too short for a KL-divergence base file header "
                                 "(\"_logits_\", n_ctx, n_vocab, n_chunk: 20 bytes)",
                                 path, size));
  }
  if (!in.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) {
    throw InputError(fmt::format(
        "{}: not a llama.cpp KL-divergence base file (it must start with \"_logits_\")", path));
  }
  in.read(reinterpret_cast<char*>(header), sizeof(header));
  KldBaseFile file;
  file.n_ctx = header[0];
  file.n_vocab = header[1];
  file.n_chunk = header[2];
  if (file.n_ctx < 3 || file.n_vocab < 1 || file.n_chunk < 1) {
    throw InputError(fmt::format("{}: n_ctx {}, n_vocab {}, n_chunk {}: expected n_ctx >= 3 and "
                                 "positive n_vocab and n_chunk",
                                 path, file.n_ctx, file.n_vocab, file.n_chunk));
  }
  const uint64_t n_tokens = uint64_t(file.n_chunk) * uint64_t(file.n_ctx);  // < 2^62
  const uint64_t n_records = uint64_t(file.n_chunk) * uint64_t(file.scored_per_chunk());
  // Up to 2^94 bytes: in 128 bits, so that huge sizes cannot wrap around to the file's length
  // (n_ctx 32, n_vocab 1145324604, n_chunk 2^30 wrap to exactly 20 in 64 bits).
  const unsigned __int128 expected = 20 + static_cast<unsigned __int128>(4) * n_tokens +
                                     static_cast<unsigned __int128>(2) * n_records *
                                         static_cast<uint64_t>(file.record_size());
  if (expected != size) {
    const double expected_bytes = static_cast<double>(expected);
    throw InputError(fmt::format(
        "{}: {} bytes, but n_ctx {}, n_vocab {}, n_chunk {} mean {:.0f} bytes ({} tokens, {} records "
        "of {} uint16)",
        path, size, file.n_ctx, file.n_vocab, file.n_chunk, expected_bytes, n_tokens, n_records,
        file.record_size()));
  }
  file.tokens.resize(n_tokens);
  file.records.resize(n_records * uint64_t(file.record_size()));
  in.read(reinterpret_cast<char*>(file.tokens.data()), static_cast<std::streamsize>(4 * n_tokens));
  in.read(reinterpret_cast<char*>(file.records.data()),
          static_cast<std::streamsize>(2 * file.records.size()));
  if (!in) throw InputError(fmt::format("{}: read failed", path));
  for (uint64_t i = 0; i < n_tokens; ++i) {
    if (file.tokens[i] < 0 || file.tokens[i] >= file.n_vocab) {
      throw InputError(fmt::format("{}: token {} at index {} is outside the vocabulary [0, {})", path,
                                   file.tokens[i], i, file.n_vocab));
    }
  }
  return file;
}

void KldBaseFile::Write(const std::string& path) const {
  AtomicFile out(path);
  out.Write(kMagic, 8);
  out.Write(&n_ctx, 4);
  out.Write(&n_vocab, 4);
  out.Write(&n_chunk, 4);
  out.Write(tokens.data(), 4 * tokens.size());
  out.Write(records.data(), 2 * records.size());
  out.Commit();
}

KldBaseFile KldBaseFile::FromLogits(
    int32_t n_ctx, int32_t n_vocab, std::vector<int32_t> tokens,
    const std::function<std::vector<float>(int64_t, int64_t)>& logits) {
  KldBaseFile file;
  file.n_ctx = n_ctx;
  file.n_vocab = n_vocab;
  if (n_ctx < 3 || n_vocab < 1 || tokens.size() % size_t(n_ctx) != 0 || tokens.empty()) {
    throw InputError(fmt::format("KL-divergence base: {} tokens do not make whole chunks of n_ctx {} "
                                 "(n_ctx >= 3)",
                                 tokens.size(), n_ctx));
  }
  file.n_chunk = static_cast<int32_t>(tokens.size() / size_t(n_ctx));
  file.tokens = std::move(tokens);
  file.records.assign(size_t(file.n_chunk * file.scored_per_chunk() * file.record_size()), 0);
  for (int64_t chunk = 0; chunk < file.n_chunk; ++chunk) {
    for (int64_t index = 0; index < file.scored_per_chunk(); ++index) {
      std::vector<float> row = logits(chunk, file.position(index));
      if (row.size() != size_t(n_vocab)) {
        throw InputError(fmt::format("KL-divergence base: logits of chunk {} position {} have {} "
                                     "values, expected n_vocab {}",
                                     chunk, file.position(index), row.size(), n_vocab));
      }
      QuantizeLogProbs(row.data(), n_vocab, file.target(chunk, index),
                       const_cast<uint16_t*>(file.record(chunk, index)));
    }
  }
  return file;
}

KldBaseSummary SummarizeBase(const KldBaseFile& base) {
  KldBaseSummary summary;
  double sum = 0;
  for (int64_t chunk = 0; chunk < base.n_chunk; ++chunk) {
    for (int64_t index = 0; index < base.scored_per_chunk(); ++index) {
      const uint16_t q = base.records[size_t((chunk * base.scored_per_chunk() + index) *
                                               base.record_size() + 4 + base.target(chunk, index))];
      const float nll_base = -(base.scale(chunk, index) * q + base.min_log_prob(chunk, index));
      sum += nll_base;
      summary.floored_targets += q == 0 && base.scale(chunk, index) != 0.f;
      ++summary.count;
    }
  }
  if (summary.count > 0) summary.mean_nll_base = sum / summary.count;
  summary.ppl_base = std::exp(summary.mean_nll_base);
  return summary;
}

KldStatistics CompareWithBase(const KldBaseFile& base,
                              const std::function<std::vector<float>(int64_t, int64_t)>& logits) {
  KldStatistics stats;
  double sum_nll = 0, sum_nll_base = 0, sum_kld = 0, sum_p_diff2 = 0;
  int64_t same_top = 0;
  for (int64_t chunk = 0; chunk < base.n_chunk; ++chunk) {
    for (int64_t index = 0; index < base.scored_per_chunk(); ++index) {
      std::vector<float> row = logits(chunk, base.position(index));
      if (row.size() != size_t(base.n_vocab)) {
        throw InputError(fmt::format("logits of chunk {} position {} have {} values, the base file's "
                                     "n_vocab is {}",
                                     chunk, base.position(index), row.size(), base.n_vocab));
      }
      const int32_t target = base.target(chunk, index);
      // Mirrors llama-perplexity's per-position computation, FP32 with FP64 sums.
      float max_logit = row[0];
      int32_t imax = 0;
      for (int32_t i = 1; i < base.n_vocab; ++i) {
        if (row[i] > max_logit) {
          max_logit = row[i];
          imax = i;
        }
      }
      double sum_exp = 0.0;
      for (int32_t i = 0; i < base.n_vocab; ++i) sum_exp += std::exp(row[i] - max_logit);
      const float log_sum_exp = static_cast<float>(std::log(sum_exp));
      const float nll = max_logit + log_sum_exp - row[target];
      const std::vector<float> base_log_probs = base.LogProbs(chunk, index);
      const float nll_base = -base_log_probs[target];
      max_logit += log_sum_exp;
      double kld = 0;
      int32_t imax_base = -1;
      float base_max = 0;
      for (int32_t i = 0; i < base.n_vocab; ++i) {
        const float p_log_base = base_log_probs[i];
        if (i == 0 || p_log_base > base_max) {
          base_max = p_log_base;
          imax_base = i;
        }
        if (p_log_base > -16.f) {
          const float p_base = std::exp(p_log_base);
          kld += p_base * (p_log_base - row[i] + max_logit);
        }
      }
      const float p_diff = std::exp(-nll) - std::exp(-nll_base);
      sum_nll += nll;
      sum_nll_base += nll_base;
      sum_kld += kld;
      stats.max_kld = std::max(stats.max_kld, kld);
      same_top += imax == imax_base;
      sum_p_diff2 += double(p_diff) * p_diff;
      stats.max_abs_p_diff = std::max(stats.max_abs_p_diff, double(std::fabs(p_diff)));
      ++stats.count;
    }
  }
  if (stats.count > 0) {
    stats.mean_nll = sum_nll / stats.count;
    stats.mean_nll_base = sum_nll_base / stats.count;
    stats.mean_kld = sum_kld / stats.count;
    stats.same_top = double(same_top) / stats.count;
    stats.rms_p_diff = std::sqrt(sum_p_diff2 / stats.count);
  }
  return stats;
}

}  // namespace parity::io
