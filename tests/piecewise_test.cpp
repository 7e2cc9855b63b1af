// The decision logic of the piecewise / CUDA-graph decode step (decode/piecewise.h), which is the
// same code on every build: when a step runs Forward, the pieces eagerly, records or replays, and
// what the engine status says. The pieces' bitwise equality with Forward is checked by
// engine_check_test (every family, dtype and a precision policy).
#include <string>

#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "harness/decode/piecewise.h"

namespace parity::decode {
namespace {

PlanInput Cuda(int64_t one_token_steps, bool recorded = false) {
  PlanInput in;
  in.cuda = true;
  in.built = true;
  in.one_token_steps = one_token_steps;
  in.recorded = recorded;
  return in;
}

TEST(PiecewisePlan, WarmUpThenRecordThenReplay) {
  EXPECT_EQ(PlanStep(Cuda(0)).path, StepPath::kPiecesEager);
  EXPECT_EQ(PlanStep(Cuda(1)).path, StepPath::kRecord);
  EXPECT_EQ(PlanStep(Cuda(2, true)).path, StepPath::kReplay);
  EXPECT_EQ(PlanStep(Cuda(200, true)).path, StepPath::kReplay);
}

TEST(PiecewisePlan, PrefillAndOtherShapesRunForward) {
  for (auto change : {+[](PlanInput& in) { in.length = 16; }, +[](PlanInput& in) { in.batch = 2; },
                      +[](PlanInput& in) { in.masked = true; }}) {
    PlanInput in = Cuda(3, true);
    change(in);
    const StepPlan plan = PlanStep(in);
    EXPECT_EQ(plan.path, StepPath::kForward);
    EXPECT_EQ(plan.why, "");  // a prefill is not a reason to report
  }
}

TEST(PiecewisePlan, EveryReasonForEagerIsNamed) {
  struct Case {
    void (*change)(PlanInput&);
    const char* why;
  };
  const Case cases[] = {
      {[](PlanInput& in) { in.mode = GraphMode::kOff; }, "cuda graphs: off"},
      {[](PlanInput& in) { in.cuda = false; }, "eager: cpu"},
      {[](PlanInput& in) { in.built = false; }, "cuda graphs: not built"},
      {[](PlanInput& in) { in.static_cache = false; }, "eager: growing KV cache"},
      {[](PlanInput& in) { in.splittable = false; }, "eager: the model has no step pieces"},
      {[](PlanInput& in) { in.blocker = "MoE layers"; }, "eager: MoE layers"},
      {[](PlanInput& in) { in.failed = "operation not permitted"; },
       "eager: recording failed: operation not permitted"},
  };
  for (const Case& c : cases) {
    PlanInput in = Cuda(1);
    c.change(in);
    const StepPlan plan = PlanStep(in);
    EXPECT_EQ(plan.path, StepPath::kForward) << c.why;
    EXPECT_EQ(plan.why, c.why);
  }
}

TEST(PiecewisePlan, PiecesModeRunsThePiecesEverywhere) {
  PlanInput in;
  in.mode = GraphMode::kPieces;
  in.cuda = false;
  in.built = false;
  EXPECT_EQ(PlanStep(in).path, StepPath::kPiecesEager);
  in.one_token_steps = 5;
  EXPECT_EQ(PlanStep(in).path, StepPath::kPiecesEager);
  in.blocker = "MoE layers";  // what cannot be split is not split, in any mode
  EXPECT_EQ(PlanStep(in).path, StepPath::kForward);
}

TEST(PiecewisePlan, ModesParseAndName) {
  EXPECT_EQ(ParseGraphMode("on"), GraphMode::kAuto);
  EXPECT_EQ(ParseGraphMode("auto"), GraphMode::kAuto);
  EXPECT_EQ(ParseGraphMode("off"), GraphMode::kOff);
  EXPECT_EQ(ParseGraphMode("pieces"), GraphMode::kPieces);
  EXPECT_THROW(ParseGraphMode("yes"), InputError);
  EXPECT_STREQ(GraphModeName(GraphMode::kPieces), "pieces");
  EXPECT_STREQ(StepPathName(StepPath::kReplay), "replay");
}

TEST(PiecewisePlan, ThisCpuBuildHasNoRecorder) {
  // The recorder is registered by harness/decode/cuda/, built only against a CUDA libtorch.
  EXPECT_FALSE(GraphsBuilt());
}

}  // namespace
}  // namespace parity::decode
