// The decode engine's fast paths against the computations they replace, bit for bit, on the CPU
// (decode/engine_check.h; the same check runs on CUDA as `parity bench --check`): the static KV
// cache against at::cat growth + per-step repeat_kv for InternLM2, Llama, Qwen2 and Qwen3 at FP32,
// BF16 and FP16; the device argmax against GreedyArgmax's tie and NaN rules; the ordered worker.
#include <limits>
#include <stdexcept>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "harness/decode/engine_check.h"
#include "harness/decode/greedy.h"
#include "harness/decode/pipeline.h"

namespace parity::decode {
namespace {

// The check runs once for the tests of this file (it decodes every family at every precision).
const std::vector<EngineCheckRow>& CpuRows() {
  // The default (graphs = true, as runs decode): the graph rows too (on the CPU they say why
  // nothing was recorded).
  static const std::vector<EngineCheckRow> rows = CheckEngine(c10::Device(c10::kCPU));
  return rows;
}

TEST(EngineCheck, StaticCacheIsBitwiseTheGrowingCacheOnCpu) {
  const std::vector<EngineCheckRow>& rows = CpuRows();
  int static_rows = 0;
  for (const EngineCheckRow& row : rows) {
    SCOPED_TRACE(FormatEngineCheckRow(row));
    EXPECT_TRUE(row.bitwise);
    if (row.check == "static_cache") {
      ++static_rows;
      EXPECT_TRUE(row.tested);
      // Prompt rows (7 with InternLM2's all-positions LM head, else 1) + 12 steps, twice.
      EXPECT_EQ(row.compared, row.arch == "internlm2" ? 2 * (7 + 12) : 2 * (1 + 12));
    }
  }
  EXPECT_GE(static_rows, 16);  // 4 families x (3 precisions + a policy) (x SDPA on libtorch 2)
}

TEST(EngineCheck, PiecewiseStepsAreBitwiseForwardOnCpu) {
  int pieces = 0, graphs = 0;
  for (const EngineCheckRow& row : CpuRows()) {
    SCOPED_TRACE(FormatEngineCheckRow(row));
    if (row.check == "pieces") {
      ++pieces;
      EXPECT_TRUE(row.tested);
      EXPECT_TRUE(row.bitwise);
      EXPECT_EQ(row.compared, row.arch == "internlm2" ? 7 + 12 : 1 + 12);
      EXPECT_EQ(row.note, "eager: pieces (graphs not recorded in this mode)");
    }
    if (row.check == "graphs") {
      ++graphs;
      EXPECT_FALSE(row.tested);  // no CUDA here
      EXPECT_EQ(row.note, "eager: cpu");
    }
  }
  EXPECT_GE(pieces, 16);
  EXPECT_EQ(graphs, pieces);
}

TEST(EngineCheck, DeviceArgmaxFollowsGreedyArgmax) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<std::vector<double>> cases = {
      {1, 3, 3, 2},          // tie: lowest index
      {nan, 5, 1},           // NaN first: GreedyArgmax keeps 0
      {1, nan, 5, nan, 5},   // NaN elsewhere never wins
      {-inf, -inf},          // all -inf: 0
      {-inf, nan, -inf, 2},  //
  };
  for (const auto& values : cases) {
    for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
      at::Tensor logits = at::tensor(values, at::kDouble).to(dtype);
      EXPECT_EQ(pipeline::DeviceArgmax(logits).item<int64_t>(), GreedyArgmax(logits))
          << logits;
    }
  }
}

TEST(EngineCheck, OrderedWorkerRunsInOrderAndRethrows) {
  std::vector<int> seen;
  {
    pipeline::OrderedWorker worker(2);
    for (int i = 0; i < 20; ++i) worker.Submit([&seen, i] { seen.push_back(i); });
    worker.Drain();
    ASSERT_EQ(seen.size(), 20u);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(seen[i], i);
  }
  pipeline::OrderedWorker worker(1);
  worker.Submit([] { throw std::runtime_error("planted"); });
  EXPECT_THROW(worker.Drain(), std::runtime_error);
  worker.Submit([&seen] { seen.push_back(7); });  // the error was handed over once
  worker.Drain();
  EXPECT_EQ(seen.back(), 7);
}

}  // namespace
}  // namespace parity::decode
