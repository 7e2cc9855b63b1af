#include "harness/compare/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "harness/core/error.h"

namespace parity::compare {
namespace {

// log_softmax in FP64: x_i - (max + log sum_j exp(x_j - max)). Entries of -inf stay -inf.
std::vector<double> LogSoftmax(const std::vector<double>& x) {
  double max_value = *std::max_element(x.begin(), x.end());
  double sum = 0;
  for (double v : x) sum += std::exp(v - max_value);
  double log_normalizer = max_value + std::log(sum);
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] - log_normalizer;
  return out;
}

// KL(p||q) from log-probabilities; terms with p_i = 0 contribute 0 (the limit of p log p).
double KlFromLogs(const std::vector<double>& log_p, const std::vector<double>& log_q) {
  double kl = 0;
  for (size_t i = 0; i < log_p.size(); ++i) {
    double p = std::exp(log_p[i]);
    if (p == 0) continue;
    kl += p * (log_p[i] - log_q[i]);
  }
  return std::max(kl, 0.0);  // a sum of tiny negatives from rounding is still "no divergence"
}

double LogAddExp(double x, double y) {
  if (x == -std::numeric_limits<double>::infinity()) return y;
  if (y == -std::numeric_limits<double>::infinity()) return x;
  double m = std::max(x, y);
  return m + std::log1p(std::exp(-std::fabs(x - y)));
}

// Indices of the k largest values, ordered by value (descending) then index (ascending).
std::vector<int64_t> TopK(const std::vector<double>& x, int64_t k) {
  std::vector<int64_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  auto before = [&](int64_t i, int64_t j) { return x[i] > x[j] || (x[i] == x[j] && i < j); };
  std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
  order.resize(k);
  return order;
}

// Number of entries ranked above `token`: larger, or equal with a lower index.
int64_t RankOf(const std::vector<double>& x, int64_t token) {
  int64_t rank = 0;
  double value = x[token];
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] > value || (x[i] == value && static_cast<int64_t>(i) < token)) ++rank;
  }
  return rank;
}

// Top-1 minus top-2 value; 0 for a single-element vector.
double Margin(const std::vector<double>& x, int64_t top1) {
  double second = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < x.size(); ++i) {
    if (static_cast<int64_t>(i) != top1) second = std::max(second, x[i]);
  }
  return x.size() < 2 ? 0.0 : x[top1] - second;
}

}  // namespace

int64_t Argmax(const std::vector<double>& values) {
  if (values.empty()) throw std::invalid_argument("Argmax of an empty vector");
  int64_t best = 0;
  for (size_t i = 1; i < values.size(); ++i) {
    if (values[i] > values[best]) best = static_cast<int64_t>(i);  // strict: first max wins
  }
  return best;
}

std::vector<double> ToDoubleVector(const at::Tensor& logits) {
  at::Tensor flat = logits.detach().to(at::kCPU).to(at::kDouble).contiguous().view({-1});
  const double* data = flat.data_ptr<double>();
  return std::vector<double>(data, data + flat.numel());
}

StepRecord CompareLogits(const std::vector<double>& a, const std::vector<double>& b,
                         int64_t top_k) {
  if (a.empty() || a.size() != b.size()) {
    throw InputError(fmt::format("cannot compare logits of sizes {} and {}", a.size(), b.size()));
  }
  const size_t vocab = a.size();
  StepRecord r;
  r.token_a = Argmax(a);
  r.token_b = Argmax(b);
  for (size_t i = 0; i < vocab; ++i) {
    r.nonfinite_a += std::isfinite(a[i]) ? 0 : 1;
    r.nonfinite_b += std::isfinite(b[i]) ? 0 : 1;
  }
  // NaN/inf never compare equal: a step with a non-finite logit on either side is a disagreement.
  r.top1_agree = r.token_a == r.token_b && r.nonfinite_a == 0 && r.nonfinite_b == 0;

  double max_abs = 0, sum_sq = 0, dot = 0, norm_a = 0, norm_b = 0, sum_a = 0;
  for (size_t i = 0; i < vocab; ++i) {
    double d = b[i] - a[i];
    max_abs = MaxPropagatingNan(max_abs, std::fabs(d));
    sum_sq += d * d;
    dot += a[i] * b[i];
    norm_a += a[i] * a[i];
    norm_b += b[i] * b[i];
    sum_a += a[i];
  }
  r.max_abs_diff = max_abs;
  double mse = sum_sq / vocab;
  r.rms_diff = std::sqrt(mse);
  double mean_a = sum_a / vocab;
  double var_a = 0;
  for (double v : a) var_a += (v - mean_a) * (v - mean_a);
  var_a /= vocab;
  r.nmse = var_a > 0 ? std::optional<double>(mse / var_a) : std::nullopt;
  r.cosine = (norm_a > 0 && norm_b > 0)
                 ? std::optional<double>(dot / (std::sqrt(norm_a) * std::sqrt(norm_b)))
                 : std::nullopt;

  std::vector<double> log_p = LogSoftmax(a);
  std::vector<double> log_q = LogSoftmax(b);
  r.kl = KlFromLogs(log_p, log_q);
  r.kl_reverse = KlFromLogs(log_q, log_p);
  std::vector<double> log_m(vocab);
  for (size_t i = 0; i < vocab; ++i) log_m[i] = LogAddExp(log_p[i], log_q[i]) - std::log(2.0);
  r.js = 0.5 * KlFromLogs(log_p, log_m) + 0.5 * KlFromLogs(log_q, log_m);

  int64_t k = std::clamp<int64_t>(top_k, 1, static_cast<int64_t>(vocab));
  std::vector<int64_t> top_a = TopK(a, k), top_b = TopK(b, k);
  std::sort(top_a.begin(), top_a.end());
  std::sort(top_b.begin(), top_b.end());
  std::vector<int64_t> common;
  std::set_intersection(top_a.begin(), top_a.end(), top_b.begin(), top_b.end(),
                        std::back_inserter(common));
  r.topk_overlap = static_cast<double>(common.size()) / k;

  r.rank_b_in_a = RankOf(a, r.token_b);
  r.rank_a_in_b = RankOf(b, r.token_a);
  r.margin_a = Margin(a, r.token_a);
  r.margin_b = Margin(b, r.token_b);
  r.noise = MaxPropagatingNan(std::fabs(a[r.token_a] - b[r.token_a]),
                              std::fabs(a[r.token_b] - b[r.token_b]));
  if (r.nonfinite_a > 0 || r.nonfinite_b > 0) {
    // Non-finite logits: no figure of this step is meaningful; NaN keeps it from passing a gate.
    const double nan = std::numeric_limits<double>::quiet_NaN();
    r.kl = r.kl_reverse = r.js = r.max_abs_diff = r.rms_diff = r.noise = nan;
    r.nmse = nan;
  }
  return r;
}

StepRecord CompareLogits(const at::Tensor& a, const at::Tensor& b, int64_t top_k) {
  return CompareLogits(ToDoubleVector(a), ToDoubleVector(b), top_k);
}

int SignificantBits(forward::Precision precision) {
  switch (precision) {
    case forward::Precision::kFP64: return 53;
    case forward::Precision::kFP32: return 24;
    case forward::Precision::kFP16: return 11;
    case forward::Precision::kBF16: return 8;
  }
  return 24;
}

double UlpAt(double magnitude, forward::Precision precision) {
  magnitude = std::fabs(magnitude);
  if (magnitude == 0 || !std::isfinite(magnitude)) return 0;
  // Smallest normal exponent (floor(log2) of the smallest normal) per precision.
  int min_exponent = 0;
  switch (precision) {
    case forward::Precision::kFP64: min_exponent = -1022; break;
    case forward::Precision::kFP32: min_exponent = -126; break;
    case forward::Precision::kFP16: min_exponent = -14; break;
    case forward::Precision::kBF16: min_exponent = -126; break;
  }
  int exponent = std::ilogb(magnitude);  // floor(log2 |x|), exact
  exponent = std::max(exponent, min_exponent);
  return std::ldexp(1.0, exponent - (SignificantBits(precision) - 1));
}

forward::Precision CoarserPrecision(forward::Precision x, forward::Precision y) {
  return SignificantBits(x) <= SignificantBits(y) ? x : y;
}

FlipAnalysis AnalyzeFlip(const std::vector<double>& a, const std::vector<double>& b,
                         int64_t token_a, int64_t token_b, forward::Precision precision,
                         double ulps) {
  FlipAnalysis f;
  f.flip_gap = (a[token_a] - a[token_b]) + (b[token_b] - b[token_a]);
  double magnitude = std::max({std::fabs(a[token_a]), std::fabs(a[token_b]), std::fabs(b[token_a]),
                               std::fabs(b[token_b])});
  f.tolerance = ulps * UlpAt(magnitude, precision);
  f.near_tie = f.flip_gap <= f.tolerance;
  return f;
}

double PercentileNearestRank(std::vector<double> values, double p) {
  if (values.empty()) throw std::invalid_argument("percentile of no values");
  // NaN ranks above every number, so a NaN step is the maximum (and p99 of a run with NaNs is NaN
  // when they reach that rank), never silently dropped.
  std::sort(values.begin(), values.end(), [](double x, double y) {
    if (std::isnan(x)) return false;
    if (std::isnan(y)) return true;
    return x < y;
  });
  double n = static_cast<double>(values.size());
  // ceil(p/100 * n) computed so that exact products (e.g. 50% of 4 = 2) are not pushed up by
  // rounding in p / 100.
  int64_t rank = static_cast<int64_t>(std::ceil(p * n / 100.0 - 1e-9));
  rank = std::clamp<int64_t>(rank, 1, static_cast<int64_t>(values.size()));
  return values[rank - 1];
}

RunMetrics SummarizeSteps(const std::vector<StepRecord>& steps) {
  RunMetrics m;
  m.steps = static_cast<int64_t>(steps.size());
  m.p50_kl = m.p90_kl = m.p99_kl = 0;
  std::vector<double> kl;
  double sum_kl = 0, sum_rms = 0, sum_js = 0, sum_overlap = 0;
  int64_t agree = 0;
  double split_sum_kl = 0;
  int64_t split_agree = 0;
  for (const StepRecord& s : steps) {
    if (!s.top1_agree && !m.first_divergence_step) m.first_divergence_step = s.step;
    if (s.nonfinite_a > 0 || s.nonfinite_b > 0) ++m.nonfinite_steps;
    if (!s.same_context) {
      // After the split the two sides read different texts: reported apart, never aggregated
      // with the like-for-like steps.
      AfterSplitMetrics& a = m.after_split;
      ++a.steps;
      split_sum_kl += s.kl;
      a.max_kl = MaxPropagatingNan(a.max_kl, s.kl);
      if (s.top1_agree) ++split_agree;
      continue;
    }
    ++m.same_context_steps;
    m.max_abs_logit_diff = MaxPropagatingNan(m.max_abs_logit_diff, s.max_abs_diff);
    sum_rms += s.rms_diff;
    kl.push_back(s.kl);
    sum_kl += s.kl;
    m.max_kl = MaxPropagatingNan(m.max_kl, s.kl);
    sum_js += s.js;
    sum_overlap += s.topk_overlap;
    if (s.top1_agree) ++agree;
    if (s.nmse) m.max_nmse = MaxPropagatingNan(m.max_nmse.value_or(*s.nmse), *s.nmse);
    if (s.cosine) m.min_cosine = std::min(m.min_cosine.value_or(*s.cosine), *s.cosine);
  }
  if (m.after_split.steps > 0) {
    m.after_split.mean_kl = split_sum_kl / m.after_split.steps;
    m.after_split.top1_agreement = static_cast<double>(split_agree) / m.after_split.steps;
  }
  if (m.same_context_steps == 0) return m;
  double n = static_cast<double>(m.same_context_steps);
  m.rms_logit_diff_mean = sum_rms / n;
  m.mean_kl = sum_kl / n;
  m.mean_js = sum_js / n;
  m.topk_overlap_mean = sum_overlap / n;
  m.top1_agreement = agree / n;
  m.p50_kl = PercentileNearestRank(kl, 50);
  m.p90_kl = PercentileNearestRank(kl, 90);
  m.p99_kl = PercentileNearestRank(kl, 99);
  return m;
}

double RmsDiff(const at::Tensor& x, const at::Tensor& y) {
  at::Tensor d = x.detach().to(at::kCPU).to(at::kDouble) - y.detach().to(at::kCPU).to(at::kDouble);
  if (d.numel() == 0) return 0;
  return std::sqrt(d.pow(2).mean().item<double>());
}

PairSummary SummarizePair(const PairSummary& identity, const std::vector<const Run*>& runs,
                          const std::vector<StepRecord>& steps, int64_t max_new_tokens) {
  PairSummary pair;
  pair.id = identity.id;
  pair.pair = identity.pair;
  double kl_sum = 0;
  int64_t count = 0, agree = 0;
  std::map<std::string, std::vector<const StepRecord*>> steps_of_run;
  for (const StepRecord& step : steps) steps_of_run[step.run].push_back(&step);
  for (const Run* run : runs) {
    pair.runs.push_back(run->id);
    pair.pass = pair.pass && run->pass;
    // Each run's steps summed first, then the runs: a merge of shards sums in the same order as
    // the unsharded run, so its mean is bit-identical.
    double run_kl_sum = 0;
    for (const StepRecord* step : steps_of_run[run->id]) {
      if (!step->same_context) continue;  // like with like: after-split steps stay per run
      run_kl_sum += step->kl;
      pair.max_kl = MaxPropagatingNan(pair.max_kl, step->kl);
      agree += step->top1_agree ? 1 : 0;
      ++count;
    }
    kl_sum += run_kl_sum;
  }
  pair.mean_kl = count > 0 ? kl_sum / static_cast<double>(count) : 0;
  pair.top1_agreement = count > 0 ? static_cast<double>(agree) / static_cast<double>(count) : 1;
  for (int64_t t = 0; t < max_new_tokens; ++t) {
    int64_t identical = 0;
    for (const Run* run : runs) {
      identical += (!run->first_divergence || run->first_divergence->step > t) ? 1 : 0;
    }
    pair.identical_fraction.push_back(
        runs.empty() ? 1.0 : static_cast<double>(identical) / static_cast<double>(runs.size()));
  }
  return pair;
}

}  // namespace parity::compare
