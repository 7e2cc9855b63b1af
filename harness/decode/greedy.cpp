#include "harness/decode/greedy.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "harness/core/error.h"
#include "harness/core/interrupt.h"
#include "harness/decode/pipeline.h"

namespace parity::decode {
namespace {

// [1, T] int64 on the CPU: Forward checks CPU ids on the host and moves them to its device.
at::Tensor TokensTensor(const std::vector<int64_t>& ids, const forward::CausalLM&) {
  return at::tensor(at::ArrayRef<int64_t>(ids), at::kLong).view({1, -1});
}

// Next-token logits after feeding `ids`: the last position of Forward's [1, T, V] output, as a [V]
// FP32 CPU tensor.
at::Tensor Feed(forward::CausalLM& model, const std::vector<int64_t>& ids, forward::KVCache& cache) {
  at::Tensor logits = model.Forward(TokensTensor(ids, model), cache);
  TORCH_CHECK(logits.dim() == 3 && logits.size(0) == 1, "Forward returned logits of shape ",
              logits.sizes(), ", expected [1, T, V]");
  return logits.select(0, 0).select(0, logits.size(1) - 1).to(at::kCPU).contiguous();
}

bool IsEos(int64_t token, const std::vector<int64_t>& eos_ids) {
  return std::find(eos_ids.begin(), eos_ids.end(), token) != eos_ids.end();
}

void CheckInputs(const forward::CausalLM& a, const forward::CausalLM& b,
                 const std::vector<int64_t>& prompt, const GreedyOptions& options) {
  if (prompt.empty()) throw InputError("greedy decoding needs a prompt of at least one token");
  if (options.max_new_tokens < 0) {
    throw InputError(fmt::format("max_new_tokens: expected >= 0, got {}", options.max_new_tokens));
  }
  if (a.config().vocab_size != b.config().vocab_size) {
    throw InputError(fmt::format("the two models have different vocabularies ({} and {} tokens)",
                                 a.config().vocab_size, b.config().vocab_size));
  }
}

// RunLockstep on an accelerator (decode/pipeline.h): the same decisions as the synchronous loop
// below, made on the host from each step's token once the device finished it, while the device
// already runs the next step (issued speculatively from the device argmax; discarded when the
// token turns out to end the side).
GreedyResult RunLockstepPipelined(forward::CausalLM& model_a, forward::CausalLM& model_b,
                                  const std::vector<int64_t>& prompt, const GreedyOptions& options,
                                  const GreedyCallback& on_step) {
  using pipeline::PendingStep;
  GreedyResult result;
  const int64_t prompt_length = static_cast<int64_t>(prompt.size());
  const int64_t capacity = prompt_length + options.max_new_tokens;
  pipeline::DeviceSide side_a(model_a, capacity, options.graphs),
      side_b(model_b, capacity, options.graphs);
  // Whatever way the loop ends, the result says how the steps ran.
  auto engines = [&] {
    result.engine_a = side_a.steps().Status();
    result.engine_b = side_b.steps().Status();
  };
  pipeline::OrderedWorker issue_a(1);  // A's steps are issued from this thread, B's from the caller's
  // One model object on both sides (a pair of identical sides): its Forward is not meant to run on
  // two threads at once (the rotary table grows lazily), so both are issued from the caller's.
  // Two models that differ in TF32 likewise: TF32 is one process-wide cuBLAS flag that each
  // model's Forward sets for its own matmuls (forward::Tf32Scope), so issuing them on two threads at
  // once could run one side's FP32 matmuls as TF32.
  const bool one_thread =
      &model_a == &model_b || model_a.numerics().tf32 != model_b.numerics().tf32;
  pipeline::OrderedWorker callbacks(4);
  // Issues A's and B's next steps at once (either may be skipped); returns when both are issued.
  auto launch = [&](const at::Tensor* input_a, const PendingStep* from_a, const at::Tensor* input_b,
                    const PendingStep* from_b, PendingStep* next_a, PendingStep* next_b) {
    if (input_a != nullptr && one_thread) *next_a = side_a.Launch(*input_a, from_a);
    if (input_a != nullptr && !one_thread) {
      issue_a.Submit([&] { *next_a = side_a.Launch(*input_a, from_a); });
    }
    try {
      if (input_b != nullptr) *next_b = side_b.Launch(*input_b, from_b);
    } catch (...) {
      try {
        issue_a.Drain();  // A's task refers to this frame: let it finish first
      } catch (...) {
      }
      throw;
    }
    issue_a.Drain();
  };
  // The callback and the check that the device argmax is GreedyArgmax's, off the critical path.
  // The callback gets its own copies of the logits: the pinned buffers go back to their side's
  // pool when this task ends (DeviceSide::HostBuffers says why they must not be freed).
  auto report = [&](int64_t step, bool same, const PendingStep* a, const PendingStep* b) {
    at::Tensor pinned_a = a != nullptr ? a->host_logits : at::Tensor();
    at::Tensor pinned_b = b != nullptr ? b->host_logits : at::Tensor();
    const int64_t token_a = a != nullptr ? a->token() : -1, token_b = b != nullptr ? b->token() : -1;
    callbacks.Submit([=, &on_step] {
      const at::Tensor logits_a = pinned_a.defined() ? pinned_a.clone() : at::Tensor();
      const at::Tensor logits_b = pinned_b.defined() ? pinned_b.clone() : at::Tensor();
      for (const auto& [logits, token] : {std::pair{logits_a, token_a}, std::pair{logits_b, token_b}}) {
        if (!logits.defined()) continue;
        const int64_t host = GreedyArgmax(logits);
        TORCH_CHECK(host == token, "device argmax ", token, " differs from GreedyArgmax ", host);
      }
      if (on_step && logits_a.defined() && logits_b.defined()) {
        on_step({step, prompt_length + step, same, logits_a, logits_b, token_a, token_b});
      }
    });
  };

  const at::Tensor prompt_ids = at::tensor(at::ArrayRef<int64_t>(prompt), at::kLong).view({1, -1});
  PendingStep current_a, current_b;
  launch(&prompt_ids, nullptr, &prompt_ids, nullptr, &current_a, &current_b);

  if (options.mode == GreedyMode::kTeacherForced) {
    for (int64_t step = 0; step < options.max_new_tokens; ++step) {
      ThrowIfInterrupted();  // SIGINT: stop at this step boundary (core/interrupt.h)
      const bool last_step = step + 1 == options.max_new_tokens;
      const PendingStep& teacher = options.teacher_is_a ? current_a : current_b;
      PendingStep next_a, next_b;
      if (!last_step) {
        launch(&teacher.device_token, &teacher, &teacher.device_token, &teacher, &next_a, &next_b);
      }
      current_a.Wait();
      current_b.Wait();
      const int64_t token_a = current_a.token(), token_b = current_b.token();
      report(step, true, &current_a, &current_b);
      ++result.compared_steps;
      result.same_context.push_back(true);
      result.tokens_a.push_back(token_a);
      result.tokens_b.push_back(token_b);
      const int64_t next = options.teacher_is_a ? token_a : token_b;
      if (IsEos(next, options.eos_ids) || last_step) break;
      result.input_a.push_back(next);
      result.input_b.push_back(next);
      current_a = std::move(next_a);
      current_b = std::move(next_b);
    }
    callbacks.Drain();
    engines();
    return result;
  }

  bool live_a = true, live_b = true, same = true;
  for (int64_t step = 0; step < options.max_new_tokens && (live_a || live_b); ++step) {
    ThrowIfInterrupted();  // SIGINT: stop at this step boundary (core/interrupt.h)
    const bool last_step = step + 1 == options.max_new_tokens;
    PendingStep next_a, next_b;
    if (!last_step) {
      launch(live_a ? &current_a.device_token : nullptr, &current_a,
             live_b ? &current_b.device_token : nullptr, &current_b, &next_a, &next_b);
    }
    if (live_a) current_a.Wait();
    if (live_b) current_b.Wait();
    const int64_t token_a = live_a ? current_a.token() : -1;
    const int64_t token_b = live_b ? current_b.token() : -1;
    if (live_a && live_b) {
      report(step, same, &current_a, &current_b);
      ++result.compared_steps;
      result.same_context.push_back(same);
      if (token_a != token_b) same = false;
    } else {
      report(step, same, live_a ? &current_a : nullptr, live_b ? &current_b : nullptr);
    }
    if (live_a) {
      result.tokens_a.push_back(token_a);
      live_a = !IsEos(token_a, options.eos_ids);
      if (live_a && !last_step) {
        result.input_a.push_back(token_a);
        current_a = std::move(next_a);
      }
    }
    if (live_b) {
      result.tokens_b.push_back(token_b);
      live_b = !IsEos(token_b, options.eos_ids);
      if (live_b && !last_step) {
        result.input_b.push_back(token_b);
        current_b = std::move(next_b);
      }
    }
  }
  callbacks.Drain();
  engines();
  return result;
}

}  // namespace

const char* GreedyModeName(GreedyMode mode) {
  return mode == GreedyMode::kFree ? "free" : "teacher_forced";
}

GreedyMode ParseGreedyMode(const std::string& text) {
  if (text == "free") return GreedyMode::kFree;
  if (text == "teacher_forced" || text == "teacher-forced") return GreedyMode::kTeacherForced;
  throw InputError(fmt::format("mode: expected \"free\" or \"teacher_forced\", got \"{}\"", text));
}

int64_t GreedyArgmax(const at::Tensor& logits) {
  at::Tensor flat = logits.detach().to(at::kCPU).to(at::kDouble).contiguous().view({-1});
  TORCH_CHECK(flat.numel() > 0, "argmax of empty logits");
  const double* data = flat.data_ptr<double>();
  int64_t best = 0;
  for (int64_t i = 1; i < flat.numel(); ++i) {
    if (data[i] > data[best]) best = i;  // strict: the first maximum wins
  }
  return best;
}

GreedyResult RunLockstep(forward::CausalLM& model_a, forward::CausalLM& model_b,
                         const std::vector<int64_t>& prompt, const GreedyOptions& options,
                         const GreedyCallback& on_step) {
  CheckInputs(model_a, model_b, prompt, options);
  GreedyResult result;
  if (options.max_new_tokens == 0) return result;
  const int64_t prompt_length = static_cast<int64_t>(prompt.size());
  if (options.pipelined && !model_a.numerics().device.is_cpu() &&
      !model_b.numerics().device.is_cpu()) {
    return RunLockstepPipelined(model_a, model_b, prompt, options, on_step);
  }
  result.engine_a = result.engine_b = model_a.numerics().device.is_cpu()
                                          ? "eager: cpu (synchronous loop)"
                                          : "eager: synchronous loop";
  forward::KVCache cache_a, cache_b;
  cache_a.capacity_hint = cache_b.capacity_hint = prompt_length + options.max_new_tokens;
  at::Tensor logits_a = Feed(model_a, prompt, cache_a);
  at::Tensor logits_b = Feed(model_b, prompt, cache_b);

  if (options.mode == GreedyMode::kTeacherForced) {
    for (int64_t step = 0; step < options.max_new_tokens; ++step) {
      ThrowIfInterrupted();  // SIGINT: stop at this step boundary (core/interrupt.h)
      int64_t token_a = GreedyArgmax(logits_a), token_b = GreedyArgmax(logits_b);
      if (on_step) {
        on_step({step, prompt_length + step, true, logits_a, logits_b, token_a, token_b});
      }
      ++result.compared_steps;
      result.same_context.push_back(true);
      result.tokens_a.push_back(token_a);
      result.tokens_b.push_back(token_b);
      int64_t next = options.teacher_is_a ? token_a : token_b;
      if (IsEos(next, options.eos_ids) || step + 1 == options.max_new_tokens) break;
      result.input_a.push_back(next);
      result.input_b.push_back(next);
      logits_a = Feed(model_a, {next}, cache_a);
      logits_b = Feed(model_b, {next}, cache_b);
    }
    return result;
  }

  bool live_a = true, live_b = true, same = true;
  for (int64_t step = 0; step < options.max_new_tokens && (live_a || live_b); ++step) {
    ThrowIfInterrupted();  // SIGINT: stop at this step boundary (core/interrupt.h)
    int64_t token_a = live_a ? GreedyArgmax(logits_a) : -1;
    int64_t token_b = live_b ? GreedyArgmax(logits_b) : -1;
    if (live_a && live_b) {
      if (on_step) {
        on_step({step, prompt_length + step, same, logits_a, logits_b, token_a, token_b});
      }
      ++result.compared_steps;
      result.same_context.push_back(same);
      if (token_a != token_b) same = false;
    }
    bool last_step = step + 1 == options.max_new_tokens;
    if (live_a) {
      result.tokens_a.push_back(token_a);
      live_a = !IsEos(token_a, options.eos_ids);
      if (live_a && !last_step) {
        result.input_a.push_back(token_a);
        logits_a = Feed(model_a, {token_a}, cache_a);
      }
    }
    if (live_b) {
      result.tokens_b.push_back(token_b);
      live_b = !IsEos(token_b, options.eos_ids);
      if (live_b && !last_step) {
        result.input_b.push_back(token_b);
        logits_b = Feed(model_b, {token_b}, cache_b);
      }
    }
  }
  return result;
}

SideRun DecodeAlone(forward::CausalLM& model, const std::vector<int64_t>& prompt,
                    const GreedyOptions& options) {
  if (prompt.empty()) throw InputError("greedy decoding needs a prompt of at least one token");
  SideRun run;
  forward::KVCache cache;
  cache.capacity_hint = static_cast<int64_t>(prompt.size()) + options.max_new_tokens;
  at::Tensor logits;
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    ThrowIfInterrupted();  // SIGINT: stop at this step boundary (core/interrupt.h)
    logits = Feed(model, step == 0 ? prompt : std::vector<int64_t>{run.tokens.back()}, cache);
    run.logits.push_back(logits);
    run.tokens.push_back(GreedyArgmax(logits));
    if (IsEos(run.tokens.back(), options.eos_ids)) break;
  }
  return run;
}

SideRun FollowAlone(forward::CausalLM& model, const std::vector<int64_t>& prompt,
                    const SideRun& teacher) {
  SideRun run;
  const int64_t steps = static_cast<int64_t>(teacher.tokens.size());
  if (steps == 0) return run;
  at::Tensor rows = TeacherForcedLogits(model, prompt, teacher.tokens, steps);
  for (int64_t step = 0; step < steps; ++step) {
    run.logits.push_back(rows.select(0, step).contiguous());
    run.tokens.push_back(GreedyArgmax(run.logits.back()));
  }
  return run;
}

GreedyResult CompareDecoded(const SideRun& a, const SideRun& b, const std::vector<int64_t>& prompt,
                            const GreedyOptions& options, const GreedyCallback& on_step) {
  GreedyResult result;
  const int64_t prompt_length = static_cast<int64_t>(prompt.size());
  result.tokens_a = a.tokens;
  result.tokens_b = b.tokens;
  // Each side read its own tokens but the last (an EOS, or the last step's); teacher-forced, both
  // read the teacher's.
  const bool forced = options.mode == GreedyMode::kTeacherForced;
  const SideRun& teacher = options.teacher_is_a ? a : b;
  auto read = [](const std::vector<int64_t>& tokens) {
    return tokens.empty() ? tokens : std::vector<int64_t>(tokens.begin(), tokens.end() - 1);
  };
  result.input_a = read(forced ? teacher.tokens : a.tokens);
  result.input_b = read(forced ? teacher.tokens : b.tokens);
  const size_t compared = std::min(a.tokens.size(), b.tokens.size());
  bool same = true;
  for (size_t step = 0; step < compared; ++step) {
    const int64_t s = static_cast<int64_t>(step);
    if (on_step) {
      on_step({s, prompt_length + s, forced || same, a.logits[step], b.logits[step], a.tokens[step],
               b.tokens[step]});
    }
    ++result.compared_steps;
    result.same_context.push_back(forced || same);
    if (a.tokens[step] != b.tokens[step]) same = false;
  }
  return result;
}

at::Tensor TeacherForcedLogits(forward::CausalLM& model, const std::vector<int64_t>& prompt,
                               const std::vector<int64_t>& stream, int64_t steps) {
  if (prompt.empty()) throw InputError("teacher forcing needs a prompt of at least one token");
  if (steps <= 0) return at::empty({0, model.config().vocab_size}, at::kFloat);
  TORCH_CHECK(steps <= static_cast<int64_t>(stream.size()) + 1, "teacher forcing ", steps,
              " steps needs at least ", steps - 1, " stream tokens, got ", stream.size());
  std::vector<int64_t> ids = prompt;
  ids.insert(ids.end(), stream.begin(), stream.begin() + (steps - 1));
  const int64_t first = static_cast<int64_t>(prompt.size()) - 1;  // position whose logits are step 0

  forward::KVCache cache;
  at::Tensor logits = model.Forward(TokensTensor(ids, model), cache);
  if (logits.size(1) == static_cast<int64_t>(ids.size())) {
    // LM head over every position: one pass gives every step's logits.
    return logits.select(0, 0).slice(0, first, first + steps).to(at::kCPU).contiguous();
  }
  // LM head over the last position only: feed the prompt, then one stream token per step.
  std::vector<at::Tensor> rows;
  forward::KVCache step_cache;
  std::vector<int64_t> chunk = prompt;
  for (int64_t step = 0; step < steps; ++step) {
    ThrowIfInterrupted();
    at::Tensor out = model.Forward(TokensTensor(chunk, model), step_cache);
    rows.push_back(out.select(0, 0).select(0, out.size(1) - 1).to(at::kCPU));
    if (step + 1 < steps) chunk = {stream[step]};
  }
  return at::stack(rows).contiguous();
}

}  // namespace parity::decode
