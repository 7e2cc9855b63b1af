#include "harness/compare/quantization_check.h"

#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "harness/core/error.h"
#include "harness/io/ggml_quants.h"

namespace parity::compare {
namespace {

double Rms(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor diff = a.to(at::kDouble) - b.to(at::kDouble);
  return diff.numel() ? std::sqrt((diff * diff).mean().item<double>()) : 0.0;
}

// A rounded through `type` and back (rows along the last dimension, as GGUF blocks them).
at::Tensor RoundTrip(const at::Tensor& a, const io::GgmlTypeInfo& type) {
  at::Tensor flat = a.to(at::kFloat).contiguous().reshape({-1});
  std::vector<uint8_t> bytes(static_cast<size_t>(flat.numel() / type.block_size * type.type_size));
  io::QuantizeRow(type, flat.data_ptr<float>(), flat.numel(), bytes.data());
  at::Tensor out = at::empty_like(flat);
  io::DequantizeRow(type, bytes.data(), flat.numel(), out.data_ptr<float>());
  return out.reshape(a.sizes());
}

// The estimated RMS rounding error of a type Parity cannot write, from A's blocks.
double EstimatedRms(const at::Tensor& a, const io::GgmlTypeInfo& type) {
  int64_t block = 32;
  double levels = std::pow(2.0, std::floor(io::BitsPerWeight(type))) - 1;
  bool signed_range = true;  // step from max|x| (symmetric) or from max - min
  const std::string name = type.name;
  if (name == "Q4_0") { levels = 8; block = 32; }
  if (name == "Q4_K") { levels = 15; block = 32; signed_range = false; }
  if (name == "Q6_K") { levels = 32; block = 16; }
  at::Tensor x = a.to(at::kDouble).reshape({-1});
  if (x.numel() % block != 0) return 0.0;
  x = x.reshape({-1, block});
  at::Tensor step = signed_range ? std::get<0>(x.abs().max(1)) / levels
                                 : (std::get<0>(x.max(1)) - std::get<0>(x.min(1))) / levels;
  return std::sqrt((step * step / 12.0).mean().item<double>());
}

struct Expected {
  double rms;
  double tolerance;
};

Expected ExpectedError(const at::Tensor& a, const io::GgmlTypeInfo& type, bool exact) {
  if (exact) {
    const double rms = Rms(a, RoundTrip(a, type));
    return {rms, 2.0 * rms};
  }
  const double rms = EstimatedRms(a, type);
  return {rms, 3.0 * rms};
}

}  // namespace

QuantizationCheck CheckQuantization(const at::Tensor& a, const at::Tensor& b,
                                    const std::string& stored_type,
                                    const std::vector<QuantizationHypothesis>& hypotheses) {
  const io::GgmlTypeInfo* type = io::FindGgmlTypeByName(stored_type);
  if (type == nullptr) throw InputError(fmt::format("unknown ggml type '{}'", stored_type));
  QuantizationCheck check;
  check.stored_type = type->name;
  check.exact_model = io::Quantizable(*type) && a.size(-1) % type->block_size == 0;
  const Expected expected = ExpectedError(a, *type, check.exact_model);
  check.expected_rms = expected.rms;
  check.tolerance = expected.tolerance;
  check.rms = Rms(a, b);
  check.as_expected = check.rms <= check.tolerance;
  if (check.as_expected) {
    check.sentence = check.rms == 0
                         ? fmt::format("equal to A ({} holds it exactly)", check.stored_type)
                         : fmt::format("{} rounding: rms {:.3g} within {:.3g} ({} x the {} error "
                                       "{:.3g} {})",
                                       check.stored_type, check.rms, check.tolerance,
                                       check.exact_model ? 2 : 3, check.stored_type, check.expected_rms,
                                       check.exact_model ? "of quantizing A" : "estimated from A's blocks");
    return check;
  }
  for (const QuantizationHypothesis& hypothesis : hypotheses) {
    const at::Tensor candidate = hypothesis.make();
    if (candidate.sizes() != b.sizes()) continue;
    const Expected under = ExpectedError(candidate, *type, check.exact_model);
    const double rms = Rms(candidate, b);
    if (rms <= under.tolerance) {
      check.finding = hypothesis.kind;
      check.sentence = fmt::format("{} (rms {:.3g} against that, within its {} tolerance {:.3g}; "
                                   "{:.3g} against A)",
                                   hypothesis.sentence, rms, check.stored_type, under.tolerance,
                                   check.rms);
      return check;
    }
  }
  check.finding = "unexplained";
  check.sentence = fmt::format("rms {:.3g} against A, {:.1f} x the {:.3g} {} allows: not {} rounding",
                               check.rms, check.tolerance > 0 ? check.rms / check.tolerance : INFINITY,
                               check.tolerance, check.stored_type, check.stored_type);
  return check;
}

nlohmann::json QuantizationCheckToJson(const QuantizationCheck& check) {
  return {{"stored_type", check.stored_type},
          {"exact_model", check.exact_model},
          {"expected_rms", check.expected_rms},
          {"tolerance", check.tolerance},
          {"rms", check.rms},
          {"verdict", check.as_expected ? "as_expected" : "wrong"},
          {"finding", check.finding},
          {"sentence", check.sentence}};
}

}  // namespace parity::compare
