// Lockstep greedy decoding of two causal LMs on the same prompt, one token per step each, with KV
// caches, handing both models' next-token logits to a callback at every step. Greedy decoding uses no
// randomness; ties in the argmax go to the lowest index (as torch.argmax).
//
// Free mode: each model appends its own argmax. Before the first divergence both read the same
// tokens; after it their contexts differ and the step logits compare two different prefixes
// (`same_context` false). Teacher-forced mode: both read the same stream, the greedy output of the
// teacher side, so every step compares the two models on identical contexts.
//
// EOS: a side that emits an EOS id is finished (the EOS id is its last token). Free mode: steps are
// compared while both are live; when one finishes first, the other continues alone (no callback, no
// comparison) until it emits EOS or reaches max_new_tokens, so both outputs are complete.
// Teacher-forced: the stream ends when the teacher emits EOS.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "harness/decode/piecewise.h"
#include "harness/forward/causal_lm.h"

namespace parity::decode {

enum class GreedyMode { kFree, kTeacherForced };
const char* GreedyModeName(GreedyMode mode);  // "free", "teacher_forced"
// Parses "free" / "teacher_forced"; throws InputError naming the text otherwise.
GreedyMode ParseGreedyMode(const std::string& text);

struct GreedyOptions {
  GreedyMode mode = GreedyMode::kFree;
  int64_t max_new_tokens = 32;  // upper bound on steps, >= 0
  std::vector<int64_t> eos_ids; // a side emitting any of these is finished; empty: never
  bool teacher_is_a = true;     // teacher-forced: whose greedy stream both read
  // Both models on an accelerator: the pipelined loop of decode/pipeline.h (device argmax, async
  // logits, two streams, callbacks on a worker thread). false, or on the CPU: the synchronous loop,
  // the reference the pipelined one is tested against (same tokens, same logits bit for bit).
  bool pipelined = true;
  // Pipelined: how one-token steps run (decode/piecewise.h): CUDA graphs of the pieces between
  // attentions where the build and the model allow, else Forward (kAuto, the default: bitwise
  // Forward's logits, `parity bench --check`; 2.6x faster on the H200, reports/SPEED.md), Forward
  // (kOff: a case's "cuda_graphs": "off", `--cuda-graphs off`), or the pieces eagerly (kPieces).
  // The CPU and the synchronous loop never record ("eager: cpu").
  GraphMode graphs = GraphMode::kAuto;
};

// What the callback sees at each compared step.
struct GreedyStep {
  int64_t step;              // 0-based decode step
  int64_t position;          // sequence index of the predicted token: prompt length + step
  bool same_context;         // both read identical tokens so far
  const at::Tensor& logits_a;  // [V] on the CPU: A's next-token logits, as Forward returns them
                               // (FP32; FP64 for FP64 runs)
  const at::Tensor& logits_b;  // [V] on the CPU
  int64_t token_a;           // argmax of logits_a (lowest index on ties)
  int64_t token_b;
};
using GreedyCallback = std::function<void(const GreedyStep&)>;

struct GreedyResult {
  std::vector<int64_t> tokens_a;  // A's argmax per step (teacher-forced with teacher A: the stream)
  std::vector<int64_t> tokens_b;  // B's argmax per step (free: B's own continuation)
  std::vector<int64_t> input_a;   // tokens A read after the prompt, in order (its stream)
  std::vector<int64_t> input_b;   // tokens B read after the prompt
  int64_t compared_steps = 0;     // steps handed to the callback
  std::vector<bool> same_context; // per compared step
  // How each side's one-token steps ran: PiecewiseStep::Status() of the pipelined loop ("cuda
  // graphs: on (...)", "cuda graphs: not built", "eager: cpu", ...), or "eager: synchronous loop".
  std::string engine_a, engine_b;
};

// Runs the two models in lockstep on `prompt` (non-empty). Throws InputError when the prompt is
// empty or the vocabularies differ. Pipelined (see GreedyOptions), `on_step` runs on a worker
// thread, in step order, while the device computes the next step; RunLockstep returns after the
// last callback. The callback must not touch the models.
GreedyResult RunLockstep(forward::CausalLM& model_a, forward::CausalLM& model_b,
                         const std::vector<int64_t>& prompt, const GreedyOptions& options,
                         const GreedyCallback& on_step = nullptr);

// One side of a pair decoded alone (the pair need not fit in memory together): its argmax per step
// and its [V] logits per step (CPU).
struct SideRun {
  std::vector<int64_t> tokens;
  std::vector<at::Tensor> logits;
};
// Free mode, or the teacher of a teacher-forced pair: `model` greedy on its own output, up to
// max_new_tokens steps, stopping after an EOS id.
SideRun DecodeAlone(forward::CausalLM& model, const std::vector<int64_t>& prompt,
                    const GreedyOptions& options);
// The follower of a teacher-forced pair: `model` reads `teacher.tokens` (one forward over the
// sequence), its argmax and logits at each of the teacher's steps.
SideRun FollowAlone(forward::CausalLM& model, const std::vector<int64_t>& prompt,
                    const SideRun& teacher);
// The comparison RunLockstep would have made from two sides decoded alone (same steps, same
// same_context flags, same streams, same callbacks): greedy decoding of one side never depends on
// the other, so lockstep is needed only to save the logits' memory.
GreedyResult CompareDecoded(const SideRun& a, const SideRun& b, const std::vector<int64_t>& prompt,
                            const GreedyOptions& options, const GreedyCallback& on_step = nullptr);

// One model teacher-forced on `prompt` followed by `stream`: the next-token logits at each of the
// first `steps` steps (step t has read prompt + stream[0..t-1]; steps <= stream.size() + 1).
// Returns [steps, V] in the logits' dtype, on the CPU.
at::Tensor TeacherForcedLogits(forward::CausalLM& model, const std::vector<int64_t>& prompt,
                               const std::vector<int64_t>& stream, int64_t steps);

// Argmax of a [V] tensor, lowest index on ties, computed without relying on the kernel's tie rule.
int64_t GreedyArgmax(const at::Tensor& logits);

}  // namespace parity::decode
