#include "harness/compare/weight_explain.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <unordered_map>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace parity::compare {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kChunkElements = int64_t{1} << 22;  // rows per FP64 chunk: ~32 MB each side

// The tensor as [R, C]: 1-D tensors are R rows of one element, higher ranks keep dim 0.
at::Tensor As2d(const at::Tensor& t) {
  if (t.dim() == 0) return t.reshape({1, 1}).contiguous();
  if (t.dim() == 1) return t.reshape({-1, 1}).contiguous();
  return t.reshape({t.size(0), -1}).contiguous();
}

// Unit roundoff of a storage dtype: half the distance from 1 to the next representable number.
double UnitRoundoff(at::ScalarType type) {
  switch (type) {
    case at::kBFloat16: return std::ldexp(1.0, -8);
    case at::kHalf: return std::ldexp(1.0, -11);
    case at::kDouble: return std::ldexp(1.0, -53);
    default: return std::ldexp(1.0, -24);
  }
}

// ---- Rows as bytes: permutations -----------------------------------------------------------------

std::vector<uint64_t> RowHashes(const at::Tensor& t) {
  const int64_t rows = t.size(0);
  const size_t row_bytes = static_cast<size_t>(t.size(1)) * t.element_size();
  const uint8_t* base = static_cast<const uint8_t*>(t.data_ptr());
  std::vector<uint64_t> hashes(rows);
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const uint8_t* p = base + r * row_bytes;
      uint64_t h = 0x9E3779B97F4A7C15ULL ^ row_bytes;
      size_t i = 0;
      for (; i + 8 <= row_bytes; i += 8) {
        uint64_t word;
        std::memcpy(&word, p + i, 8);
        h = (h ^ word) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
      }
      for (; i < row_bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
      hashes[r] = h;
    }
  });
  return hashes;
}

// perm with b[i] = a[perm[i]] for every row (bytes equal), when B's rows are a non-identity
// permutation of A's; nullopt otherwise. a and b: contiguous [R, C] of one dtype.
std::optional<std::vector<int64_t>> FindRowPermutation(const at::Tensor& a, const at::Tensor& b) {
  const int64_t rows = a.size(0);
  const size_t row_bytes = static_cast<size_t>(a.size(1)) * a.element_size();
  const uint8_t* pa = static_cast<const uint8_t*>(a.data_ptr());
  const uint8_t* pb = static_cast<const uint8_t*>(b.data_ptr());
  auto same = [&](int64_t i, int64_t j) {
    return std::memcmp(pb + i * row_bytes, pa + j * row_bytes, row_bytes) == 0;
  };
  const std::vector<uint64_t> ha = RowHashes(a);
  const std::vector<uint64_t> hb = RowHashes(b);
  std::vector<int64_t> perm(rows, -1);
  std::vector<char> used(rows, 0);
  bool moved = false;
  for (int64_t i = 0; i < rows; ++i) {
    if (hb[i] == ha[i] && same(i, i)) {
      perm[i] = i;
      used[i] = 1;
    }
  }
  std::unordered_multimap<uint64_t, int64_t> by_hash;
  for (int64_t j = 0; j < rows; ++j) {
    if (!used[j]) by_hash.emplace(ha[j], j);
  }
  for (int64_t i = 0; i < rows; ++i) {
    if (perm[i] >= 0) continue;
    auto [first, last] = by_hash.equal_range(hb[i]);
    for (auto it = first; it != last; ++it) {
      if (!used[it->second] && same(i, it->second)) {
        perm[i] = it->second;
        used[it->second] = 1;
        moved = true;
        break;
      }
    }
    if (perm[i] < 0) return std::nullopt;
  }
  if (!moved) return std::nullopt;
  return perm;
}

struct Named {
  std::string kind;
  std::string sentence;
  nlohmann::json details;
};

// Names a row (or column) permutation: GGUF rope order, head blocks, or single rows.
Named ClassifyPermutation(const std::vector<int64_t>& perm, const char* axis, int64_t head_dim,
                          int64_t heads, const std::vector<int64_t>& rope_heads) {
  const int64_t rows = static_cast<int64_t>(perm.size());
  for (int64_t n : rope_heads) {
    if (n <= 0 || rows % (2 * n) != 0) continue;
    const int64_t per = rows / n, half = per / 2;
    bool forward = true, inverse = true;
    for (int64_t i = 0; i < rows && (forward || inverse); ++i) {
      const int64_t h = i / per, r = i % per;
      // permute: output row h*per + 2j + s holds input row h*per + s*half + j.
      const int64_t fwd_src = h * per + (r % 2) * half + r / 2;
      // inverse: output row h*per + s*half + j holds input row h*per + 2j + s.
      const int64_t inv_src = h * per + 2 * (r % half) + r / half;
      forward = forward && perm[i] == fwd_src;
      inverse = inverse && perm[i] == inv_src;
    }
    if (forward) {
      return {"gguf_rope_permutation",
              fmt::format("{} in the GGUF rope interleave order: B = A.reshape({}, 2, {}, ...)"
                          ".swapaxes(1, 2), as llama.cpp's converter permutes Q/K (n_head {})",
                          axis, n, half, n),
              {{"axis", axis}, {"n_head", n}}};
    }
    if (inverse) {
      return {"gguf_rope_inverse_permutation",
              fmt::format("{} in the inverse of the GGUF rope interleave order (a GGUF Q/K "
                          "un-permuted once too often, n_head {})",
                          axis, n),
              {{"axis", axis}, {"n_head", n}}};
    }
  }
  if (head_dim > 0 && heads > 1 && rows == heads * head_dim) {
    std::vector<int64_t> sigma(heads);
    bool blocks = true;
    for (int64_t h = 0; h < heads && blocks; ++h) {
      const int64_t start = perm[h * head_dim];
      blocks = start % head_dim == 0;
      sigma[h] = start / head_dim;
      for (int64_t r = 1; r < head_dim && blocks; ++r) blocks = perm[h * head_dim + r] == start + r;
    }
    if (blocks) {
      std::vector<int64_t> moved_heads;
      for (int64_t h = 0; h < heads; ++h) {
        if (sigma[h] != h) moved_heads.push_back(h);
      }
      nlohmann::json details = {{"axis", axis}, {"head_dim", head_dim}, {"heads", heads},
                                {"source_heads", sigma}};
      if (moved_heads.size() == 2) {
        details["swapped_heads"] = moved_heads;
        return {"heads_swapped",
                fmt::format("heads {} and {} exchanged along the {} (head_dim {})", moved_heads[0],
                            moved_heads[1], axis, head_dim),
                details};
      }
      const int64_t shift = sigma[0];
      bool rotation = true;
      for (int64_t h = 0; h < heads && rotation; ++h) rotation = sigma[h] == (h + shift) % heads;
      if (rotation) {
        details["shift"] = shift;
        return {"heads_rotated",
                fmt::format("heads rotated by {} along the {}: B's head h is A's head (h + {}) mod "
                            "{} (head_dim {})",
                            shift, axis, shift, heads, head_dim),
                details};
      }
      return {"heads_permuted",
              fmt::format("heads permuted along the {}: B's heads are A's heads [{}] (head_dim {})",
                          axis, fmt::join(sigma, ", "), head_dim),
              details};
    }
  }
  std::vector<int64_t> moved;
  for (int64_t i = 0; i < rows; ++i) {
    if (perm[i] != i) moved.push_back(i);
  }
  std::vector<std::vector<int64_t>> pairs;
  bool transpositions = true;
  for (int64_t i : moved) {
    if (perm[perm[i]] != i) transpositions = false;
    if (perm[i] > i) pairs.push_back({i, perm[i]});
  }
  const std::string singular = std::string(axis).substr(0, std::strlen(axis) - 1);  // "row"
  nlohmann::json details = {{"axis", axis}, {"moved", moved.size()}};
  if (transpositions) {
    details["pairs"] = pairs;
    std::vector<std::string> text;
    for (size_t i = 0; i < pairs.size() && i < 8; ++i) {
      text.push_back(fmt::format("{} and {}", pairs[i][0], pairs[i][1]));
    }
    return {std::string(axis) + "_exchanged",
            fmt::format("{} {} exchanged{}", axis, fmt::join(text, ", "),
                        pairs.size() > 8 ? fmt::format(" (and {} more pairs)", pairs.size() - 8)
                                         : std::string()),
            details};
  }
  std::vector<std::string> text;
  nlohmann::json sources = nlohmann::json::array();
  for (size_t i = 0; i < moved.size(); ++i) {
    sources.push_back({moved[i], perm[moved[i]]});
    if (i < 8) text.push_back(fmt::format("{} <- {}", moved[i], perm[moved[i]]));
  }
  details["moves"] = sources;
  return {std::string(axis) + "_permuted",
          fmt::format("{} {} moved (B {} <- A {}): {}{}", moved.size(), axis, singular, singular,
                      fmt::join(text, ", "), moved.size() > 8 ? ", ..." : ""),
          details};
}

// ---- Predictive hypotheses: B's rows from A's, screened on a sample, confirmed on all rows ------

// A set of rows: an index (the screening sample) or a contiguous range (the full confirmation,
// taken with narrow, no gather).
struct Rows {
  at::Tensor index;  // int64 [n]; undefined: the range below
  int64_t start = 0;
  int64_t length = 0;
};
at::Tensor Take(const at::Tensor& t, const Rows& rows, int64_t dim = 0) {
  return rows.index.defined() ? t.index_select(dim, rows.index) : t.narrow(dim, rows.start, rows.length);
}

struct Predictor {
  std::string kind;
  bool exact = true;        // accepted only at residual 0
  std::function<at::Tensor(const Rows& rows)> predict;  // FP64 [len(rows), C]
  std::string sentence;
  nlohmann::json details = nlohmann::json::object();
};

// rms(b - predicted) / rms(b) over the rows in `index`, or over every row when it is undefined
// (FP64, a chunk of rows at a time).
double Residual(const at::Tensor& b2, const Predictor& p, const at::Tensor& index) {
  const int64_t cols = b2.size(1);
  const int64_t chunk = std::max<int64_t>(1, kChunkElements / std::max<int64_t>(cols, 1));
  const int64_t count = index.defined() ? index.size(0) : b2.size(0);
  double diff_sq = 0, b_sq = 0;
  for (int64_t start = 0; start < count; start += chunk) {
    const int64_t length = std::min(chunk, count - start);
    Rows rows;
    if (index.defined()) {
      rows.index = index.narrow(0, start, length);
    } else {
      rows.start = start;
      rows.length = length;
    }
    const at::Tensor db = Take(b2, rows).to(at::kDouble, false, /*copy=*/true).reshape({-1});
    b_sq += at::dot(db, db).item<double>();
    const at::Tensor diff = db.sub_(p.predict(rows).reshape({-1}));  // db is ours: in place
    diff_sq += at::dot(diff, diff).item<double>();
  }
  if (std::isnan(diff_sq)) return kInf;
  if (b_sq == 0) return diff_sq == 0 ? 0 : kInf;
  return std::sqrt(diff_sq / b_sq);
}

std::string Number(double value) { return fmt::format("{:.6g}", value); }

}  // namespace

// ---- Roundings ------------------------------------------------------------------------------------

at::Tensor RoundToFp8E4M3(const at::Tensor& x) {
  at::Tensor in = x.to(at::kFloat).contiguous();
  at::Tensor out = at::empty_like(in);
  const float* src = in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, in.numel(), 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float v = src[i];
      const float mag = std::fabs(v);
      if (std::isnan(v) || mag == 0.0f) {
        dst[i] = v;
        continue;
      }
      int exponent;
      std::frexp(mag, &exponent);  // mag = m * 2^exponent, m in [0.5, 1)
      // e4m3fn: 3 mantissa bits, normal exponents down to 2^-6, subnormal quantum 2^-9.
      const int quantum_exp = std::max(exponent - 1, -6) - 3;
      double q = std::nearbyint(std::ldexp(static_cast<double>(mag), -quantum_exp));
      double rounded = std::ldexp(q, quantum_exp);
      // Above the largest finite value 448 e4m3fn has no infinity: the conversion gives NaN.
      if (rounded > 448.0) rounded = std::numeric_limits<double>::quiet_NaN();
      dst[i] = static_cast<float>(std::copysign(rounded, static_cast<double>(v)));
    }
  });
  return out;
}

at::Tensor RoundToQ8_0(const at::Tensor& x) {
  if (x.dim() == 0 || x.size(-1) % 32 != 0) {
    throw std::invalid_argument("q8_0 needs a last dimension that is a multiple of 32");
  }
  at::Tensor in = x.to(at::kFloat).contiguous();
  at::Tensor out = at::empty_like(in);
  const float* src = in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, in.numel() / 32, 256, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) {
      const float* v = src + block * 32;
      float amax = 0.0f;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
      // llama.cpp quantize_row_q8_0_ref: d = amax / 127 stored as FP16; q = roundf(x * (1 / d)).
      const float d = amax / 127.0f;
      const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
      const float stored_d = at::Half(d);
      for (int j = 0; j < 32; ++j) dst[block * 32 + j] = std::round(v[j] * inverse) * stored_d;
    }
  });
  return out;
}

at::Tensor GgufRopePermute(const at::Tensor& w, int64_t n_head) {
  std::vector<int64_t> shape = {n_head, 2, w.size(0) / n_head / 2};
  for (int64_t i = 1; i < w.dim(); ++i) shape.push_back(w.size(i));
  return w.reshape(shape).transpose(1, 2).reshape(w.sizes()).contiguous();
}

at::Tensor GgufRopeUnpermute(const at::Tensor& w, int64_t n_head) {
  std::vector<int64_t> shape = {n_head, w.size(0) / n_head / 2, 2};
  for (int64_t i = 1; i < w.dim(); ++i) shape.push_back(w.size(i));
  return w.reshape(shape).transpose(1, 2).reshape(w.sizes()).contiguous();
}

WeightExplanation ExplainWeightDifference(const at::Tensor& a_in, const at::Tensor& b_in,
                                          const TensorContext& context) {
  if (!a_in.sizes().equals(b_in.sizes())) {
    throw std::invalid_argument("ExplainWeightDifference: shapes differ");
  }
  const auto start = std::chrono::steady_clock::now();
  WeightExplanation out;
  const at::Tensor a2 = As2d(a_in);
  const at::Tensor b2 = As2d(b_in);
  const int64_t rows = a2.size(0), cols = a2.size(1);
  out.rows = rows;
  auto finish = [&](WeightExplanation& e) -> WeightExplanation& {
    e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return e;
  };

  // Zeroed.
  if (b2.abs().max().item<double>() == 0.0) {
    out.explained = true;
    out.kind = "zeroed";
    out.sentence = "B is all zeros";
    out.tested.push_back({"zeroed", 0, true});
    return finish(out);
  }

  // Permutations of whole rows / columns (exact, on every element, by hashing).
  if (a2.scalar_type() == b2.scalar_type()) {
    std::vector<int64_t> rope = context.rope_heads;
    if (auto perm = FindRowPermutation(a2, b2)) {
      Named named = ClassifyPermutation(*perm, "rows", context.head_dim, context.row_heads, rope);
      out.tested.push_back({"rows_permuted", 0, true});
      out.explained = true;
      out.kind = named.kind;
      out.sentence = "B = A with " + named.sentence;
      out.details = named.details;
      return finish(out);
    }
    out.tested.push_back({"rows_permuted", kInf, false});
    if (cols > 1) {
      if (auto perm = FindRowPermutation(a2.t().contiguous(), b2.t().contiguous())) {
        Named named = ClassifyPermutation(*perm, "columns", context.head_dim, context.col_heads, {});
        out.tested.push_back({"columns_permuted", 0, true});
        out.explained = true;
        out.kind = named.kind;
        out.sentence = "B = A with " + named.sentence;
        out.details = named.details;
        return finish(out);
      }
      out.tested.push_back({"columns_permuted", kInf, false});
    }
  }

  // The rows the predictive hypotheses are screened on (undefined: all of them).
  at::Tensor screen;
  if (rows * cols > kFullTestElements && rows > 1) {
    const int64_t sample = std::clamp<int64_t>(kFullTestElements / std::max<int64_t>(cols, 1), 1, rows);
    screen = at::div(at::arange(sample, at::kLong) * rows, sample, "floor");
    out.sampled = sample < rows;
    out.sample_rows = sample;
  }
  const at::Tensor sa = (screen.defined() ? a2.index_select(0, screen) : a2).to(at::kDouble);
  const at::Tensor sb = (screen.defined() ? b2.index_select(0, screen) : b2).to(at::kDouble);
  const double u = UnitRoundoff(b2.scalar_type());
  const double a_sq = sa.pow(2).sum().item<double>();
  const double factor = a_sq > 0 ? (sa * sb).sum().item<double>() / a_sq : 0.0;
  const double offset = (sb - sa).mean().item<double>();
  const double rms_a = std::sqrt(a_sq / std::max<int64_t>(sa.numel(), 1));

  auto a_rows = [a2](const Rows& r) { return Take(a2, r).to(at::kDouble); };
  std::vector<Predictor> predictors;
  for (const TensorContext::Partner& partner : context.partners) {
    at::Tensor p = As2d(partner.load());
    if (!p.sizes().equals(a2.sizes())) continue;
    predictors.push_back({"swapped",
                          true,
                          [p](const Rows& r) { return Take(p, r).to(at::kDouble); },
                          "B holds A's " + partner.label + " (the two tensors are swapped)",
                          {{"partner", partner.label}}});
  }
  if (rows == cols && a_in.dim() == 2) {
    predictors.push_back({"transpose", true,
                          [a2](const Rows& r) {
                            return Take(a2, r, 1).t().to(at::kDouble);
                          },
                          "B = A transposed",
                          {}});
  }
  predictors.push_back({"sign_flip", true, [a_rows](const Rows& r) { return -a_rows(r); },
                        "B = -A (sign flipped)", {}});
  struct Format {
    const char* kind;
    const char* name;
    std::function<at::Tensor(const at::Tensor&)> round;
  };
  std::vector<Format> formats = {
      {"rounded_bf16", "BF16 (round to nearest even)",
       [](const at::Tensor& x) { return x.to(at::kBFloat16).to(at::kFloat); }},
      {"rounded_fp16", "FP16 (round to nearest even)",
       [](const at::Tensor& x) { return x.to(at::kHalf).to(at::kFloat); }},
      {"rounded_fp8_e4m3", "FP8 e4m3 (e4m3fn, round to nearest even, no scale)", RoundToFp8E4M3}};
  if (cols % 32 == 0) {
    formats.push_back({"rounded_q8_0", "Q8_0 (llama.cpp blocks of 32, FP16 scale)", RoundToQ8_0});
  }
  for (const Format& f : formats) {
    auto round = f.round;
    predictors.push_back({f.kind, true,
                          [a2, round](const Rows& r) {
                            return round(Take(a2, r).to(at::kFloat)).to(at::kDouble);
                          },
                          fmt::format("B = A rounded to {}: every element is exactly that rounding",
                                      f.name),
                          {{"format", std::string(f.kind).substr(8)}}});
  }
  // Any factor but 0 and 1 is a candidate: a BF16 tensor scaled by 1.01 has a factor within 4
  // ULPs of 1 and is still a scale (measured on a 7B-shaped checkpoint); plain rounding of A is
  // told apart by the exact rounding hypotheses above, whose residual 0 wins over the scale's.
  if (factor != 1.0 && factor != 0.0) {
    predictors.push_back({"scale", false,
                          [a_rows, factor](const Rows& r) { return a_rows(r) * factor; },
                          fmt::format("B = A x {} (uniform scale)", Number(factor)),
                          {{"factor", factor}}});
  }
  if (std::fabs(offset) > 4 * u * rms_a) {
    predictors.push_back({"offset", false,
                          [a_rows, offset](const Rows& r) { return a_rows(r) + offset; },
                          fmt::format("B = A + {} (constant offset)", Number(offset)),
                          {{"offset", offset}}});
  }

  // Screen, then confirm the fitting ones in order of residual (ties: the order above).
  struct Screened {
    size_t index;
    double residual;
    bool fits;
  };
  std::vector<Screened> screened;
  for (size_t i = 0; i < predictors.size(); ++i) {
    const double residual = Residual(b2, predictors[i], screen);
    const double tolerance = predictors[i].exact ? 0.0 : 2 * u;
    screened.push_back({i, residual, residual <= tolerance});
    out.tested.push_back({predictors[i].kind, residual, residual <= tolerance});
  }
  std::vector<Screened> order = screened;
  std::stable_sort(order.begin(), order.end(), [](const Screened& x, const Screened& y) {
    if (x.fits != y.fits) return x.fits;
    return x.residual < y.residual;
  });
  for (const Screened& s : order) {
    if (!s.fits) break;
    const Predictor& p = predictors[s.index];
    const double tolerance = p.exact ? 0.0 : 2 * u;
    double residual = s.residual;
    if (out.sampled) residual = Residual(b2, p, at::Tensor());
    if (residual > tolerance) continue;  // the sample fitted, the whole tensor does not
    out.explained = true;
    out.kind = p.kind;
    out.sentence = p.sentence;
    out.residual = residual;
    out.tolerance = tolerance;
    out.details = p.details;
    out.confirmed_full = true;
    return finish(out);
  }
  out.kind = "unexplained";
  out.explained = false;
  if (!order.empty() && std::isfinite(order.front().residual)) {
    const Predictor& closest = predictors[order.front().index];
    out.residual = order.front().residual;
    out.confirmed_full = !out.sampled;
    out.details = {{"closest", closest.kind}, {"closest_sentence", closest.sentence}};
    out.sentence = fmt::format("unexplained: no hypothesis fits (closest: {}, residual {:.3g})",
                               closest.kind, out.residual);
  } else {
    out.residual = kInf;
    out.sentence = "unexplained: no hypothesis applies";
  }
  return finish(out);
}

nlohmann::json WeightExplanationToJson(const WeightExplanation& e) {
  nlohmann::json tested = nlohmann::json::array();
  for (const HypothesisResult& h : e.tested) {
    tested.push_back({{"kind", h.kind},
                      {"residual", std::isfinite(h.residual) ? nlohmann::json(h.residual)
                                                             : nlohmann::json(nullptr)},
                      {"fits", h.fits}});
  }
  return {{"explained", e.explained},
          {"kind", e.kind},
          {"sentence", e.sentence},
          {"residual", std::isfinite(e.residual) ? nlohmann::json(e.residual) : nlohmann::json()},
          {"tolerance", e.tolerance},
          {"details", e.details},
          {"tested", tested},
          {"sampled", e.sampled},
          {"sample_rows", e.sample_rows},
          {"rows", e.rows},
          {"confirmed_full", e.confirmed_full},
          {"seconds", e.seconds}};
}

}  // namespace parity::compare
