// The decode engine's promise, checked on the machine it runs on: the fast path gives the same
// logits, bit for bit, as the reference computation it replaces. On small random models of each
// family (InternLM2's packed wqkv, Llama, Qwen2's q/k/v biases, Qwen3's q/k norms; GQA 2:1, dynamic
// rope past max_position_embeddings) at FP32 / BF16 / FP16 and a precision policy with per-layer
// dtypes (bf16+fp32:norm,lm_head,mlp[1-1], eager attention), eager attention and, where libtorch
// has it, SDPA:
//   static_cache  KVCache::kStatic (in place, repeated once, capacity grown by doubling) vs
//                 kGrowing (at::cat per step, repeat_kv per step): prompt logits at every position
//                 and 12 greedy steps, bitwise;
//   pieces        the one-token steps assembled from StepPieces (decode/piecewise.h, eagerly,
//                 through the static buffers) vs Forward: every step's logits, bitwise (on a
//                 device only with `graphs`, which is all it serves there);
//   graphs        (with `graphs`, the default as in runs) the same pieces recorded as CUDA
//                 graphs and replayed (warm-up step, recording step, 10 replays) vs Forward,
//                 bitwise; an error is a failed row; not tested where no graph ran (the CPU, a
//                 build without PARITY_CUDA_GRAPHS: the note says which);
//   pipelined     RunLockstep pipelined (device argmax, async copies, two streams, callbacks on a
//                 worker) vs synchronous, free and teacher-forced: tokens, streams and every step's
//                 logits, bitwise; with `graphs` the pipelined loop records CUDA graphs where it
//                 can (the note gives each side's engine status); on the CPU both are the
//                 synchronous loop
//                 (reported, not tested);
//   no_fill       the static-cache run with deterministic mode's uninitialized-memory fill on vs
//                 off (libtorch >= 2.1), bitwise.
// tests/engine_check_test.cpp runs it on the CPU; `parity bench --check` on the device.
#pragma once

#include <string>
#include <vector>

#include <c10/core/Device.h>

namespace parity::decode {

struct EngineCheckRow {
  std::string arch;       // "internlm2", "llama", "qwen2", "qwen3"
  std::string precision;  // "fp32", "bf16", "fp16", or a policy "bf16+fp32:norm,..."
  std::string attention;  // "eager", "sdpa"
  std::string check;      // "static_cache", "pieces", "graphs", "pipelined", "no_fill"
  bool tested = true;     // false: not applicable here (note says why); bitwise is then true
  bool bitwise = true;
  double max_abs_diff = 0;  // over every compared logit (0 when bitwise)
  int64_t compared = 0;     // logit rows compared
  std::string note;
};

// `graphs` (default, as runs decode): also the CUDA-graph rows, and the pipelined rows with graphs
// on; false (`bench --check --graphs off`): neither, the pipelined rows with graphs off.
std::vector<EngineCheckRow> CheckEngine(c10::Device device, bool graphs = true);

// "internlm2 bf16 eager static_cache: bitwise (13 rows)" or "... DIFFERS max |a-b| 0.0312 (...)".
std::string FormatEngineCheckRow(const EngineCheckRow& row);

}  // namespace parity::decode
