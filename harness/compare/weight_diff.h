// Tensor-by-tensor comparison of two checkpoints, across naming schemes: tensors are matched by role
// and layer (model::TensorTable), so an InternLM2 checkpoint compares against its Llama conversion.
// When one side is InternLM2 and the other Llama, each packed wqkv is split per KV group exactly as
// convert2llama splits it and its q / k / v parts are compared with q_proj / k_proj / v_proj.
//
// Per matched pair: shapes, dtypes, then either "bitwise equal" (same dtype, same bytes) or the
// differences computed in FP64 after upcasting both sides: max |a - b|, max |a|, the relative error
// max |a - b| / max |a|, RMS(a - b), and how many elements differ, and an explanation of the
// difference (weight_explain.h: scale, sign flip, transpose, head rotation, swap with another tensor,
// exchanged rows, rounding to BF16/FP16/FP8/Q8_0, offset, or "unexplained"). Names no table knows are
// listed as unmatched, never dropped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/compare/quantization_check.h"
#include "harness/compare/weight_explain.h"

namespace parity::compare {

// One side's view of a compared tensor.
struct WeightSide {
  std::string name;   // tensor name in the checkpoint, with " [q]" / " [k]" / " [v]" for wqkv parts
  std::string shard;  // file holding it
  std::string dtype;  // safetensors dtype name, e.g. "BF16"
  std::vector<int64_t> shape;
  std::string stored_type;  // a GGUF tensor's ggml type ("Q8_0"; dtype is then its FP32
                            // dequantization); empty for safetensors tensors
};

enum class WeightStatus {
  kBitwiseEqual,   // same dtype, same shape, same bytes
  kValuesDiffer,   // same shape; bytes differ (statistics below)
  kDtypeDiffers,   // same shape, different dtypes; values compared in FP64 (may still be equal)
  kShapeMismatch,  // shapes differ; values not compared
};
const char* WeightStatusName(WeightStatus status);  // "bitwise_equal", "values_differ", ...

struct WeightComparison {
  std::string key;  // role and layer, e.g. "layer 3 q", "embedding"
  WeightSide a;
  WeightSide b;
  WeightStatus status = WeightStatus::kBitwiseEqual;
  // Filled for kValuesDiffer and kDtypeDiffers (FP64; NaN where a side holds NaN).
  int64_t elements = 0;
  int64_t differing_elements = 0;  // elements whose FP64 values differ (NaN != NaN counts)
  double max_abs_diff = 0.0;       // max |a - b|
  double max_abs_a = 0.0;          // max |a|
  double relative_error = 0.0;     // max |a - b| / max |a| (0 when both are 0; inf when only a is)
  double rms_diff = 0.0;           // sqrt(mean((a - b)^2))
  bool values_equal = false;       // every FP64 value equal (possible with different dtypes)
  // Why the values differ (A is the reference): set when values differ and both dtypes decode.
  std::optional<WeightExplanation> explanation;
  // When one side is a GGUF tensor (its stored_type set): the difference against the quantization
  // error its type makes, and what is wrong when it is not that (compare/quantization_check.h).
  // A tensor found as expected gets no `explanation`.
  std::optional<QuantizationCheck> gguf;
};

// A tensor present on one side with no counterpart on the other.
struct UnmatchedTensor {
  WeightSide side;
  std::string reason;  // e.g. "not in the internlm2 tensor table", "no counterpart in B"
};

struct WeightDiffReport {
  std::string dir_a, dir_b;
  std::string arch_a, arch_b;  // "internlm2" / "llama"
  int64_t tensors_a = 0, tensors_b = 0;  // tensors in each checkpoint's files
  std::vector<WeightComparison> compared;  // in A's table order (embedding, layers, norm, head)
  std::vector<UnmatchedTensor> missing;     // in A, not in B
  std::vector<UnmatchedTensor> unexpected;  // in B, not in A

  int64_t Count(WeightStatus status) const;
  // True only when every compared tensor is bitwise equal and nothing is missing or unexpected.
  bool identical() const;
  // identical(), except that GGUF tensors may differ by what their stored type's quantization makes
  // (as_expected): what diff-weights' exit status says.
  bool consistent() const;
  // The comparisons whose GGUF check failed, in table order.
  std::vector<const WeightComparison*> GgufWrong() const;
  // "GGUF: 20/22 tensors as expected for their stored types (9 F32, 13 Q8_0); 2 WRONG:
  // blk.0.attn_q.weight, blk.0.attn_k.weight"; empty without a GGUF side.
  std::string GgufLine() const;
  // "24/24 tensors bitwise equal; 0 differ, 0 dtype differences, 0 shape mismatches, 0 missing,
  // 0 unexpected".
  std::string SummaryLine() const;
  // "2 of 3 differing tensors explained" (tensors whose values differ and were explained).
  std::string ExplainedLine() const;
};

// Opens both checkpoint directories (config.json + safetensors) and compares them. Throws InputError
// for unreadable checkpoints or configs; never for differences, which the report holds.
WeightDiffReport DiffWeights(const std::string& dir_a, const std::string& dir_b);

nlohmann::json WeightDiffToJson(const WeightDiffReport& report);
// Text for a terminal: one line per tensor that is not bitwise equal (every tensor when `all`), the
// unmatched ones, then the summary line. Each differing tensor's line is followed by its explanation.
std::string FormatWeightDiff(const WeightDiffReport& report, bool all = false);

}  // namespace parity::compare
