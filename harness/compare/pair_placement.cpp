#include "harness/compare/pair_placement.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "harness/core/error.h"

namespace parity::compare {
namespace {

using forward::DeviceLedger;
using forward::Placement;

// PlanPlacement with the pair's context in front of a refusal.
Placement Plan(const forward::PlacementSpec& spec, const model::ModelConfig& config,
               const forward::PrecisionPolicy& precision, int64_t sequence, DeviceLedger& ledger,
               const std::string& label, const std::string& context) {
  const c10::DeviceType type = spec.automatic || spec.devices.empty()
                                   ? (ledger.AutoDevices().front().type())
                                   : spec.devices.front().device.type();
  try {
    return forward::PlanPlacement(spec, forward::EstimateModelCost(config, precision, type, sequence),
                                  ledger, label);
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: {}", context, e.what()));
  }
}

void Log(const std::string& role, const std::string& label, const Placement& p) {
  spdlog::info("placement of {} ({}): {}; {}", label, role, p.Describe(), p.DescribeWithNumbers());
}

}  // namespace

PairPlacement PlanPair(const PairPlacementRequest& r) {
  const std::string pair = fmt::format("pair {}/{}", r.label_a, r.label_b);
  PairPlacement out;
  DeviceLedger together(r.memory_limit);
  try {
    out.a = Plan(r.spec_a, *r.config_a, r.precision_a, r.sequence_length, together, r.label_a,
                 pair + " in lockstep, side a");
    out.b = Plan(r.spec_b, *r.config_b, r.precision_b, r.sequence_length, together, r.label_b,
                 pair + " in lockstep, side b");
  } catch (const InputError& not_together) {
    // Not at once: one side after the other, each alone, or refuse with the numbers of the side
    // that does not fit even alone.
    DeviceLedger alone_a(r.memory_limit), alone_b(r.memory_limit);
    out.a = Plan(r.spec_a, *r.config_a, r.precision_a, r.sequence_length, alone_a, r.label_a,
                 pair + ", side a alone");
    out.b = Plan(r.spec_b, *r.config_b, r.precision_b, r.sequence_length, alone_b, r.label_b,
                 pair + ", side b alone");
    spdlog::info("{}", not_together.what());
    spdlog::info("{}: the two models do not fit together; decoding one side after the other", pair);
    out.lockstep = false;
  }
  Log("side a", r.label_a, out.a);
  Log("side b", r.label_b, out.b);
  if (r.oracle) {
    const std::string& model_a = r.model_a;
    const std::string& model_b = r.model_b;
    DeviceLedger alone_a(r.memory_limit);
    out.oracle_a = Plan(r.spec_oracle, *r.config_a, forward::Precision::kFP64, r.sequence_length,
                        alone_a, model_a + "@fp64", "FP64 oracle of " + model_a + " for " + pair);
    Log("FP64 oracle", model_a + "@fp64", *out.oracle_a);
    if (!r.same_model) {
      DeviceLedger alone_b(r.memory_limit);
      out.oracle_b = Plan(r.spec_oracle, *r.config_b, forward::Precision::kFP64, r.sequence_length,
                          alone_b, model_b + "@fp64", "FP64 oracle of " + model_b + " for " + pair);
      Log("FP64 oracle", model_b + "@fp64", *out.oracle_b);
    }
  }
  return out;
}

nlohmann::json PairPlacementJson(const std::string& pair_id, const PairPlacementRequest& r,
                                 const PairPlacement& p) {
  nlohmann::json list = nlohmann::json::array();
  auto add = [&](const std::string& side, const std::string& label, const Placement& placement) {
    nlohmann::json entry = {{"pair", pair_id}, {"side", side}, {"model", label},
                            {"lockstep", p.lockstep}};
    entry.update(forward::PlacementToJson(placement));
    list.push_back(entry);
  };
  add("a", r.label_a, p.a);
  add("b", r.label_b, p.b);
  if (p.oracle_a) add("oracle_a", r.model_a + "@fp64", *p.oracle_a);
  if (p.oracle_b) add("oracle_b", r.model_b + "@fp64", *p.oracle_b);
  return list;
}

}  // namespace parity::compare
