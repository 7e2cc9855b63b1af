#include "harness/decode/pipeline.h"

#include <cstdlib>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/version.h>

#define PARITY_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||         \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace parity::decode::pipeline {

OrderedWorker::OrderedWorker(size_t max_pending)
    : max_pending_(max_pending == 0 ? 1 : max_pending) {
  // The worker computes with the caller's intra-op thread count (OpenMP keeps it per thread): the
  // same reductions, chunked the same way, as on the caller's thread.
  const int threads = at::get_num_threads();
  thread_ = std::thread([this, threads] {
    at::set_num_threads(threads);
    Loop();
  });
}

OrderedWorker::~OrderedWorker() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void OrderedWorker::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    running_task_ = true;
    lock.unlock();
    std::exception_ptr error;
    try {
      task();
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    running_task_ = false;
    if (error && !error_) error_ = error;
    changed_.notify_all();
  }
}

void OrderedWorker::RethrowLocked(std::unique_lock<std::mutex>& lock) {
  if (!error_) return;
  std::exception_ptr error = error_;
  error_ = nullptr;
  lock.unlock();
  std::rethrow_exception(error);
}

void OrderedWorker::Submit(std::function<void()> task) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return queue_.size() < max_pending_ || error_; });
  RethrowLocked(lock);
  queue_.push_back(std::move(task));
  changed_.notify_all();
}

void OrderedWorker::Drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return queue_.empty() && !running_task_; });
  RethrowLocked(lock);
}

void PendingStep::Wait() const {
  // c10::Event::query is in every libtorch (synchronize is not); the wait is short, the device
  // finishes step t while the host issues step t + 1.
  while (!done->query()) std::this_thread::yield();
}

int64_t PendingStep::token() const { return host_token.data_ptr<int64_t>()[0]; }

at::Tensor DeviceArgmax(const at::Tensor& logits) {
  const at::Tensor nan = at::isnan(logits);
  const at::Tensor clean = logits.masked_fill(nan, -std::numeric_limits<double>::infinity());
  const at::Tensor best = at::argmax(clean);  // the first maximum: torch's documented tie rule
  return best.masked_fill(nan.select(0, 0), 0);
}

DeviceSide::DeviceSide(forward::CausalLM& model, int64_t capacity, GraphMode graphs)
    : model_(model),
      steps_(model, graphs),
      stream_(c10::impl::VirtualGuardImpl(model.numerics().device.type())
                  .getStreamFromGlobalPool(model.numerics().device, /*isHighPriority=*/false)) {
  cache_.capacity_hint = capacity;
  cache_.device_tokens_trusted = true;  // device ids here come from DeviceArgmax
  streams_ = PlacedStreams(model, stream_);
}

std::vector<c10::Stream> DeviceSide::PlacedStreams(const forward::CausalLM& model,
                                                   c10::Stream first) {
  // One stream per physical device. A device named without an index ("cuda", as `--device cuda`
  // gives) is the current device, as the pool resolved it for `first`: compared by name it would
  // get a second stream of its own, which MultiStreamGuard would make current and the step's
  // event would be recorded on (an idle stream: the host would read the logits before the copy).
  std::vector<c10::Stream> streams = {first};
  c10::impl::VirtualGuardImpl guard(first.device_type());
  for (const c10::Device& named : model.devices()) {
    const c10::Device device = named.has_index() ? named : guard.getDevice();
    bool known = false;
    for (const c10::Stream& stream : streams) known = known || stream.device() == device;
    if (!known) streams.push_back(guard.getStreamFromGlobalPool(device, /*isHighPriority=*/false));
  }
  return streams;
}

std::pair<at::Tensor, at::Tensor> DeviceSide::HostBuffers() {
  // use_count 1: only the pool holds the pair (a holder that let go cannot take it back), so no
  // reader is left; a copy still in flight into it is ordered before the next one on this stream.
  for (const auto& pair : host_) {
    if (pair.first.use_count() == 1 && pair.second.use_count() == 1) return pair;
  }
  const auto pinned = at::TensorOptions().device(at::kCPU).pinned_memory(true);
  const int64_t vocab = model_.config().vocab_size;
  host_.emplace_back(at::empty({vocab}, pinned.dtype(model_.numerics().logits_type)),
                     at::empty({1}, pinned.dtype(at::kLong)));
  return host_.back();
}

PendingStep DeviceSide::Launch(const at::Tensor& tokens, const PendingStep* producer) {
  // The host buffers are ordinary tensors (callbacks may do anything with them); everything else
  // lives in inference mode, which spares each op the autograd and version-counter bookkeeping.
  PendingStep step;
  std::tie(step.host_logits, step.host_token) = HostBuffers();
  c10::InferenceMode inference;
  // A placed model's later stages run on this side's streams of their devices (one per device:
  // the guard restores them in its own order, so two streams of one device would leave one
  // current after it). A model on one device takes the one-stream path below alone.
  std::optional<c10::MultiStreamGuard> placed;
  if (streams_.size() > 1) placed.emplace(streams_);
  c10::StreamGuard guard(stream_);
  at::Tensor input = tokens;
  if (producer != nullptr && !tokens.device().is_cpu()) {
    if (producer->stream != stream_) {
      producer->done->block(stream_);
      // The producer's allocation must outlive this stream's use of it.
      c10::impl::VirtualGuardImpl(stream_.device_type())
          .recordDataPtrOnStream(tokens.storage().data_ptr(), stream_);
    }
    if (tokens.device() != model_.numerics().device) {
      input = tokens.to(model_.numerics().device, /*non_blocking=*/true);
    }
  }
  const StepOutput out = steps_.Step(input, cache_);  // Forward, or its recorded pieces
  at::Tensor last = out.logits.select(0, 0).select(0, out.logits.size(1) - 1);
  step.stream = stream_;  // the stream of the device the logits are on (stream_ unless placed)
  for (const c10::Stream& stream : streams_) {
    if (stream.device() == last.device()) {
      step.stream = stream;
      break;
    }
  }
  // A replayed step's token lives in a graph buffer that this side's next step overwrites, while
  // the other side may still read it (teacher forcing): hand out a copy.
  step.device_token = out.from_graph ? out.token.clone() : out.token;
  step.host_logits.copy_(last, /*non_blocking=*/true);
  step.host_token.copy_(step.device_token.view({1}), /*non_blocking=*/true);
  step.done = std::make_shared<c10::Event>(stream_.device_type());
  step.done->record(step.stream);
  return step;
}

bool SetFillUninitializedMemory(bool fill) {
#if PARITY_TORCH_AT_LEAST(2, 1)
  at::globalContext().setDeterministicFillUninitializedMemory(fill);
  return true;
#else
  (void)fill;
  return false;
#endif
}

bool FillsUninitializedMemory() {
#if PARITY_TORCH_AT_LEAST(2, 1)
  return at::globalContext().deterministicFillUninitializedMemory();
#else
  return false;
#endif
}

void UseRunDeterminism() {
  // Deterministic kernels where libtorch has a choice; warn-only, so an op without a deterministic
  // variant still runs. cuBLAS is deterministic only with a fixed workspace (set before its first
  // use; an explicit setting by the user wins).
  ::setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", 0);
  at::globalContext().setDeterministicAlgorithms(true, true);
  SetFillUninitializedMemory(false);
}

}  // namespace parity::decode::pipeline
