// A one-token decode step run piecewise (forward/step_pieces.h) and, on CUDA, recorded as CUDA
// graphs: the L + 1 pieces between attentions (embedding + layer 0 up to attention; per layer the
// output projection, residual, norm, MLP, residual and the next layer up to attention; last, the
// final norm, LM head, logits cast and the device argmax) are each recorded once and replayed at
// every later step; attention over the live slice of the KV cache (the in-place cache write and
// the attention kernel, whose key length grows every step) and the step's host-side preparation
// (attention inputs, rotary cos/sin) run eagerly between them, as vLLM's piecewise graphs do.
//
// Why the logits are bitwise those of Forward: Forward is made of the same pieces (Decoder::Forward
// calls them in order), and a graph replays the very kernels, with the very shapes and arguments,
// that the recorded piece issued. The pieces read only buffers whose addresses never change: the
// token ids, rotary cos/sin and attention outputs are copied into static buffers (copies are
// exact), and each piece's outputs are the next one's inputs. The KV cache is touched only by the
// eager part, so its growth (doubling) never invalidates a graph. Per-layer dtypes of a precision
// policy are recorded as they run (each model records its own graphs).
//
// The plan for a call (PlanStep, host logic only, unit-tested on the CPU):
//   Forward        graphs off, prefill (T > 1), batch > 1, a padding mask, a growing cache, a
//                  model that cannot be split (MoE routing), the CPU, a build without the CUDA
//                  graph translation unit (PARITY_CUDA_GRAPHS=OFF), or after a failed recording;
//   pieces eager   the first one-token step (warm-up: lazy initialisation, cuBLAS workspaces on
//                  this stream), and every step in GraphMode::kPieces (the split tested anywhere);
//   record         the second one-token step: each piece recorded, then replayed;
//   replay         every later step.
// A recording that fails (an op that synchronises inside a piece) is reported, the step is redone
// eagerly and the model stays eager.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include "harness/forward/causal_lm.h"
#include "harness/forward/step_pieces.h"

namespace parity::decode {

enum class GraphMode {
  kAuto,    // CUDA graphs where the build has them and the step can be recorded, else eager
  kOff,     // Forward, eagerly: the reference
  kPieces,  // the piecewise step without recording, on any device: tests the split itself
};
const char* GraphModeName(GraphMode mode);  // "auto", "off", "pieces"
// "auto" (or "on"), "off", "pieces"; InputError naming the text otherwise.
GraphMode ParseGraphMode(const std::string& text);

// The recording backend, registered by harness/decode/cuda/ when the build has CUDA graphs.
class RecordedPiece {
 public:
  virtual ~RecordedPiece() = default;
  virtual void Replay() = 0;  // on the current stream
};
class GraphRecorder {
 public:
  virtual ~GraphRecorder() = default;
  // Records the device work `body` issues on the current stream as one graph (sharing this
  // recorder's memory pool with its earlier graphs: replay them in recording order). The work is
  // not executed. Throws when the work cannot be recorded (the stream is left usable).
  virtual std::unique_ptr<RecordedPiece> Record(const std::function<void()>& body) = 0;
};
using GraphRecorderFactory = std::unique_ptr<GraphRecorder> (*)(c10::Device device);
bool RegisterGraphRecorder(GraphRecorderFactory factory);  // returns true (for static init)
bool GraphsBuilt();  // whether a recorder is registered

enum class StepPath { kForward, kPiecesEager, kRecord, kReplay };
const char* StepPathName(StepPath path);

struct PlanInput {
  GraphMode mode = GraphMode::kAuto;
  bool cuda = false;                   // the model's device is CUDA
  bool built = false;                  // GraphsBuilt()
  int64_t batch = 1, length = 1;       // tokens [B, T]
  bool masked = false;                 // an attention mask was given
  bool static_cache = true;            // KVCache::Layout::kStatic
  bool splittable = true;              // the model has StepPieces
  std::string blocker;                 // StepPieces::RecordBlocker()
  std::string failed;                  // why an earlier recording failed ("" none)
  int64_t one_token_steps = 0;         // one-token steps this side ran before
  bool recorded = false;               // graphs exist
};
struct StepPlan {
  StepPath path = StepPath::kForward;
  std::string why;  // for kForward: the reason graphs are not used ("" for a prefill)
};
StepPlan PlanStep(const PlanInput& input);

// What a step produced on the device.
struct StepOutput {
  at::Tensor logits;  // [1, T, V] (Forward's shape and dtype); after a replay, a graph buffer that
                      // the next step overwrites (copy it first, on this stream)
  at::Tensor token;   // [1, 1] int64: the argmax of the last position (DeviceArgmax); after a
                      // replay also a graph buffer
  bool from_graph = false;
};

// One model's steps (one per side: its own buffers and graphs). Not thread-safe; each step runs
// on the caller's current stream (record and replay on one non-default stream).
class PiecewiseStep {
 public:
  PiecewiseStep(forward::CausalLM& model, GraphMode mode);
  ~PiecewiseStep();
  PiecewiseStep(const PiecewiseStep&) = delete;
  PiecewiseStep& operator=(const PiecewiseStep&) = delete;

  StepOutput Step(const at::Tensor& tokens, forward::KVCache& cache);

  // "cuda graphs: on (33 pieces per step, recorded at one-token step 2, 126 replays)",
  // "cuda graphs: not built", "cuda graphs: off", "eager: cpu", "eager: <why>".
  std::string Status() const;
  bool graphs_on() const { return !graphs_.empty(); }
  int64_t pieces_per_step() const;  // graph launches per replayed step (L + 1)
  int64_t replays() const { return replays_; }

 private:
  void Piece(int64_t index, forward::StepPieces& pieces);
  StepOutput RunPieces(const at::Tensor& tokens, forward::KVCache& cache, StepPath path);

  forward::CausalLM& model_;
  GraphMode mode_;
  std::string why_eager_;  // the last kForward reason of a one-token step
  std::string failed_;
  int64_t one_token_steps_ = 0;
  int64_t recorded_at_ = 0;
  int64_t replays_ = 0;
  std::unique_ptr<GraphRecorder> recorder_;
  std::vector<std::unique_ptr<RecordedPiece>> graphs_;
  std::vector<std::unique_ptr<RecordedPiece>> abandoned_;  // of a failed recording (kept alive)
  // Static inputs (addresses fixed once allocated) and the pieces' outputs.
  at::Tensor tokens_, cos_, sin_;
  std::vector<at::Tensor> attention_;  // [1, H, 1, d] per layer
  std::vector<at::Tensor> residual_;   // per layer, PreAttention's result
  std::vector<forward::QueryKeyValue> qkv_;
  at::Tensor logits_, token_;
};

}  // namespace parity::decode
