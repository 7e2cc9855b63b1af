#include "harness/diagnose/greedy_stream.h"

#include <algorithm>

#include <ATen/ATen.h>

#include "harness/decode/greedy.h"

namespace parity::diagnose {

std::vector<int64_t> GreedyStream(forward::CausalLM& model, const std::vector<int64_t>& prompt,
                                  int64_t steps, const std::vector<int64_t>& eos_ids,
                                  std::vector<at::Tensor>* logits) {
  std::vector<int64_t> out;
  forward::KVCache cache;
  std::vector<int64_t> chunk = prompt;
  for (int64_t step = 0; step < steps; ++step) {
    at::Tensor ids = at::tensor(at::ArrayRef<int64_t>(chunk), at::kLong).view({1, -1});
    at::Tensor all = model.Forward(ids.to(model.numerics().device), cache);
    at::Tensor last = all.select(0, 0).select(0, all.size(1) - 1).to(at::kCPU).contiguous();
    if (logits != nullptr) logits->push_back(last);
    const int64_t token = decode::GreedyArgmax(last);
    out.push_back(token);
    if (std::find(eos_ids.begin(), eos_ids.end(), token) != eos_ids.end()) break;
    chunk = {token};
  }
  return out;
}

}  // namespace parity::diagnose
