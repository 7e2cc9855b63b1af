// The device side of lockstep decoding on an accelerator (CUDA): each model's step is issued on a
// stream of its own from a host thread of its own, the next token is chosen on the device (the same
// lowest-index argmax as GreedyArgmax) and fed to the next step without a round trip through the
// host, and the [V] logits travel back asynchronously into pinned host buffers while the device
// already runs the next step. The host reads a step's token and logits only after the device
// finished that step (an event), and runs the per-step callback (metrics) on a worker thread, in
// step order. Greedy decoding of a side never depends on the other side or on the callback, so the
// result is the synchronous loop's, token for token and bit for bit (parity bench --check tests it
// on the device; on the CPU RunLockstep keeps its synchronous loop).
//
// The price: a side's step t + 1 is issued before the host knows whether token t was an EOS; when
// it was, step t + 1 is discarded (one wasted step at the end of a finished side).
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <ATen/Tensor.h>
#include <c10/core/Event.h>
#include <c10/core/Stream.h>

#include "harness/decode/piecewise.h"
#include "harness/forward/causal_lm.h"

namespace parity::decode::pipeline {

// One thread running tasks in submission order. Submit blocks while `max_pending` tasks wait, so a
// slow consumer holds back the producer instead of piling up pinned buffers. The first exception
// a task throws is kept and rethrown by the next Submit or by Drain; later tasks still run.
class OrderedWorker {
 public:
  explicit OrderedWorker(size_t max_pending = 4);
  ~OrderedWorker();  // finishes the queued tasks (their exceptions are dropped), joins
  OrderedWorker(const OrderedWorker&) = delete;
  OrderedWorker& operator=(const OrderedWorker&) = delete;

  void Submit(std::function<void()> task);
  // Waits until every submitted task ran; rethrows the first exception.
  void Drain();

 private:
  void Loop();
  void RethrowLocked(std::unique_lock<std::mutex>& lock);

  size_t max_pending_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> queue_;
  bool running_task_ = false;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

// One side's step on its way to the host.
struct PendingStep {
  at::Tensor device_token;        // [1, 1] int64 on the device: the argmax, to feed the next step
  at::Tensor host_logits;         // [V] pinned host memory (Forward's logits dtype)
  at::Tensor host_token;          // [1] int64 pinned host memory
  std::shared_ptr<c10::Event> done;  // recorded after both copies
  c10::Stream stream = c10::Stream(c10::Stream::DEFAULT, c10::Device(c10::kCPU));

  // Blocks the host until the device finished this step; then host_logits/host_token are valid.
  void Wait() const;
  int64_t token() const;  // after Wait
};

// One model with its KV cache and its stream (one per device when its layers are placed over
// several: forward/placement.h; each stage then runs on its side's stream of its device, so two
// sides on different devices never share one).
class DeviceSide {
 public:
  // `capacity`: positions the static KV cache is allocated for (prompt + new tokens). `graphs`:
  // how one-token steps run (decode/piecewise.h; kAuto, the default as in GreedyOptions: CUDA
  // graphs where the build and the model allow, else Forward; kOff: Forward).
  DeviceSide(forward::CausalLM& model, int64_t capacity, GraphMode graphs = GraphMode::kAuto);

  // Issues a forward over `tokens` ([1, T] int64: the prompt on the CPU, or a previous step's
  // device_token, whose producing step `producer` this side's stream then waits for), the argmax
  // of the last position's logits and both copies to the host, on this side's stream; returns
  // without waiting for the device.
  PendingStep Launch(const at::Tensor& tokens, const PendingStep* producer = nullptr);

  const PiecewiseStep& steps() const { return steps_; }

 private:
  // `first` and a stream from the pool for each further device of `model` (placement.h), in
  // the model's device order.
  static std::vector<c10::Stream> PlacedStreams(const forward::CausalLM& model, c10::Stream first);
  // A step's pinned host logits [V] and token [1]: a pair no one else holds any more, or a new one.
  // Pinned buffers are reused and freed only with the side, never while it decodes: freeing one makes
  // libtorch's host allocator record an event on every stream that used it, from whichever thread
  // drops the last reference (a callback worker); if that stream is recording a CUDA graph at that
  // moment, the event joins the capture and the run fails ("CUDA error: invalid argument" on the
  // H200, 2026-11-28, only with two sides recording while callbacks ran).
  std::pair<at::Tensor, at::Tensor> HostBuffers();

  forward::CausalLM& model_;
  forward::KVCache cache_;
  PiecewiseStep steps_;
  c10::Stream stream_;                 // on the first device: the step is issued here
  std::vector<c10::Stream> streams_;   // one per device of the model, stream_ first
  std::vector<std::pair<at::Tensor, at::Tensor>> host_;  // HostBuffers' pool (pinned logits, token)
};

// The greedy token of `logits` [V] on its device, as GreedyArgmax chooses it: NaN entries never
// win, ties go to the lowest index, and a NaN at index 0 gives 0 (GreedyArgmax's strict `>` never
// leaves index 0 then). Returns a 0-dim int64 tensor on the device, without synchronising.
at::Tensor DeviceArgmax(const at::Tensor& logits);

// Whether deterministic mode fills uninitialized memory (NaN for floats) at every allocation: a
// fill kernel per new tensor, so roughly one extra kernel per op of a step. No op of a forward pass
// reads memory it has not written (parity bench --check compares the logits with the fill on and
// off), so runs turn it off where libtorch has the switch (2.1 and later). Returns false where the
// switch does not exist (the fill does not exist there either).
bool SetFillUninitializedMemory(bool fill);
bool FillsUninitializedMemory();  // the switch's state (it acts only in deterministic mode)
// What a run uses (compare/suite.cpp RunCase, parity bench): deterministic algorithms (warn only),
// cuBLAS's fixed workspace unless the user set one, no uninitialized-memory fill.
void UseRunDeterminism();

}  // namespace parity::decode::pipeline
