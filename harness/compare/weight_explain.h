// Why two tensors differ: tests hypotheses of what a conversion did to the reference tensor A to
// give B, and reports the one that fits best with its residual, or "unexplained".
//
// Hypotheses (B as a function of A), each with the residual
//   residual = rms(b - h(a)) / rms(b)        computed in FP64 (0 = h explains B exactly)
//  exact ones (accepted only at residual 0, i.e. every element equal in FP64):
//   rows_permuted / columns_permuted   B's rows (columns) are A's rows (columns) in another order,
//                 found by hashing each row's bytes, then classified: heads rotated by k, two heads
//                 swapped, another permutation of head-sized blocks, the GGUF rope interleave
//                 permutation `w.reshape(n, 2, rows / n / 2, cols).swapaxes(1, 2)` (n = heads) or
//                 its inverse, or single rows exchanged (which rows);
//   transpose     B = A^T (square tensors);
//   swapped       B = A's other tensor of the same shape in the same layer (gate/up, k/v, q/k, or the
//                 embedding and the LM head);
//   rounded_<f>   B = A rounded to f, element for element: bf16, fp16 (round to nearest even),
//                 fp8_e4m3 (OCP e4m3fn, nearest even, no scale), q8_0 (llama.cpp: blocks of 32
//                 along a row, d = max|x| / 127 stored as FP16, q = round(x / d));
//   sign_flip     B = -A;   zeroed   B = 0;
//  fitted ones (least squares, accepted at residual <= 2 u, u = B's dtype unit roundoff: the
//  rounding the stored B carries anyway; the parameter must differ from the identity by more than
//  4 u so that rounding noise is not called a scale):
//   scale         B = c A, c = <a, b> / <a, a>;
//   offset        B = A + k, k = mean(b - a).
// The best fitting hypothesis is the one with the smallest residual (ties: the order above).
//
// Cost: row hashing is linear and always covers the whole tensor; the other hypotheses are screened
// on an evenly strided sample of rows when the tensor has more than kFullTestElements elements, and
// the winner is then confirmed on every element (the output says so). A [14336, 4096] BF16 tensor
// takes about a second on two cores (tests/bench/weight_explain_bench.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <nlohmann/json.hpp>

namespace parity::compare {

inline constexpr int64_t kFullTestElements = int64_t{1} << 22;

// What is known about a tensor's layout, so that block permutations can be named.
struct TensorContext {
  std::string label;       // e.g. "layer 3 q", for sentences
  int64_t head_dim = 0;    // rows / columns per head; 0 when the tensor has no head structure
  int64_t row_heads = 0;   // heads along dim 0 (q: H, k and v: kv_heads); 0: rows are not heads
  int64_t col_heads = 0;   // heads along dim 1 (o: H); 0: columns are not heads
  std::vector<int64_t> rope_heads;  // head counts to try for the GGUF permutation (q: H; k: kv, H)
  // Other tensors of A with the same shape that B's tensor may have been swapped with.
  struct Partner {
    std::string label;  // e.g. "layer 3 up"
    std::function<at::Tensor()> load;
  };
  std::vector<Partner> partners;
};

struct HypothesisResult {
  std::string kind;
  double residual = 0;  // as in the header comment; +inf when the hypothesis does not apply
  bool fits = false;
};

struct WeightExplanation {
  bool explained = false;
  std::string kind;      // a hypothesis kind, or "unexplained"
  std::string sentence;  // "B = A x 1.01 (uniform scale)", "rows 5 and 6 exchanged", ...
  double residual = 0;   // of `kind`; for "unexplained", of the closest hypothesis
  double tolerance = 0;  // what `kind` was accepted under
  nlohmann::json details = nlohmann::json::object();  // factor, rows, heads, partner, format...
  std::vector<HypothesisResult> tested;  // every hypothesis tried, in test order
  bool sampled = false;        // hypotheses screened on a sample of rows
  int64_t sample_rows = 0;     // rows in that sample
  int64_t rows = 0;            // rows of the tensor (1-D tensors count as rows of one element)
  bool confirmed_full = true;  // the reported hypothesis was checked on every element
  double seconds = 0;
};

// Explains how `b` differs from `a` (same shape; any floating dtypes that libtorch can convert).
// Throws std::invalid_argument for different shapes (the caller compares shapes first).
WeightExplanation ExplainWeightDifference(const at::Tensor& a, const at::Tensor& b,
                                          const TensorContext& context);

nlohmann::json WeightExplanationToJson(const WeightExplanation& explanation);

// The roundings as functions (FP32 in, FP32 out, same shape), tested against hand-computed values.
at::Tensor RoundToFp8E4M3(const at::Tensor& x);
at::Tensor RoundToQ8_0(const at::Tensor& x);  // last dimension a multiple of 32
// The GGUF rope permutation of rows with n heads, and its inverse (llama.cpp's convert script).
at::Tensor GgufRopePermute(const at::Tensor& w, int64_t n_head);
at::Tensor GgufRopeUnpermute(const at::Tensor& w, int64_t n_head);

}  // namespace parity::compare
