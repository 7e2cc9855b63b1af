// Comparing a pair where one side (or both) is recorded (compare/recorded_side.h): the recorded side
// replays its stream and the model side runs alone, through the decode-alone path
// (decode::DecodeAlone / FollowAlone), never the lockstep loop:
//   free            the model decodes greedily on its own; the steps are compared while both sides
//                   read the same tokens (as the one-side-after-the-other path does). A recorded side
//                   must then be a free-mode trace (its tokens are its own choices).
//   teacher_forced  the recorded side is the teacher: the model reads the trace's tokens
//                   (FollowAlone), every step compares the two on the same context.
// Full logits on both sides: every metric and the usual verdict (compare/verdict.h), whose evidence
// then comes from this run's own noise only (a recorded side has no FP64 oracle and no second
// precision), which its reason says. Top-k on a side: the metrics top-k allows (top-1 and its first
// divergence, top-k overlap, the other's rank within K, log-prob differences on the ids both list,
// margins), the rest null and named in Run::unavailable_metrics with the reason.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "harness/compare/recorded_side.h"
#include "harness/compare/suite.h"
#include "harness/decode/greedy.h"
#include "harness/forward/causal_lm.h"

namespace parity::compare {

// One side of one prompt, decoded or replayed.
struct SideSteps {
  std::vector<int64_t> tokens;     // the side's choice per step (argmax; top-k: the first id)
  std::vector<at::Tensor> logits;  // [V] per step (full logits); empty for a top-k side
  at::Tensor topk_ids;             // [T, K] I64 for a top-k side, most likely first
  at::Tensor topk_logprobs;        // [T, K] F32
  bool topk() const { return topk_ids.defined(); }
};

// A recorded prompt as a side, at most `max_steps` steps: free traces choose their recorded tokens,
// teacher-forced ones the argmax of their logits (top-k: the first listed id).
SideSteps ReplaySide(const io::Trace& trace, const io::TracePrompt& prompt, int64_t max_steps);

// Step metrics and the first divergence of two sides of which at least one is top-k (see above).
// `depth`: decoder layers of the model side (0 when unknown).
RunOutcome MeasureTopkPair(const SideSteps& a, const SideSteps& b, int64_t depth,
                           const RunRequest& request, const TextDecoder& text);

struct RecordedPairInputs {
  const RecordedSide* a = nullptr;  // null: side A is a model
  const RecordedSide* b = nullptr;
  // Loads the model of a model side (true: side A). Called at most once, after the checks.
  std::function<forward::CausalLM&(bool a_side)> model;
  int64_t depth = 0;                // the model side's decoder layers (0: both recorded)
  uint64_t seed = 0;
};

// Checks that the mode and teacher suit the recorded sides and that every request's prompt is one
// the recorded sides hold; throws InputError naming the side and what to change.
void CheckRecordedPair(const RecordedPairInputs& in, const std::vector<RunRequest>& requests);

// Runs every request of the pair (see above); requests' precision of a recorded side is replaced by
// its trace's (or the other side's when the trace does not say, which the evidence then says).
std::vector<RunOutcome> RunRecordedPair(const RecordedPairInputs& in,
                                        const std::vector<RunRequest>& requests,
                                        const TextDecoder& text);

}  // namespace parity::compare
