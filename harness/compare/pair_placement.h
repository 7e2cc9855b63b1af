// Where a pair's models go, planned before anything is loaded (forward/placement.h): side A and
// side B each by its own placement (a case's "devices", --devices / --devices-a / --devices-b;
// default: the case's device), together when both fit at once (lockstep), else each alone (the
// sides are decoded one after the other); the FP64 oracle's models each alone by the oracle's
// placement (oracle_device / --oracle-device; default: the case's device), after the pair's models
// are released. A plan that cannot fit is refused with each device's need and free memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "harness/forward/placement.h"
#include "harness/model/config.h"

namespace parity::compare {

struct PairPlacementRequest {
  std::string model_a, model_b;              // case model labels: "original", "converted"
  std::string label_a, label_b;              // sides: "original@fp32", "converted@fp32"
  const model::ModelConfig* config_a = nullptr;
  const model::ModelConfig* config_b = nullptr;
  forward::PrecisionPolicy precision_a, precision_b;
  forward::PlacementSpec spec_a, spec_b, spec_oracle;
  int64_t sequence_length = 0;               // longest prompt + max_new_tokens
  bool oracle = false;                       // plan the FP64 oracle's models too
  bool same_model = false;                   // A and B are one model (one FP64 run serves both)
  std::optional<int64_t> memory_limit;       // --memory-limit, bytes per device
};

struct PairPlacement {
  bool lockstep = true;                      // both sides fit at once
  forward::Placement a, b;
  std::optional<forward::Placement> oracle_a, oracle_b;  // oracle_b absent when same_model
};

// Plans as above; logs each plan (what goes where and why). Throws InputError (exit 2) naming the
// pair, the side and each device's need and free memory when a model does not fit even alone.
PairPlacement PlanPair(const PairPlacementRequest& request);

// summary.json's record of a pair's plan: [{"pair", "side", "model", "lockstep", "plan", "reason",
// "stages": [...]}] (reports/SCHEMA.md "placements").
nlohmann::json PairPlacementJson(const std::string& pair_id, const PairPlacementRequest& request,
                                 const PairPlacement& placement);

}  // namespace parity::compare
