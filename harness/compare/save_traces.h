// --save-traces and --save-kld-base: each model side of a pair written as a logit trace
// (reports/TRACES.md) and/or a llama.cpp KL-divergence base file, from the logits the comparison
// kept, into the run's output directory:
//   OUT/traces/<model>@<precision>/            a side that chose its own tokens (free mode, or the
//                                              teacher of a teacher-forced pair)
//   OUT/traces/<model>@<precision>.on.<teacher>/  a teacher-forced follower (it read <teacher>'s
//                                              stream; its logits depend on it)
//   OUT/kld-base/<same name>.kld              the same logits in llama-perplexity's base format
// A side that appears in several pairs with the same name is written once (greedy decoding of a side
// does not depend on its partner). Recorded sides are not written again. A side's steps after its
// partner stopped (EOS) are not kept by the comparison and so not in its trace.
//
// KLD-base layout: one chunk per prompt, n_ctx = 2 (P - 1) for prompts of P tokens, so that the
// scored positions n_ctx/2 .. n_ctx-2 are the first P - 2 decode steps; every prompt must have the
// same length P >= 3 and max_new_tokens >= P - 2 (CheckKldBaseRequest says so before any work).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "harness/compare/case.h"
#include "harness/compare/suite.h"

namespace parity::compare {

struct SaveRequest {
  std::string out_dir;      // the run's output directory
  bool traces = false;      // --save-traces: OUT/traces/...
  bool kld_base = false;    // --save-kld-base: OUT/kld-base/...
};

// Throws InputError unless every included prompt has the same length P >= 3 and max_new_tokens >=
// P - 2 (see above). `prompts`: the included prompts' token ids.
void CheckKldBaseRequest(const std::vector<std::vector<int64_t>>& prompts, int64_t max_new_tokens);

// Writes the model sides of one pair's outcomes (requests[r] belongs to outcomes[r]; outcomes need
// logits_a/b, RunRequest::keep_logits). `model_path(side_label)` gives a model's checkpoint path for
// the producer; `recorded_a/b` skip recorded sides. Names already in `written` are skipped and new
// ones added. Returns the entries for Summary::traces.
std::vector<SavedTrace> SavePairTraces(const SaveRequest& save, const Case& c,
                                       const CasePair& case_pair, const Pair& pair,
                                       const std::vector<RunRequest>& requests,
                                       const std::vector<RunOutcome>& outcomes,
                                       const std::string& path_a, const std::string& path_b,
                                       bool recorded_a, bool recorded_b,
                                       std::set<std::string>& written);

}  // namespace parity::compare
