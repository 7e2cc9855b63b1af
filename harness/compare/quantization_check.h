// Is a GGUF tensor's difference from its Hugging Face counterpart the quantization its stored type
// makes ("as expected"), or something else ("wrong"), and if so what?
//
// Expected error, as an RMS over the tensor, with A the HF tensor and B the GGUF one dequantized
// (and un-permuted) by Parity:
// - types Parity writes (F32, F16, BF16, Q8_0): quantize A with ggml's reference quantizer and
//   dequantize it, Q(A); expected = rms(A - Q(A)), exact for this A. B passes when
//   rms(A - B) <= 2 x expected (a GGUF quantized from an F16 intermediate, or by a SIMD quantizer
//   whose roundings differ on a few elements, stays well inside; a stored F32 must equal A);
// - other ggml types (Q4_0, Q4_K, Q6_K, ...): an estimate from the type's step size per block of A,
//   rms of a uniform rounding error, step^2 / 12: Q4_0 step = max|x| / 8 per 32 values, Q4_K
//   (max - min) / 15 per 32, Q6_K max|x| / 32 per 16, others by their bits per weight per 32;
//   B passes when rms(A - B) <= 3 x the estimate (the K-quants' scale rounding adds error).
// A permuted, swapped or otherwise wrong tensor is off by about rms(A) * sqrt(2), far beyond either.
//
// When B fails, hypotheses of what happened (each a function of A: the rope permutation left out,
// applied twice, applied with n_head to K, another tensor of the layer in its place) are tested
// under the same rule; the first that passes names the fault.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <nlohmann/json.hpp>

namespace parity::compare {

struct QuantizationHypothesis {
  std::string kind;      // "rope_permutation_missing", "swapped", ...
  std::string sentence;  // "the GGUF stores blk.0.attn_q.weight in HF's row order: ..."
  std::function<at::Tensor()> make;  // what B would be, from A
};

struct QuantizationCheck {
  std::string stored_type;   // "Q8_0"
  bool exact_model = true;   // expected error from quantizing A (false: an estimate)
  double expected_rms = 0;   // see above
  double tolerance = 0;      // what rms(A - B) may be
  double rms = 0;            // rms(A - B)
  bool as_expected = false;
  std::string finding;       // "" when as expected; a hypothesis kind, or "unexplained"
  std::string sentence;      // why, in words
};

// A and B of the same shape (any floating dtypes). Throws InputError when `stored_type` is unknown.
QuantizationCheck CheckQuantization(const at::Tensor& a, const at::Tensor& b,
                                    const std::string& stored_type,
                                    const std::vector<QuantizationHypothesis>& hypotheses);

nlohmann::json QuantizationCheckToJson(const QuantizationCheck& check);

}  // namespace parity::compare
