// A comparison suite as described by a cases/*.json file: the models, the prompts, the precisions,
// the pairs to compare, the decoding mode and the gates. Parsing validates every field and reports
// every problem at once, each naming the file and the field, e.g.
//   cases/x.json: pairs[1].dtype: expected one of fp32, fp16, bf16, fp64, got "fp8"
// Unknown fields are errors, so a typo is never silently ignored.
//
// File format (paths relative to the case file's directory):
// {
//   "name": "internlm2-tiny",                       required
//   "description": "...",                           optional, free text
//   "models": {                                     required, at least one, in file order
//     "original":  {"path": "fixtures/internlm2-tiny"},
//     "converted": {"convert_from": "original"}     converted at run time (InternLM2 -> Llama)
//   },                                              into OUT/models/<label>
//   "prompts": ["text", {"text": "...", "chat": true}, {"tokens": [1, 2, 3]}],   required, >= 1
//   "chat": false,                                  default for text prompts
//   "dtypes": ["fp32", "fp16", "bf16"],             default ["fp32"]; "fp64" adds FP64 pairs and
//                                                   turns the oracle on; each may be a precision
//                                                   policy, "bf16+fp32:norm,lm_head" (also after '@')
//   "pairs": [{"a": "original", "b": "converted"},  expands over dtypes
//             {"a": "original", "b": "converted", "dtype": "fp16"},
//             {"a": "original@fp32", "b": "original@fp16", "thresholds": {...}}],
//                                                   default: first model vs second, over dtypes
//   "mode": "free" | "teacher_forced",              default "free"
//   "teacher": "a" | "b",                           default "a"
//   "max_new_tokens": 32, "device": "cpu", "seed": 0, "top_k": 5, "near_tie_ulps": 4,
//   "oracle": true,                                 default: "fp64" in dtypes
//   "oracle_device": "cpu",                         where the FP64 oracle runs; default: device;
//                                                   a placement: "cuda:0,cuda:1", "auto"
//   "devices": "cuda:0,cuda:1"                      each side's layers over these devices
//              | {"a": "cuda:0", "b": "cuda:1"}     per side (forward/placement.h syntax:
//                                                   DEVICE[=LAYERS][@SIZE],... or auto);
//                                                   default: device
//   "thresholds": {"max_kl": 1e-3, ...}             gates, see reports/SCHEMA.md
//   "save_traces": false, "save_kld_base": false    write each model side's trace / llama.cpp
//                                                   KLD-base file into OUT (compare/save_traces.h)
//   "range_watch": true,                            overflow and saturation watch of each model
//                                                   side (compare/overflow.h); default: on for
//                                                   pairs with an fp16 module, and with the oracle
//   "saturation_fraction": 0.5,                     a point at >= this fraction of its precision's
//                                                   largest finite value is a saturation risk
//   "cuda_graphs": "auto" | "off"                   one-token decode steps of the pipelined loop
//                                                   (two models on a GPU) as CUDA graphs where the
//                                                   build and the model allow (decode/piecewise.h;
//                                                   bitwise Forward's logits), or Forward eagerly;
//                                                   default "auto"; the CPU never records
// A model's path may also be a recorded side: a trace directory (reports/TRACES.md) or a llama.cpp
// KL-divergence base file (compare/recorded_side.h); it then replays its recording.
// }
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/compare/run_result.h"
#include "harness/decode/greedy.h"
#include "harness/forward/numerics.h"

namespace parity::compare {

struct CaseModel {
  std::string label;                        // key in "models"
  std::string path;                         // checkpoint dir, resolved against the case's dir;
                                            // empty for a model converted at run time
  std::optional<std::string> convert_from;  // label of the InternLM2 model to convert
};

struct CasePrompt {
  std::optional<std::string> text;  // prompt text; null when given as ids
  std::vector<int64_t> tokens;      // ids fed as they are (when text is null)
  bool chat = false;                // wrap text in the ChatML template
};

struct CaseSide {
  std::string model;                  // a CaseModel label
  forward::PrecisionPolicy precision; // a plain precision or a policy ("bf16+fp32:norm")
};

struct CasePair {
  CaseSide a;             // reference
  CaseSide b;             // candidate
  Thresholds thresholds;  // the case's gates with this pair's overrides applied
};

struct Case {
  std::string name;
  std::optional<std::string> path;  // the case file as given; null when built in memory
  std::vector<CaseModel> models;    // in file order
  std::vector<CasePrompt> prompts;
  std::vector<forward::PrecisionPolicy> dtypes;  // precisions or policies
  std::vector<CasePair> pairs;      // expanded: one entry per (a, b) side pair
  decode::GreedyMode mode = decode::GreedyMode::kFree;
  bool teacher_is_a = true;
  int64_t max_new_tokens = 32;
  std::string device = "cpu";
  uint64_t seed = 0;
  int64_t top_k = 5;
  double near_tie_ulps = 4;
  bool oracle = false;
  std::string oracle_device;        // a placement (forward/placement.h); empty: `device`
  std::string devices_a, devices_b; // each side's placement; empty: `device`
  bool chat = false;
  bool save_traces = false;         // write each model side's trace into OUT/traces
  bool save_kld_base = false;       // and/or its llama.cpp KLD-base file into OUT/kld-base
  std::optional<bool> range_watch;  // null: on for pairs with an fp16 module, and with the oracle
  double saturation_fraction = 0.5; // RangeWatch::saturation_fraction, in (0, 1]
  // decode::GreedyOptions::graphs of every run: kAuto ("auto", the default) or kOff ("off").
  decode::GraphMode cuda_graphs = decode::GraphMode::kAuto;
  Thresholds thresholds;

  const CaseModel& Model(const std::string& label) const;  // throws InputError when unknown
  // The placement text of side A / side B / the FP64 oracle, with the defaults applied.
  const std::string& SideDevices(bool a) const;
  const std::string& OracleDevices() const;
};

// Parses a case. `path` is used for messages and to resolve relative model paths. Throws one
// InputError listing every problem found (one per line).
Case ParseCase(const nlohmann::ordered_json& json, const std::string& path);
// Reads and parses a case file.
Case LoadCase(const std::string& path);

// Reads a thresholds object (all fields optional, unknown fields are errors), starting from `base`.
// `where` names the object in messages ("thresholds", "pairs[1].thresholds").
Thresholds ParseThresholds(const nlohmann::ordered_json& json, const Thresholds& base,
                           const std::string& where, const std::string& path);

// "original@fp16"
std::string SideLabel(const CaseSide& side);

// A case's "cuda_graphs" or the CLI's --cuda-graphs: "auto" -> kAuto, "off" -> kOff. Throws
// InputError naming `field` otherwise (e.g. `--cuda-graphs: expected "auto" or "off", got "on"`).
decode::GraphMode ParseCudaGraphs(const std::string& text, const std::string& field);

}  // namespace parity::compare
