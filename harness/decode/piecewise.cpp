#include "harness/decode/piecewise.h"

#include <ATen/ATen.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <fmt/format.h>

#include "harness/core/error.h"
#include "harness/decode/pipeline.h"
#include "harness/forward/numerics.h"

namespace parity::decode {
namespace {

GraphRecorderFactory& Factory() {
  static GraphRecorderFactory factory = nullptr;
  return factory;
}

}  // namespace

const char* GraphModeName(GraphMode mode) {
  switch (mode) {
    case GraphMode::kAuto: return "auto";
    case GraphMode::kOff: return "off";
    case GraphMode::kPieces: return "pieces";
  }
  return "?";
}

GraphMode ParseGraphMode(const std::string& text) {
  if (text == "auto" || text == "on") return GraphMode::kAuto;
  if (text == "off") return GraphMode::kOff;
  if (text == "pieces") return GraphMode::kPieces;
  throw InputError(fmt::format("graphs: expected \"auto\", \"on\", \"off\" or \"pieces\", got \"{}\"",
                               text));
}

bool RegisterGraphRecorder(GraphRecorderFactory factory) {
  Factory() = factory;
  return true;
}

bool GraphsBuilt() { return Factory() != nullptr; }

const char* StepPathName(StepPath path) {
  switch (path) {
    case StepPath::kForward: return "forward";
    case StepPath::kPiecesEager: return "pieces_eager";
    case StepPath::kRecord: return "record";
    case StepPath::kReplay: return "replay";
  }
  return "?";
}

StepPlan PlanStep(const PlanInput& in) {
  auto forward = [](std::string why) { return StepPlan{StepPath::kForward, std::move(why)}; };
  if (in.mode == GraphMode::kOff) return forward("cuda graphs: off");
  if (in.batch != 1 || in.length != 1 || in.masked) return forward("");  // prefill: always eager
  if (!in.static_cache) return forward("eager: growing KV cache");
  if (!in.splittable) return forward("eager: the model has no step pieces");
  if (!in.blocker.empty()) return forward("eager: " + in.blocker);
  if (in.mode == GraphMode::kPieces) return {StepPath::kPiecesEager, ""};
  if (!in.cuda) return forward("eager: cpu");
  if (!in.built) return forward("cuda graphs: not built");
  if (!in.failed.empty()) return forward("eager: recording failed: " + in.failed);
  if (in.recorded) return {StepPath::kReplay, ""};
  if (in.one_token_steps == 0) return {StepPath::kPiecesEager, ""};  // warm-up
  return {StepPath::kRecord, ""};
}

PiecewiseStep::PiecewiseStep(forward::CausalLM& model, GraphMode mode)
    : model_(model), mode_(mode) {}

PiecewiseStep::~PiecewiseStep() = default;

int64_t PiecewiseStep::pieces_per_step() const { return static_cast<int64_t>(graphs_.size()); }

std::string PiecewiseStep::Status() const {
  if (!graphs_.empty()) {
    return fmt::format("cuda graphs: on ({} pieces per step, recorded at one-token step {}, {} "
                       "replays)", graphs_.size(), recorded_at_, replays_);
  }
  if (!why_eager_.empty()) return why_eager_;
  if (mode_ == GraphMode::kPieces) return "eager: pieces (graphs not recorded in this mode)";
  if (mode_ == GraphMode::kOff) return "cuda graphs: off";
  if (model_.numerics().device.is_cpu()) return "eager: cpu";
  if (!GraphsBuilt()) return "cuda graphs: not built";
  return "eager: no one-token step recorded yet";
}

void PiecewiseStep::Piece(int64_t index, forward::StepPieces& pieces) {
  const int64_t layers = pieces.num_layers();
  const at::Tensor hidden =
      index == 0 ? pieces.Embed(tokens_)
                 : pieces.PostAttention(index - 1, residual_[index - 1], attention_[index - 1],
                                        nullptr);
  if (index < layers) {
    residual_[index] = pieces.PreAttention(index, hidden, forward::CosSin{cos_, sin_}, qkv_[index]);
    return;
  }
  logits_ = pieces.Head(hidden, nullptr);
  token_ = pipeline::DeviceArgmax(logits_.select(0, 0).select(0, logits_.size(1) - 1)).view({1, 1});
}

StepOutput PiecewiseStep::RunPieces(const at::Tensor& tokens, forward::KVCache& cache,
                                    StepPath path) {
  forward::StepPieces& pieces = *model_.step_pieces();
  const int64_t layers = pieces.num_layers();
  const forward::StepContext context = pieces.Prepare(tokens, cache, at::Tensor());
  // Static inputs: allocated at the first piecewise step, refilled at every step (exact copies).
  const at::Tensor ids = tokens.to(model_.numerics().device);
  if (!tokens_.defined()) {
    tokens_ = at::empty_like(ids);
    cos_ = at::empty_like(context.rotary.cos);
    sin_ = at::empty_like(context.rotary.sin);
    attention_.assign(layers, at::Tensor());
    residual_.assign(layers, at::Tensor());
    qkv_.assign(layers, forward::QueryKeyValue());
  }
  tokens_.copy_(ids);
  cos_.copy_(context.rotary.cos);
  sin_.copy_(context.rotary.sin);
  if (path == StepPath::kRecord) {
    if (!recorder_) recorder_ = Factory()(model_.numerics().device);
    graphs_.clear();
  }
  for (int64_t index = 0; index <= layers; ++index) {
    if (path == StepPath::kRecord) {
      graphs_.push_back(recorder_->Record([&] { Piece(index, pieces); }));
    }
    if (path == StepPath::kPiecesEager) {
      Piece(index, pieces);
    } else {
      graphs_[index]->Replay();
    }
    if (index == layers) break;
    const at::Tensor attention = pieces.Attend(index, qkv_[index], cache, context);
    if (!attention_[index].defined()) attention_[index] = at::empty_like(attention);
    attention_[index].copy_(attention);
  }
  pieces.Finish(cache, context);
  return {logits_, token_, path != StepPath::kPiecesEager};
}

StepOutput PiecewiseStep::Step(const at::Tensor& tokens, forward::KVCache& cache) {
  forward::StepPieces* pieces = model_.step_pieces();
  PlanInput in;
  in.mode = mode_;
  in.cuda = model_.numerics().device.is_cuda();
  in.built = GraphsBuilt();
  in.batch = tokens.dim() == 2 ? tokens.size(0) : 0;
  in.length = tokens.dim() == 2 ? tokens.size(1) : 0;
  in.static_cache = cache.layout == forward::KVCache::Layout::kStatic;
  in.splittable = pieces != nullptr;
  if (pieces != nullptr) in.blocker = pieces->RecordBlocker();
  in.failed = failed_;
  in.one_token_steps = one_token_steps_;
  in.recorded = !graphs_.empty();
  const StepPlan plan = PlanStep(in);
  if (in.length == 1 && in.batch == 1) ++one_token_steps_;
  if (plan.path == StepPath::kForward) {
    if (!plan.why.empty()) why_eager_ = plan.why;
    const at::Tensor logits = model_.Forward(tokens, cache);
    const at::Tensor token =
        pipeline::DeviceArgmax(logits.select(0, 0).select(0, logits.size(1) - 1)).view({1, 1});
    return {logits, token, false};
  }
  // What Forward holds while it runs.
  at::AutoDispatchBelowADInplaceOrView no_autograd;
  const forward::Tf32Scope tf32(model_.numerics());
  if (plan.path == StepPath::kRecord) {
    try {
      StepOutput out = RunPieces(tokens, cache, StepPath::kRecord);
      recorded_at_ = one_token_steps_;
      return out;
    } catch (const std::exception& error) {
      // Nothing of this step is committed (the cache length moves only in Finish, the positions
      // written are rewritten): redo it eagerly and stay eager.
      failed_ = error.what();
      const size_t cut = failed_.find('\n');
      if (cut != std::string::npos) failed_.resize(cut);
      why_eager_ = "eager: recording failed: " + failed_;
      for (auto& graph : graphs_) abandoned_.push_back(std::move(graph));
      graphs_.clear();
      return RunPieces(tokens, cache, StepPath::kPiecesEager);
    }
  }
  if (plan.path == StepPath::kReplay) ++replays_;
  return RunPieces(tokens, cache, plan.path);
}

}  // namespace parity::decode
