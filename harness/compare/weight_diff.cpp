#include "harness/compare/weight_diff.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <tuple>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/convert/qkv_split.h"
#include "harness/io/gguf_tensor.h"
#include "harness/model/arch_spec.h"
#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/model/arch.h"
#include "harness/model/config.h"
#include "harness/model/gguf_checkpoint.h"

namespace parity::compare {
namespace {

namespace fs = std::filesystem;
using model::Architecture;
using model::Role;

// Role and layer in the comparison's key space: Llama roles when the two architectures differ
// (InternLM2's packed tensors split), each side's own roles when they are the same.
struct Key {
  Role role;
  int64_t layer;
  int64_t expert = -1;
  bool operator<(const Key& other) const {
    return std::tie(layer, role, expert) < std::tie(other.layer, other.role, other.expert);
  }
};

// A tensor of one side, loaded only when compared.
struct Entry {
  WeightSide side;
  std::function<at::Tensor()> load;
};

struct Side {
  std::string dir;
  io::Checkpoint checkpoint;
  model::ModelConfig config;
  std::map<Key, Entry> entries;
  std::vector<UnmatchedTensor> unknown;  // names no table knows
};

bool IsFp8(io::DType dtype) { return dtype == io::DType::kF8E4M3 || dtype == io::DType::kF8E5M2; }

// Which part of a packed qkv tensor a split role is: 0 = q, 1 = k, 2 = v, -1 = not a split role.
int SplitPart(Role role) {
  switch (role) {
    case Role::kQ: case Role::kQBias: return 0;
    case Role::kK: case Role::kKBias: return 1;
    case Role::kV: case Role::kVBias: return 2;
    default: return -1;
  }
}
constexpr const char* kPartNames[] = {"q", "k", "v"};

// The name under which `config`'s checkpoint holds the weights of `role` (a q/k/v role when packed).
std::string NameIn(const model::ModelConfig& config, const Key& key) {
  const Architecture arch = config.arch;
  if (model::FindSpec(arch, key.role) != nullptr) {
    return model::TensorName(config, key.role, key.layer, key.expert);
  }
  const Role packed = key.role == Role::kQ || key.role == Role::kK || key.role == Role::kV
                          ? Role::kQkv : Role::kQkvBias;
  if (SplitPart(key.role) >= 0 && model::FindSpec(arch, packed) != nullptr) {
    return fmt::format("{} [{}]", model::TensorName(config, packed, key.layer),
                       kPartNames[SplitPart(key.role)]);
  }
  return fmt::format("(no {} tensor in {})", model::RoleName(key.role), model::ArchitectureName(arch));
}

std::string KeyLabel(const Key& key) {
  std::string label = model::RoleName(key.role);
  if (key.expert >= 0) label = fmt::format("expert {} {}", key.expert, label);
  if (key.layer < 0) return label;
  return fmt::format("layer {} {}", key.layer, label);
}

// Sort position: the embedding, then layer by layer, then the final norm and the LM head; within a
// layer, Role's declaration order (norm, attention, MLP).
std::pair<int64_t, int> Order(const Key& key) {
  if (key.layer >= 0) return {key.layer, static_cast<int>(key.role)};
  if (key.role == Role::kEmbedding) return {-1, 0};
  return {std::numeric_limits<int64_t>::max(), static_cast<int>(key.role)};
}

void AddTensor(Side& side, Architecture other_arch, const std::string& name) {
  const io::Checkpoint& ckpt = side.checkpoint;
  const io::TensorInfo& info = ckpt.Info(name);
  WeightSide base{name, ckpt.ShardOf(name), std::string(io::DTypeName(info.dtype)), info.shape, ""};
  if (const io::ExternalTensor* external = ckpt.External(name)) {
    base.name = external->source_name;  // as the GGUF file names and stores it
    base.stored_type = external->stored_type;
  }
  const Architecture arch = side.config.arch;
  const auto parsed = model::ParseTensorName(side.config, name);
  if (!parsed) {
    side.unknown.push_back(
        {base, model::IsIgnoredPart(side.config, name)
                   ? fmt::format("not part of the language model ({} checkpoint); ignored",
                                 side.config.container.model_type)
                   : fmt::format("not in the {} tensor table", model::ArchitectureName(arch))});
    return;
  }
  std::vector<Role> roles{parsed->role};
  if (parsed->role == Role::kQkv || parsed->role == Role::kQkvBias) {
    // A packed qkv against a family that stores q, k, v apart: compared part by part.
    roles = model::CounterpartRoles(arch, parsed->role, other_arch);
    if (roles.size() != 3) roles = {parsed->role};
  }
  const io::Checkpoint* checkpoint = &side.checkpoint;
  if (roles.size() == 1) {
    side.entries[{roles[0], parsed->layer, parsed->expert}] = {
        base, [checkpoint, name] { return checkpoint->Get(name); }};
    return;
  }
  // A packed qkv weight or bias compared part by part.
  const convert::QkvLayout layout = convert::QkvLayoutOf(side.config);
  if (info.shape.empty() || info.shape[0] != layout.rows()) {
    side.unknown.push_back({base, fmt::format("cannot split into q/k/v: expected {} rows (kv_heads {} x "
                                              "(G {} + 2) x head_dim {})",
                                              layout.rows(), layout.kv_heads, layout.group,
                                              layout.head_dim)});
    return;
  }
  for (int part = 0; part < 3; ++part) {
    WeightSide piece = base;
    piece.name = fmt::format("{} [{}]", name, kPartNames[part]);
    piece.shape[0] = layout.kv_heads * (part == 0 ? layout.group : 1) * layout.head_dim;
    side.entries[{roles[part], parsed->layer}] = {piece, [checkpoint, name, layout, part] {
      convert::SplitQkv split = convert::SplitPackedQkv(checkpoint->Get(name), layout, name);
      return part == 0 ? split.q : part == 1 ? split.k : split.v;
    }};
  }
}

Side OpenSide(const std::string& dir) {
  io::Checkpoint checkpoint = model::OpenCheckpointPath(dir);
  model::ModelConfig config = model::ParseConfig(checkpoint.config_json(), checkpoint.config_source());
  return Side{dir, std::move(checkpoint), std::move(config), {}, {}};
}

double NanAwareMax(double current, double value) {
  if (std::isnan(current) || std::isnan(value)) return std::numeric_limits<double>::quiet_NaN();
  return std::max(current, value);
}

// FP64 statistics over both tensors, a chunk at a time so that a 7B embedding does not need 3 GB.
void ComputeStatistics(const at::Tensor& a, const at::Tensor& b, WeightComparison& result) {
  constexpr int64_t kChunk = int64_t{1} << 22;
  const at::Tensor flat_a = a.reshape({-1});
  const at::Tensor flat_b = b.reshape({-1});
  const int64_t count = flat_a.numel();
  double sum_squares = 0.0;
  result.elements = count;
  for (int64_t start = 0; start < count; start += kChunk) {
    const int64_t length = std::min(kChunk, count - start);
    const at::Tensor da = flat_a.narrow(0, start, length).to(at::kDouble);
    const at::Tensor db = flat_b.narrow(0, start, length).to(at::kDouble);
    const at::Tensor diff = da - db;
    result.max_abs_diff = NanAwareMax(result.max_abs_diff, diff.abs().max().item<double>());
    result.max_abs_a = NanAwareMax(result.max_abs_a, da.abs().max().item<double>());
    sum_squares += (diff * diff).sum().item<double>();
    result.differing_elements += da.ne(db).sum().item<int64_t>();
  }
  result.rms_diff = count > 0 ? std::sqrt(sum_squares / static_cast<double>(count)) : 0.0;
  if (result.max_abs_a == 0.0) {
    result.relative_error = result.max_abs_diff == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  } else {
    result.relative_error = result.max_abs_diff / result.max_abs_a;
  }
  result.values_equal = result.differing_elements == 0;
}

bool SameBytes(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor ca = a.contiguous();
  const at::Tensor cb = b.contiguous();
  const size_t bytes = static_cast<size_t>(ca.numel()) * ca.element_size();
  return bytes == static_cast<size_t>(cb.numel()) * cb.element_size() &&
         std::memcmp(ca.data_ptr(), cb.data_ptr(), bytes) == 0;
}

// What the explanation needs to know about a tensor of A: its head layout and the other tensors of
// the same shape it may have been swapped with (same layer, or both global).
TensorContext ContextFor(const Key& key, const Side& a) {
  TensorContext context;
  context.label = KeyLabel(key);
  const model::ModelConfig& config = a.config;
  switch (key.role) {
    case Role::kQ:
      context.head_dim = config.head_dim;
      context.row_heads = config.num_heads;
      context.rope_heads = {config.num_heads};
      break;
    case Role::kK:
      context.head_dim = config.head_dim;
      context.row_heads = config.num_kv_heads;
      context.rope_heads = {config.num_kv_heads};
      if (config.num_heads != config.num_kv_heads) context.rope_heads.push_back(config.num_heads);
      break;
    case Role::kV:
      context.head_dim = config.head_dim;
      context.row_heads = config.num_kv_heads;
      break;
    case Role::kO:
      context.head_dim = config.head_dim;
      context.col_heads = config.num_heads;
      break;
    default: break;
  }
  const Entry& self = a.entries.at(key);
  for (const auto& [other_key, other] : a.entries) {
    // Same layer and expert, another role (swaps between experts are not tested: a 128-expert
    // layer would make every differing expert tensor load hundreds of partners).
    if (other_key.role == key.role || other_key.layer != key.layer ||
        other_key.expert != key.expert) {
      continue;
    }
    if (other.side.shape != self.side.shape) continue;
    context.partners.push_back({KeyLabel(other_key), other.load});
  }
  return context;
}

// What a GGUF tensor (B) may be instead of A's tensor when it is not A quantized: the rope
// permutation of a llama-family Q/K left out, applied twice, applied to K with n_head; for a family
// without the permutation, applied anyway; another tensor of the layer with the same shape.
std::vector<QuantizationHypothesis> GgufHypotheses(const Key& key, const at::Tensor& a,
                                                   const Side& gguf, const TensorContext& context,
                                                   const std::string& gguf_name) {
  std::vector<QuantizationHypothesis> hypotheses;
  const model::ModelConfig& config = gguf.config;
  const bool permuted = model::SpecOf(config.arch).gguf.permuted_qk;
  const bool is_q = key.role == Role::kQ || key.role == Role::kQBias;
  const bool is_k = key.role == Role::kK || key.role == Role::kKBias;
  if (is_q || is_k) {
    const int64_t heads = is_q ? config.num_heads : config.num_kv_heads;
    if (a.dim() >= 1 && a.size(0) % (2 * heads) == 0) {
      if (permuted) {
        hypotheses.push_back(
            {"rope_permutation_missing",
             fmt::format("{} is stored in HF's row order: the Q/K rope permutation llama.cpp's "
                         "converter applies for {} is missing",
                         gguf_name, model::ArchitectureName(config.arch)),
             [a, heads] { return io::UnpermuteLlamaQK(a, heads); }});
        hypotheses.push_back({"rope_permuted_twice",
                              fmt::format("{} has the Q/K rope permutation applied twice", gguf_name),
                              [a, heads] { return io::PermuteLlamaQK(a, heads); }});
        if (is_k && config.num_heads != config.num_kv_heads &&
            a.size(0) % (2 * config.num_heads) == 0) {
          const int64_t h = config.num_heads, kv = config.num_kv_heads;
          hypotheses.push_back(
              {"rope_permuted_with_n_head",
               fmt::format("{} was permuted with n_head {} instead of n_kv_head {}", gguf_name, h, kv),
               [a, h, kv] { return io::UnpermuteLlamaQK(io::PermuteLlamaQK(a, h), kv); }});
        }
      } else {
        hypotheses.push_back(
            {"rope_permutation_applied",
             fmt::format("{} has llama's Q/K rope permutation, which {} (NeoX rope) does not use",
                         gguf_name, model::ArchitectureName(config.arch)),
             [a, heads] { return io::PermuteLlamaQK(a, heads); }});
      }
    }
  }
  for (const TensorContext::Partner& partner : context.partners) {
    hypotheses.push_back({"swapped",
                          fmt::format("{} holds A's {} instead of its {}", gguf_name, partner.label,
                                      context.label),
                          partner.load});
  }
  return hypotheses;
}

WeightComparison Compare(const Key& key, const Entry& a, const Entry& b, const Side& side_a,
                         const Side& side_b) {
  WeightComparison result;
  result.key = KeyLabel(key);
  result.a = a.side;
  result.b = b.side;
  if (a.side.shape != b.side.shape) {
    result.status = WeightStatus::kShapeMismatch;
    return result;
  }
  const at::Tensor ta = a.load();
  const at::Tensor tb = b.load();
  const bool same_dtype = a.side.dtype == b.side.dtype;
  if (same_dtype && SameBytes(ta, tb)) {
    result.status = WeightStatus::kBitwiseEqual;
    result.values_equal = true;
    result.elements = ta.numel();
    return result;
  }
  result.status = same_dtype ? WeightStatus::kValuesDiffer : WeightStatus::kDtypeDiffers;
  const auto dtype_a = io::ParseDType(a.side.dtype);
  const auto dtype_b = io::ParseDType(b.side.dtype);
  if ((dtype_a && IsFp8(*dtype_a)) || (dtype_b && IsFp8(*dtype_b))) {
    // libtorch 1.13 cannot decode FP8: count differing bytes, leave the value statistics NaN.
    const double nan = std::numeric_limits<double>::quiet_NaN();
    result.elements = ta.numel();
    result.differing_elements = same_dtype ? ta.ne(tb).sum().item<int64_t>() : ta.numel();
    result.max_abs_diff = result.max_abs_a = result.relative_error = result.rms_diff = nan;
    return result;
  }
  ComputeStatistics(ta, tb, result);
  // A GGUF side: is the difference its stored type's quantization, or a fault (named)?
  const bool gguf_b = !b.side.stored_type.empty();
  if (gguf_b || !a.side.stored_type.empty()) {
    const TensorContext context = ContextFor(key, side_a);
    const WeightSide& gguf_side = gguf_b ? b.side : a.side;
    result.gguf = CheckQuantization(
        gguf_b ? ta : tb, gguf_b ? tb : ta, gguf_side.stored_type,
        GgufHypotheses(key, gguf_b ? ta : tb, gguf_b ? side_b : side_a, context, gguf_side.name));
    if (result.gguf->as_expected) return result;
  }
  if (!result.values_equal) result.explanation = ExplainWeightDifference(ta, tb, ContextFor(key, side_a));
  return result;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

nlohmann::json SideJson(const WeightSide& side) {
  nlohmann::json json = {
      {"name", side.name}, {"shard", side.shard}, {"dtype", side.dtype}, {"shape", side.shape}};
  if (!side.stored_type.empty()) json["stored_type"] = side.stored_type;
  return json;
}

// "    -> B = A x 1.01 (uniform scale); residual 2.1e-08 (screened on 1024 of 14336 rows, confirmed
// on all)".
std::string ExplanationLine(const WeightExplanation& e) {
  std::string line = "             -> " + e.sentence;
  if (e.explained) line += fmt::format("; residual {:.3g}", e.residual);
  if (e.sampled) {
    line += fmt::format(" (screened on {} of {} rows, {})", e.sample_rows, e.rows,
                        e.confirmed_full ? "confirmed on every element" : "not confirmed in full");
  }
  return line + "\n";
}

std::string UnmatchedLine(const char* label, const UnmatchedTensor& tensor) {
  return fmt::format("  {:<10} {} {} {} ({}): {}\n", label, tensor.side.name,
                     ShapeText(tensor.side.shape), tensor.side.dtype, tensor.side.shard,
                     tensor.reason);
}

}  // namespace

const char* WeightStatusName(WeightStatus status) {
  switch (status) {
    case WeightStatus::kBitwiseEqual: return "bitwise_equal";
    case WeightStatus::kValuesDiffer: return "values_differ";
    case WeightStatus::kDtypeDiffers: return "dtype_differs";
    case WeightStatus::kShapeMismatch: return "shape_mismatch";
  }
  return "unknown";
}

int64_t WeightDiffReport::Count(WeightStatus status) const {
  return std::count_if(compared.begin(), compared.end(),
                       [status](const WeightComparison& c) { return c.status == status; });
}

bool WeightDiffReport::consistent() const {
  if (!missing.empty() || !unexpected.empty()) return false;
  for (const WeightComparison& c : compared) {
    if (c.status == WeightStatus::kBitwiseEqual) continue;
    if (!c.gguf || !c.gguf->as_expected) return false;
  }
  return true;
}

std::vector<const WeightComparison*> WeightDiffReport::GgufWrong() const {
  std::vector<const WeightComparison*> wrong;
  for (const WeightComparison& c : compared) {
    if (c.gguf && !c.gguf->as_expected) wrong.push_back(&c);
  }
  return wrong;
}

std::string WeightDiffReport::GgufLine() const {
  int64_t checked = 0, as_expected = 0;
  std::map<std::string, int64_t> by_type;
  std::vector<std::string> wrong;
  for (const WeightComparison& c : compared) {
    const WeightSide& side = !c.b.stored_type.empty() ? c.b : c.a;
    if (side.stored_type.empty()) continue;
    ++checked;
    ++by_type[side.stored_type];
    if (!c.gguf || c.gguf->as_expected) {
      ++as_expected;
    } else {
      wrong.push_back(side.name);
    }
  }
  if (checked == 0) return "";
  std::vector<std::string> types;
  for (const auto& [name, count] : by_type) types.push_back(fmt::format("{} {}", count, name));
  std::string line = fmt::format("GGUF: {}/{} tensors as expected for their stored types ({})",
                                 as_expected, checked, fmt::join(types, ", "));
  if (!wrong.empty()) line += fmt::format("; {} WRONG: {}", wrong.size(), fmt::join(wrong, ", "));
  return line;
}

bool WeightDiffReport::identical() const {
  return missing.empty() && unexpected.empty() &&
         Count(WeightStatus::kBitwiseEqual) == static_cast<int64_t>(compared.size());
}

std::string WeightDiffReport::SummaryLine() const {
  return fmt::format(
      "{}/{} tensors bitwise equal; {} differ, {} dtype differences, {} shape mismatches, "
      "{} missing, {} unexpected",
      Count(WeightStatus::kBitwiseEqual), compared.size(), Count(WeightStatus::kValuesDiffer),
      Count(WeightStatus::kDtypeDiffers), Count(WeightStatus::kShapeMismatch), missing.size(),
      unexpected.size());
}

WeightDiffReport DiffWeights(const std::string& dir_a, const std::string& dir_b) {
  Side a = OpenSide(dir_a);
  Side b = OpenSide(dir_b);
  for (const std::string& name : a.checkpoint.names()) AddTensor(a, b.config.arch, name);
  for (const std::string& name : b.checkpoint.names()) AddTensor(b, a.config.arch, name);

  WeightDiffReport report;
  report.dir_a = dir_a;
  report.dir_b = dir_b;
  report.arch_a = model::ArchitectureName(a.config.arch);
  report.arch_b = model::ArchitectureName(b.config.arch);
  report.tensors_a = static_cast<int64_t>(a.checkpoint.names().size());
  report.tensors_b = static_cast<int64_t>(b.checkpoint.names().size());

  std::vector<std::pair<Key, const Entry*>> keys_a;
  for (const auto& [key, entry] : a.entries) keys_a.push_back({key, &entry});
  std::stable_sort(keys_a.begin(), keys_a.end(),
                   [](const auto& x, const auto& y) { return Order(x.first) < Order(y.first); });
  for (const auto& [key, entry] : keys_a) {
    auto found = b.entries.find(key);
    if (found == b.entries.end()) {
      report.missing.push_back({entry->side, fmt::format("no counterpart in B (expected {})",
                                                         NameIn(b.config, key))});
      continue;
    }
    report.compared.push_back(Compare(key, *entry, found->second, a, b));
  }
  for (const auto& [key, entry] : b.entries) {
    if (!a.entries.count(key)) {
      report.unexpected.push_back({entry.side, fmt::format("no counterpart in A (expected {})",
                                                           NameIn(a.config, key))});
    }
  }
  report.missing.insert(report.missing.end(), a.unknown.begin(), a.unknown.end());
  report.unexpected.insert(report.unexpected.end(), b.unknown.begin(), b.unknown.end());
  return report;
}

std::string WeightDiffReport::ExplainedLine() const {
  int64_t differing = 0, explained = 0;
  for (const WeightComparison& c : compared) {
    if (!c.explanation) continue;
    ++differing;
    explained += c.explanation->explained ? 1 : 0;
  }
  return fmt::format("{} of {} differing tensors explained", explained, differing);
}

nlohmann::json WeightDiffToJson(const WeightDiffReport& report) {
  nlohmann::json compared = nlohmann::json::array();
  for (const WeightComparison& c : report.compared) {
    nlohmann::json item = {{"key", c.key},
                           {"status", WeightStatusName(c.status)},
                           {"a", SideJson(c.a)},
                           {"b", SideJson(c.b)}};
    if (c.status == WeightStatus::kValuesDiffer || c.status == WeightStatus::kDtypeDiffers) {
      // NaN and infinity have no JSON spelling; nlohmann writes them as null.
      item["elements"] = c.elements;
      item["differing_elements"] = c.differing_elements;
      item["max_abs_diff"] = c.max_abs_diff;
      item["max_abs_a"] = c.max_abs_a;
      item["relative_error"] = c.relative_error;
      item["rms_diff"] = c.rms_diff;
      item["values_equal"] = c.values_equal;
      item["explanation"] = c.explanation ? WeightExplanationToJson(*c.explanation) : nlohmann::json();
      if (c.gguf) item["gguf"] = QuantizationCheckToJson(*c.gguf);
    }
    compared.push_back(std::move(item));
  }
  auto unmatched = [](const std::vector<UnmatchedTensor>& tensors) {
    nlohmann::json list = nlohmann::json::array();
    for (const UnmatchedTensor& t : tensors) {
      nlohmann::json item = SideJson(t.side);
      item["reason"] = t.reason;
      list.push_back(std::move(item));
    }
    return list;
  };
  return {{"command", "diff-weights"},
          {"a", {{"dir", report.dir_a}, {"arch", report.arch_a}, {"tensors", report.tensors_a}}},
          {"b", {{"dir", report.dir_b}, {"arch", report.arch_b}, {"tensors", report.tensors_b}}},
          {"compared", compared},
          {"missing", unmatched(report.missing)},
          {"unexpected", unmatched(report.unexpected)},
          {"counts",
           {{"compared", report.compared.size()},
            {"bitwise_equal", report.Count(WeightStatus::kBitwiseEqual)},
            {"values_differ", report.Count(WeightStatus::kValuesDiffer)},
            {"dtype_differs", report.Count(WeightStatus::kDtypeDiffers)},
            {"shape_mismatch", report.Count(WeightStatus::kShapeMismatch)},
            {"missing", report.missing.size()},
            {"unexpected", report.unexpected.size()}}},
          {"identical", report.identical()},
          {"consistent", report.consistent()},
          {"gguf", report.GgufLine()},
          {"summary", report.SummaryLine()},
          {"explained", report.ExplainedLine()}};
}

std::string FormatWeightDiff(const WeightDiffReport& report, bool all) {
  std::string text = fmt::format("A: {} ({}, {} tensors)\nB: {} ({}, {} tensors)\n", report.dir_a,
                                 report.arch_a, report.tensors_a, report.dir_b, report.arch_b,
                                 report.tensors_b);
  for (const WeightComparison& c : report.compared) {
    const std::string pair = fmt::format("{}: {} vs {}", c.key, c.a.name, c.b.name);
    switch (c.status) {
      case WeightStatus::kBitwiseEqual:
        if (all) {
          text += fmt::format("  {:<10} {} {} {}\n", "EQUAL", pair, ShapeText(c.a.shape), c.a.dtype);
        }
        break;
      case WeightStatus::kShapeMismatch:
        // As a loader that skips mismatched tensors reports them (A the checkpoint, B the model).
        text += fmt::format("  {:<10} {}: shape {} vs {} (a loader that checks shapes skips it: "
                            "checkpoint shape {} vs model shape {})\n", "SHAPE", pair,
                            ShapeText(c.a.shape), ShapeText(c.b.shape), ShapeText(c.a.shape),
                            ShapeText(c.b.shape));
        break;
      case WeightStatus::kValuesDiffer:
      case WeightStatus::kDtypeDiffers: {
        if (c.gguf) {
          const std::string type = !c.b.stored_type.empty() ? c.b.stored_type : c.a.stored_type;
          if (c.gguf->as_expected && !all) break;
          text += fmt::format("  {:<10} {} {} {}: {}\n", c.gguf->as_expected ? "EXPECTED" : "WRONG",
                              pair, ShapeText(c.a.shape), type, c.gguf->sentence);
          if (c.explanation && !c.gguf->as_expected && c.gguf->finding == "unexplained") {
            text += ExplanationLine(*c.explanation);
          }
          break;
        }
        const bool dtype = c.status == WeightStatus::kDtypeDiffers;
        text += fmt::format("  {:<10} {} {} {}: ", dtype ? "DTYPE" : "DIFFER", pair,
                            ShapeText(c.a.shape),
                            dtype ? fmt::format("{} vs {}", c.a.dtype, c.b.dtype) : c.a.dtype);
        if (c.values_equal) {
          text += dtype ? "values equal after upcast to FP64\n"
                        : "bytes differ but every value compares equal (e.g. +0 vs -0)\n";
        } else {
          text += fmt::format("max|diff| {:.6g}, max|a| {:.6g}, relative {:.6g}, rms {:.6g}, {} of {} "
                              "elements differ\n",
                              c.max_abs_diff, c.max_abs_a, c.relative_error, c.rms_diff,
                              c.differing_elements, c.elements);
        }
        if (c.explanation) text += ExplanationLine(*c.explanation);
        break;
      }
    }
  }
  for (const UnmatchedTensor& t : report.missing) text += UnmatchedLine("MISSING", t);
  for (const UnmatchedTensor& t : report.unexpected) text += UnmatchedLine("UNEXPECTED", t);
  text += report.SummaryLine() + "\n";
  if (!report.GgufLine().empty()) text += report.GgufLine() + "\n";
  if (report.Count(WeightStatus::kValuesDiffer) + report.Count(WeightStatus::kDtypeDiffers) > 0) {
    text += report.ExplainedLine() + "\n";
  }
  return text;
}

}  // namespace parity::compare
