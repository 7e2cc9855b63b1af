#include "harness/diagnose/consistency.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/core/error.h"
#include "harness/decode/greedy.h"
#include "harness/diagnose/greedy_stream.h"

namespace parity::diagnose {

namespace {

// Compares two greedy streams and their per-step logits (each [V] on the CPU). Steps up to and
// including the first divergence read the same context.
void CompareStreams(const std::vector<int64_t>& reference, const std::vector<at::Tensor>& ref_logits,
                    const std::vector<int64_t>& candidate,
                    const std::vector<at::Tensor>& cand_logits, CheckResult& result) {
  result.tokens_reference = reference;
  result.tokens_candidate = candidate;
  const size_t n = std::min({reference.size(), candidate.size(), ref_logits.size(),
                             cand_logits.size()});
  for (size_t step = 0; step < n; ++step) {
    const double diff = (ref_logits[step].to(at::kDouble) - cand_logits[step].to(at::kDouble))
                            .abs()
                            .max()
                            .item<double>();
    result.max_abs_logit_diff = std::max(result.max_abs_logit_diff, diff);
    ++result.compared_steps;
    if (reference[step] != candidate[step]) {
      result.first_divergence = static_cast<int64_t>(step);
      break;
    }
  }
  result.consistent = !result.first_divergence;
}

CheckResult Unavailable(const std::string& check, const std::string& note) {
  CheckResult result;
  result.check = check;
  result.available = false;
  result.consistent = false;
  result.note = note;
  return result;
}

}  // namespace

std::vector<std::vector<int64_t>> GreedyBatch(forward::CausalLM& model,
                                              const std::vector<std::vector<int64_t>>& prompts,
                                              int64_t steps, int64_t pad_id,
                                              std::vector<std::vector<at::Tensor>>* logits) {
  const int64_t rows = static_cast<int64_t>(prompts.size());
  size_t longest = 0;
  for (const auto& p : prompts) {
    if (p.empty()) throw InputError("batch decoding: a prompt has no tokens");
    longest = std::max(longest, p.size());
  }
  // Left padding: [pad ... pad prompt], mask 0 over the padding.
  at::Tensor tokens = at::full({rows, static_cast<int64_t>(longest)}, pad_id, at::kLong);
  at::Tensor mask = at::zeros({rows, static_cast<int64_t>(longest)}, at::kLong);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t offset = static_cast<int64_t>(longest - prompts[r].size());
    for (size_t i = 0; i < prompts[r].size(); ++i) {
      tokens[r][offset + i] = prompts[r][i];
      mask[r][offset + i] = 1;
    }
  }
  const c10::Device device = model.numerics().device;
  std::vector<std::vector<int64_t>> out(rows);
  if (logits != nullptr) logits->assign(rows, {});
  forward::KVCache cache;
  at::Tensor input = tokens;
  for (int64_t step = 0; step < steps; ++step) {
    at::Tensor all = model.Forward(input.to(device), cache, mask.to(device));
    at::Tensor last = all.select(1, all.size(1) - 1).to(at::kCPU);  // [rows, V]
    at::Tensor next = at::empty({rows, 1}, at::kLong);
    for (int64_t r = 0; r < rows; ++r) {
      at::Tensor row = last[r].contiguous();
      const int64_t token = decode::GreedyArgmax(row);
      out[r].push_back(token);
      next[r][0] = token;
      if (logits != nullptr) (*logits)[r].push_back(row);
    }
    input = next;
    mask = at::cat({mask, at::ones({rows, 1}, at::kLong)}, 1);
  }
  return out;
}

CheckResult CheckBatchInvariance(const ModelSource& source, const std::vector<int64_t>& prompt,
                                 const CheckOptions& options) {
  if (prompt.empty()) throw InputError("check batch: the prompt has no tokens");
  const forward::Numerics numerics = forward::MakeNumerics(options.precision, options.device);
  std::unique_ptr<forward::CausalLM> model = source.Build(numerics);
  std::vector<int64_t> other = options.other_prompt;
  if (other.empty()) {
    other = prompt;
    other.insert(other.end(), prompt.begin() + (prompt.size() > 1 ? 1 : 0), prompt.end());
  }
  if (other.size() <= prompt.size()) {
    throw InputError(fmt::format("check batch: the other prompt ({} tokens) must be longer than "
                                 "the prompt ({} tokens) so that the prompt's row is padded",
                                 other.size(), prompt.size()));
  }
  int64_t pad_id = options.pad_id >= 0 ? options.pad_id
                   : source.config.pad_token_id >= 0 ? source.config.pad_token_id
                                                     : 0;
  CheckResult result;
  result.check = "batch";
  result.numerics = numerics.Describe();
  result.reference = "the prompt alone (batch of 1)";
  result.candidate = fmt::format("row 1 of a batch of 2, left-padded by {} (pad id {}) beside a "
                                 "{}-token prompt", other.size() - prompt.size(), pad_id,
                                 other.size());
  std::vector<at::Tensor> alone_logits;
  std::vector<int64_t> alone =
      GreedyStream(*model, prompt, options.max_new_tokens, options.eos_ids, &alone_logits);
  std::vector<std::vector<at::Tensor>> batch_logits;
  std::vector<std::vector<int64_t>> batch =
      GreedyBatch(*model, {other, prompt}, static_cast<int64_t>(alone.size()), pad_id,
                  &batch_logits);
  CompareStreams(alone, alone_logits, batch[1], batch_logits[1], result);
  return result;
}

CheckResult CheckKvCache(const ModelSource& source, const std::vector<int64_t>& prompt,
                         const CheckOptions& options) {
  if (prompt.empty()) throw InputError("check kv-cache: the prompt has no tokens");
  const forward::Numerics numerics = forward::MakeNumerics(options.precision, options.device);
  forward::Variants cached = forward::ReferenceVariants(source.config.arch);
  forward::Variants recompute = cached;
  cached.kv_cache = true;
  recompute.kv_cache = false;
  CheckResult result;
  result.check = "kv-cache";
  result.numerics = numerics.Describe();
  result.reference = "decoding with the KV cache";
  result.candidate = "recomputing the whole prefix at every step";
  std::vector<at::Tensor> cached_logits, recompute_logits;
  std::vector<int64_t> with_cache = GreedyStream(*source.Build(numerics, &cached), prompt,
                                                 options.max_new_tokens, options.eos_ids,
                                                 &cached_logits);
  std::vector<int64_t> without = GreedyStream(*source.Build(numerics, &recompute), prompt,
                                              options.max_new_tokens, options.eos_ids,
                                              &recompute_logits);
  CompareStreams(with_cache, cached_logits, without, recompute_logits, result);
  return result;
}

CheckResult CheckDevice(const ModelSource& source, const std::vector<int64_t>& prompt,
                        const CheckOptions& options) {
  if (!at::hasCUDA()) {
    return Unavailable("device",
                       "this build's libtorch has no CUDA (or no GPU is visible): the CPU vs CUDA "
                       "check needs a CUDA build, e.g. scripts/gpu_build.sh on a GPU machine");
  }
  const forward::Numerics cpu = forward::MakeNumerics(options.precision, c10::Device(c10::kCPU));
  const forward::Numerics cuda =
      forward::MakeNumerics(options.precision, options.device.is_cuda()
                                                   ? options.device
                                                   : c10::Device(c10::kCUDA, 0));
  CheckResult result;
  result.check = "device";
  result.numerics = cpu.Describe() + " vs " + cuda.Describe();
  result.reference = cpu.Describe();
  result.candidate = cuda.Describe();
  std::vector<at::Tensor> cpu_logits, cuda_logits;
  std::vector<int64_t> on_cpu = GreedyStream(*source.Build(cpu), prompt, options.max_new_tokens,
                                             options.eos_ids, &cpu_logits);
  std::vector<int64_t> on_cuda = GreedyStream(*source.Build(cuda), prompt,
                                              options.max_new_tokens, options.eos_ids,
                                              &cuda_logits);
  CompareStreams(on_cpu, cpu_logits, on_cuda, cuda_logits, result);
  return result;
}

nlohmann::ordered_json CheckToJson(const CheckResult& r) {
  nlohmann::ordered_json json;
  json["check"] = r.check;
  json["available"] = r.available;
  json["note"] = r.note;
  json["consistent"] = r.consistent;
  json["first_divergence"] =
      r.first_divergence ? nlohmann::ordered_json(*r.first_divergence) : nlohmann::ordered_json();
  json["reference"] = r.reference;
  json["candidate"] = r.candidate;
  json["numerics"] = r.numerics;
  json["compared_steps"] = r.compared_steps;
  json["max_abs_logit_diff"] = r.max_abs_logit_diff;
  json["tokens_reference"] = r.tokens_reference;
  json["tokens_candidate"] = r.tokens_candidate;
  return json;
}

std::string FormatCheck(const CheckResult& r) {
  if (!r.available) return fmt::format("check {}: not available: {}\n", r.check, r.note);
  std::string out = fmt::format("check {} at {}\n  reference: {}\n  candidate: {}\n", r.check,
                                r.numerics, r.reference, r.candidate);
  if (r.consistent) {
    out += fmt::format("  consistent: the same {} greedy tokens; max |logit diff| {:.3e}\n",
                       r.tokens_reference.size(), r.max_abs_logit_diff);
  } else {
    const int64_t s = *r.first_divergence;
    out += fmt::format("  INCONSISTENT: first divergence at step {} (reference {}, candidate {}); "
                       "max |logit diff| up to it {:.3e}\n",
                       s, r.tokens_reference[s], r.tokens_candidate[s], r.max_abs_logit_diff);
    out += fmt::format("  reference tokens: {}\n  candidate tokens: {}\n",
                       fmt::join(r.tokens_reference, ","), fmt::join(r.tokens_candidate, ","));
  }
  return out;
}

}  // namespace parity::diagnose
