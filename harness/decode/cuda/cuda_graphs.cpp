// The CUDA-graph recorder of decode/piecewise.h. Built only when libtorch has CUDA and the CMake
// option PARITY_CUDA_GRAPHS is on (its own object library: turning it off drops this file and
// nothing else); it registers itself during static initialisation, and without it the decode
// engine runs eagerly and reports "cuda graphs: not built".
//
// at::cuda::CUDAGraph (ATen/cuda/CUDAGraph.h), the subset that every libtorch 2.x has:
// capture_begin(pool, mode) on the current (non-default) stream, capture_end() (which also
// instantiates the graph), replay(); graph_pool_handle() for one memory pool that the pieces of a
// step share (safe because they are replayed in the order they were recorded). The capture mode is
// thread-local: the other side's host thread keeps issuing its own work (allocations, event
// queries) while this one records, but must not record events on a capturing stream: pinned host
// buffers are therefore never freed while a side decodes (decode/pipeline.h HostBuffers: that was
// the "CUDA error: invalid argument" of the first GPU runs). Recordings are also serialised
// process-wide (once per model: no measurable cost), so two captures never share the caching
// allocator's capture bookkeeping.
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include "harness/decode/piecewise.h"

namespace parity::decode {
namespace {

class CudaPiece final : public RecordedPiece {
 public:
  at::cuda::CUDAGraph graph;
  void Replay() override { graph.replay(); }
};

class CudaRecorder final : public GraphRecorder {
 public:
  std::unique_ptr<RecordedPiece> Record(const std::function<void()>& body) override {
    const c10::cuda::CUDAStream stream = c10::cuda::getCurrentCUDAStream();
    if (stream == c10::cuda::getDefaultCUDAStream(stream.device_index())) {
      throw std::runtime_error("CUDA graphs are recorded on a non-default stream");
    }
    static std::mutex recording;
    const std::lock_guard<std::mutex> one_at_a_time(recording);
    auto piece = std::make_unique<CudaPiece>();
    piece->graph.capture_begin(pool_, cudaStreamCaptureModeThreadLocal);
    try {
      body();
    } catch (...) {
      try {
        piece->graph.capture_end();  // leaves capture mode; the graph is invalid anyway
      } catch (...) {
      }
      (void)cudaGetLastError();  // the capture error is not the next kernel's
      throw;
    }
    piece->graph.capture_end();
    return piece;
  }

 private:
  decltype(at::cuda::graph_pool_handle()) pool_ = at::cuda::graph_pool_handle();
};

std::unique_ptr<GraphRecorder> MakeCudaRecorder(c10::Device) {
  return std::make_unique<CudaRecorder>();
}

const bool registered = RegisterGraphRecorder(&MakeCudaRecorder);

}  // namespace
}  // namespace parity::decode
