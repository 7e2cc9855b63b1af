#include "harness/forward/placement.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>

#include <ATen/Context.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "harness/core/error.h"
#include "harness/forward/memory_plan.h"
#include "harness/model/arch.h"

namespace parity::forward {
namespace {

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string Trim(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t") + 1 - begin);
}

// "cuda" is device 0 for memory accounting (its tensors land on the current device, 0 here).
std::string Canonical(c10::Device device) {
  if (!device.is_cuda()) return "cpu";
  return fmt::format("cuda:{}", device.has_index() ? device.index() : 0);
}

std::optional<c10::Device> ParseDevice(const std::string& text) {
  if (text == "cpu") return c10::Device(c10::kCPU);
  if (text == "cuda") return c10::Device(c10::kCUDA);
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5 && text.size() < 9 &&
      text.find_first_not_of("0123456789", 5) == std::string::npos) {
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(std::stoi(text.substr(5))));
  }
  return std::nullopt;
}

// "40GB", "40G", "512MB", "40GiB", "1.5" (GB): bytes, or null.
std::optional<int64_t> ParseSize(const std::string& text) {
  size_t end = 0;
  double value = 0;
  try {
    value = std::stod(text, &end);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const std::string unit = Lower(text.substr(end));
  double scale = 0;
  if (unit.empty() || unit == "gb" || unit == "g") scale = 1e9;
  if (unit == "mb" || unit == "m") scale = 1e6;
  if (unit == "gib") scale = 1024.0 * 1024 * 1024;
  if (unit == "mib") scale = 1024.0 * 1024;
  if (scale == 0 || !(value > 0) || !std::isfinite(value) || value * scale > 9e18) {
    return std::nullopt;
  }
  return static_cast<int64_t>(value * scale);
}

Module ModuleOfRole(model::Role role) {
  using model::Role;
  switch (role) {
    case Role::kEmbedding: return Module::kEmbedding;
    case Role::kLmHead: return Module::kLmHead;
    case Role::kFinalNorm:
    case Role::kAttentionNorm:
    case Role::kMlpNorm:
    case Role::kQNorm:
    case Role::kKNorm: return Module::kNorm;
    case Role::kRouter: return Module::kRouter;
    case Role::kGate:
    case Role::kUp:
    case Role::kDown:
    case Role::kExpertGate:
    case Role::kExpertUp:
    case Role::kExpertDown:
    case Role::kExpertsGateUp:
    case Role::kExpertsDown:
    case Role::kGateBias:
    case Role::kUpBias:
    case Role::kDownBias: return Module::kMlp;
    default: return Module::kAttentionProjections;
  }
}

std::string LayerRange(const PlacementStage& s) {
  return s.layers() == 1 ? fmt::format("layer {}", s.first_layer)
                         : fmt::format("layers {}-{}", s.first_layer, s.end_layer - 1);
}

std::string StageParts(const Placement& p, size_t i) {
  std::vector<std::string> extra;
  if (i == 0) extra.push_back("embedding");
  if (i + 1 == p.stages.size()) {
    extra.push_back("norm");
    extra.push_back("lm_head");
  }
  std::string text = LayerRange(p.stages[i]);
  if (!extra.empty()) text += " + " + fmt::format("{}", fmt::join(extra, ", "));
  return text;
}

std::string StageNumbers(const PlacementStage& s) {
  return fmt::format("{} (weights {}, KV cache {}, activations and loading {})",
                     FormatBytes(s.needed()), FormatBytes(s.weight_bytes),
                     FormatBytes(s.cache_bytes), FormatBytes(s.work_bytes));
}

// One attempt at placing the model over `requests` (in order), with each stage's memory.
struct Attempt {
  Placement placement;
  bool fits = true;
};

// Fills each stage's byte figures from the layer counts.
void FillStages(Placement& p, const ModelCost& cost) {
  const size_t k = p.stages.size();
  for (size_t i = 0; i < k; ++i) {
    PlacementStage& s = p.stages[i];
    s.weight_bytes = s.cache_bytes = 0;
    for (int64_t l = s.first_layer; l < s.end_layer; ++l) {
      s.weight_bytes += cost.layer_weight_bytes[l];
      s.cache_bytes += cost.layer_cache_bytes[l];
    }
    const bool end = i == 0 || i + 1 == k;  // holds the embedding or the head table
    s.work_bytes = cost.activation_bytes + (end ? cost.transient_bytes : cost.layer_transient_bytes);
    if (i == 0) s.weight_bytes += cost.embedding_bytes;
    if (i + 1 == k) {
      s.weight_bytes += cost.head_bytes + (k > 1 ? cost.tied_head_bytes : 0);
      s.work_bytes += cost.logits_bytes;
    }
  }
}

void SetCounts(Placement& p, const std::vector<int64_t>& counts) {
  int64_t first = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    p.stages[i].first_layer = first;
    first += counts[i];
    p.stages[i].end_layer = first;
  }
}

bool Fits(const Placement& p) {
  for (const PlacementStage& s : p.stages) {
    if (s.free_bytes && s.needed() > *s.free_bytes) return false;
  }
  return true;
}

// Contiguous counts whose layer bytes follow `weights` (each stage's share), at least one layer each.
std::vector<int64_t> BalancedCounts(const ModelCost& cost, const std::vector<double>& weights) {
  const int64_t layers = static_cast<int64_t>(cost.layer_weight_bytes.size());
  const size_t k = weights.size();
  std::vector<double> bytes(layers);
  double total_bytes = 0;
  for (int64_t l = 0; l < layers; ++l) {
    bytes[l] = static_cast<double>(cost.layer_weight_bytes[l] + cost.layer_cache_bytes[l]);
    total_bytes += bytes[l];
  }
  const double total_weight = std::accumulate(weights.begin(), weights.end(), 0.0);
  std::vector<int64_t> counts(k, 0);
  double prefix = 0, boundary = 0;
  size_t stage = 0;
  boundary = total_weight > 0 ? total_bytes * weights[0] / total_weight : 0;
  for (int64_t l = 0; l < layers; ++l) {
    const double middle = prefix + bytes[l] / 2;
    while (stage + 1 < k && middle > boundary) {
      ++stage;
      boundary += total_weight > 0 ? total_bytes * weights[stage] / total_weight : 0;
    }
    ++counts[stage];
    prefix += bytes[l];
  }
  // Every stage holds at least one layer: take from the largest.
  for (size_t i = 0; i < k; ++i) {
    while (counts[i] == 0) {
      auto largest = std::max_element(counts.begin(), counts.end());
      --*largest;
      ++counts[i];
    }
  }
  return counts;
}

// Each stage in order takes as many layers as fit in its free figure, leaving one for each later
// stage; the last takes the rest (Fits decides whether that holds).
std::vector<int64_t> SequentialCounts(const Placement& p, const ModelCost& cost) {
  const int64_t layers = static_cast<int64_t>(cost.layer_weight_bytes.size());
  const int64_t k = static_cast<int64_t>(p.stages.size());
  std::vector<int64_t> counts(k, 1);
  int64_t placed = 0;
  for (int64_t i = 0; i + 1 < k; ++i) {
    int64_t need = cost.activation_bytes + (i == 0 ? cost.transient_bytes + cost.embedding_bytes
                                                   : cost.layer_transient_bytes);
    const int64_t most = layers - placed - (k - 1 - i);
    int64_t n = 0;
    while (n < most) {
      const int64_t layer = placed + n;
      const int64_t more = cost.layer_weight_bytes[layer] + cost.layer_cache_bytes[layer];
      if (n >= 1 && p.stages[i].free_bytes && need + more > *p.stages[i].free_bytes) break;
      need += more;
      ++n;
    }
    counts[i] = n;
    placed += n;
  }
  counts[k - 1] = layers - placed;
  return counts;
}

Attempt PlanOver(const std::vector<DeviceRequest>& requests, const ModelCost& cost,
                 DeviceLedger& ledger, const std::string& label) {
  const int64_t layers = static_cast<int64_t>(cost.layer_weight_bytes.size());
  const size_t k = requests.size();
  if (static_cast<int64_t>(k) > layers) {
    throw InputError(fmt::format("{}: {} devices for {} layers: every device holds at least one "
                                 "layer", label, k, layers));
  }
  Attempt attempt;
  Placement& p = attempt.placement;
  std::map<std::string, int64_t> sharing;  // stages per physical device
  for (const DeviceRequest& r : requests) ++sharing[Canonical(r.device)];
  for (const DeviceRequest& r : requests) {
    PlacementStage s;
    s.device = r.device;
    if (std::optional<int64_t> free = ledger.Free(r.device)) {
      s.free_bytes = *free / sharing[Canonical(r.device)];
      s.free_source = ledger.Source(r.device);
    }
    if (r.memory_cap && (!s.free_bytes || *r.memory_cap < *s.free_bytes)) {
      s.free_bytes = r.memory_cap;
      s.free_source = "@" + FormatBytes(*r.memory_cap);
    }
    p.stages.push_back(s);
  }
  const bool counted = requests.front().layers.has_value();
  const bool known = std::all_of(p.stages.begin(), p.stages.end(),
                                 [](const PlacementStage& s) { return s.free_bytes.has_value(); });
  std::vector<int64_t> counts;
  if (counted) {
    for (const DeviceRequest& r : requests) counts.push_back(*r.layers);
    const int64_t sum = std::accumulate(counts.begin(), counts.end(), int64_t{0});
    if (sum != layers) {
      throw InputError(fmt::format("{}: the layer counts add up to {}, the model has {} layers",
                                   label, sum, layers));
    }
    p.reason = "given layer counts";
  } else if (k == 1) {
    counts = {layers};
    p.reason = "one device";
  } else if (!known) {
    for (size_t i = 0; i < k; ++i) {
      counts.push_back(layers / static_cast<int64_t>(k) + (static_cast<int64_t>(i) < layers % static_cast<int64_t>(k)));
    }
    p.reason = "layers spread evenly (free memory unknown)";
  } else {
    // Each device's share of the layers follows what it has left after its fixed parts.
    Placement fixed = p;
    SetCounts(fixed, std::vector<int64_t>(k, 0));
    FillStages(fixed, cost);
    std::vector<double> weights;
    for (const PlacementStage& s : fixed.stages) {
      weights.push_back(static_cast<double>(std::max<int64_t>(*s.free_bytes - s.needed(), 0)));
    }
    if (std::all_of(weights.begin(), weights.end(), [](double w) { return w == 0; })) {
      weights.assign(k, 1.0);
    }
    counts = BalancedCounts(cost, weights);
    p.reason = fmt::format("balanced over {} devices in proportion to their free memory", k);
    SetCounts(p, counts);
    FillStages(p, cost);
    if (!Fits(p)) {
      std::vector<int64_t> in_order = SequentialCounts(p, cost);
      Placement trial = p;
      SetCounts(trial, in_order);
      FillStages(trial, cost);
      if (Fits(trial)) {
        counts = in_order;
        p.reason = "filled in device order (the balanced split did not fit)";
      }
    }
  }
  SetCounts(p, counts);
  FillStages(p, cost);
  attempt.fits = Fits(p);
  return attempt;
}

[[noreturn]] void Refuse(const Placement& p, const ModelCost& cost, const std::string& label,
                         const std::string& text) {
  std::string lines;
  for (size_t i = 0; i < p.stages.size(); ++i) {
    const PlacementStage& s = p.stages[i];
    lines += fmt::format("\n  {} on {}: needs {} for {}, {} available ({}){}", label,
                         s.device.str(), StageNumbers(s), StageParts(p, i),
                         s.free_bytes ? FormatBytes(*s.free_bytes) : "unknown", s.free_source,
                         s.free_bytes && s.needed() > *s.free_bytes ? "" : " (fits)");
  }
  throw InputError(fmt::format(
      "{} does not fit '{}' ({}; {} on one device); nothing was loaded.{}\nUse more devices "
      "(--devices cuda:0,cuda:1,... or auto), a lower precision, or for the FP64 oracle "
      "--oracle-device cpu (or other GPUs).",
      label, text, p.reason, FormatBytes(cost.total_one_device()), lines));
}

}  // namespace

Placement Placement::Single(c10::Device device, int64_t num_layers) {
  Placement p;
  PlacementStage s;
  s.device = device;
  s.end_layer = num_layers;
  p.stages.push_back(s);
  p.reason = "one device";
  return p;
}

size_t Placement::StageOf(int64_t layer) const {
  for (size_t i = 0; i < stages.size(); ++i) {
    if (layer < stages[i].end_layer) return i;
  }
  return stages.size() - 1;
}

void Placement::Validate(int64_t layers) const {
  if (stages.empty()) throw InputError("placement: no device");
  int64_t next = 0;
  for (const PlacementStage& s : stages) {
    if (s.first_layer != next || s.end_layer <= s.first_layer) {
      throw InputError(fmt::format("placement '{}': the stages must cover the layers in order, "
                                   "at least one layer each", Key()));
    }
    if (s.device.is_cuda() != stages.front().device.is_cuda()) {
      throw InputError(fmt::format(
          "placement '{}': one model's devices must be all CPU or all CUDA (FP16 is emulated on "
          "the CPU and native on CUDA, so the stages would not compute alike)", Key()));
    }
    next = s.end_layer;
  }
  if (next != layers) {
    throw InputError(fmt::format("placement '{}' holds {} layers, the model has {}", Key(), next,
                                 layers));
  }
}

std::string Placement::Describe() const {
  std::vector<std::string> parts;
  for (size_t i = 0; i < stages.size(); ++i) {
    parts.push_back(stages[i].device.str() + " " + StageParts(*this, i));
  }
  return fmt::format("{}", fmt::join(parts, "; "));
}

std::string Placement::DescribeWithNumbers() const {
  std::string text = reason;
  for (size_t i = 0; i < stages.size(); ++i) {
    const PlacementStage& s = stages[i];
    text += fmt::format("\n  {}: {}: {}", s.device.str(), StageParts(*this, i), StageNumbers(s));
    if (s.free_bytes) text += fmt::format(" of {} free ({})", FormatBytes(*s.free_bytes), s.free_source);
  }
  return text;
}

std::string Placement::Key() const {
  std::vector<std::string> parts;
  for (const PlacementStage& s : stages) parts.push_back(fmt::format("{}={}", s.device.str(), s.layers()));
  return fmt::format("{}", fmt::join(parts, ","));
}

nlohmann::json PlacementToJson(const Placement& p) {
  nlohmann::json stages = nlohmann::json::array();
  for (size_t i = 0; i < p.stages.size(); ++i) {
    const PlacementStage& s = p.stages[i];
    stages.push_back({{"device", s.device.str()},
                      {"layers", {s.first_layer, s.end_layer - 1}},
                      {"embedding", i == 0},
                      {"head", i + 1 == p.stages.size()},
                      {"weight_bytes", s.weight_bytes},
                      {"cache_bytes", s.cache_bytes},
                      {"work_bytes", s.work_bytes},
                      {"free_bytes", s.free_bytes ? nlohmann::json(*s.free_bytes) : nlohmann::json()},
                      {"free_source", s.free_source}});
  }
  return {{"plan", p.Describe()}, {"reason", p.reason}, {"stages", stages}};
}

PlacementSpec ParsePlacementSpec(const std::string& given, const std::string& where) {
  PlacementSpec spec;
  spec.text = Trim(given);
  auto bad = [&](const std::string& why) {
    return InputError(fmt::format(
        "{}: '{}': {} (expected auto, or DEVICE[=LAYERS][@SIZE] items separated by commas, "
        "DEVICE = cpu, cuda or cuda:N, e.g. cuda:0,cuda:1 or cuda:0=20,cuda:1=12 or "
        "cuda:0@40GB,cuda:1)", where, given, why));
  };
  if (spec.text.empty()) throw bad("empty");
  if (Lower(spec.text) == "auto") {
    spec.automatic = true;
    return spec;
  }
  size_t start = 0;
  while (start <= spec.text.size()) {
    size_t comma = spec.text.find(',', start);
    if (comma == std::string::npos) comma = spec.text.size();
    std::string item = Trim(spec.text.substr(start, comma - start));
    start = comma + 1;
    if (item.empty()) throw bad("an empty item");
    DeviceRequest r;
    if (size_t at = item.find('@'); at != std::string::npos) {
      r.memory_cap = ParseSize(item.substr(at + 1));
      if (!r.memory_cap) throw bad(fmt::format("'{}' is no memory size (e.g. 40GB)", item.substr(at + 1)));
      item = item.substr(0, at);
    }
    if (size_t eq = item.find('='); eq != std::string::npos) {
      const std::string count = item.substr(eq + 1);
      if (count.empty() || count.size() > 6 || count.find_first_not_of("0123456789") != std::string::npos ||
          std::stoll(count) < 1) {
        throw bad(fmt::format("'{}' is no layer count (a whole number >= 1)", count));
      }
      r.layers = std::stoll(count);
      item = item.substr(0, eq);
    }
    std::optional<c10::Device> device = ParseDevice(Lower(item));
    if (!device) throw bad(fmt::format("unknown device '{}'", item));
    r.device = *device;
    spec.devices.push_back(r);
    if (comma == spec.text.size()) break;
  }
  const size_t counted = std::count_if(spec.devices.begin(), spec.devices.end(),
                                       [](const DeviceRequest& r) { return r.layers.has_value(); });
  if (counted != 0 && counted != spec.devices.size()) {
    throw bad("give a layer count for every device or for none");
  }
  for (const DeviceRequest& r : spec.devices) {
    if (r.device.is_cuda() != spec.devices.front().device.is_cuda()) {
      throw bad("one model's devices must be all CPU or all CUDA (FP16 is emulated on the CPU and "
                "native on CUDA)");
    }
  }
  return spec;
}

bool IsSingleDevice(const PlacementSpec& spec) {
  return !spec.automatic && spec.devices.size() == 1 && !spec.devices[0].layers &&
         !spec.devices[0].memory_cap;
}

int64_t ModelCost::total_one_device() const {
  int64_t total = embedding_bytes + head_bytes + logits_bytes + activation_bytes + transient_bytes;
  for (int64_t b : layer_weight_bytes) total += b;
  for (int64_t b : layer_cache_bytes) total += b;
  return total;
}

ModelCost EstimateModelCost(const model::ModelConfig& config, const PrecisionPolicy& policy,
                            c10::DeviceType type, int64_t sequence_length) {
  const c10::Device device(type);
  auto bytes = [&](Module module, int64_t layer) {
    return StoredBytesPerElement(policy.Of(module, layer), device);
  };
  const int64_t t = std::max<int64_t>(sequence_length, 1);
  const int64_t widest = StoredBytesPerElement(policy.Widest(), device);
  ModelCost cost;
  cost.layer_weight_bytes.assign(config.num_layers, 0);
  cost.layer_cache_bytes.assign(config.num_layers, 0);
  const bool shared_head = config.tie_word_embeddings && policy.Of(Module::kLmHead, -1) ==
                                                             policy.Of(Module::kEmbedding, -1);
  for (const model::ExpectedTensor& e : model::ExpectedTensors(config)) {
    int64_t elements = 1;
    for (int64_t d : e.shape) elements *= d;
    if (e.role == model::Role::kLmHead && config.tie_word_embeddings) continue;
    const int64_t b = elements * bytes(ModuleOfRole(e.role), e.layer);
    if (e.layer >= 0 && e.layer < config.num_layers) {
      cost.layer_weight_bytes[e.layer] += b;
    } else if (e.role == model::Role::kEmbedding) {
      cost.embedding_bytes += b;
    } else {
      cost.head_bytes += b;
    }
  }
  const int64_t table = config.vocab_size * config.hidden_size;
  if (config.tie_word_embeddings) {
    (shared_head ? cost.tied_head_bytes : cost.head_bytes) += table * bytes(Module::kLmHead, -1);
  }
  for (int64_t l = 0; l < config.num_layers; ++l) {
    // Keys and values stored repeated to the query heads (causal_lm.h kStatic).
    cost.layer_cache_bytes[l] =
        2 * config.num_heads * config.head_dim * t * bytes(Module::kAttentionScores, l);
  }
  cost.activation_bytes = widest * t *
                          (4 * std::max(config.hidden_size, 3 * config.intermediate_size) +
                           config.num_heads * t);
  cost.logits_bytes = widest * t * 2 * config.vocab_size;
  cost.layer_transient_bytes = widest * config.intermediate_size * config.hidden_size;
  cost.transient_bytes = std::max(widest * table, cost.layer_transient_bytes);
  return cost;
}

DeviceLedger::DeviceLedger(std::optional<int64_t> limit) : limit_(limit) {}

DeviceLedger::DeviceLedger(const std::vector<std::pair<c10::Device, int64_t>>& devices)
    : synthetic_(true) {
  for (const auto& [device, free] : devices) {
    entries_[Canonical(device)] = {free, "test"};
    if (device.is_cuda()) synthetic_order_.push_back(device);
  }
}

DeviceLedger::Entry& DeviceLedger::Lookup(c10::Device device) {
  const std::string key = Canonical(device);
  auto it = entries_.find(key);
  if (it != entries_.end()) return it->second;
  Entry entry;
  if (!synthetic_) {
    const DeviceMemory memory = QueryDeviceMemory(device);
    entry.free = memory.available;
    entry.source = memory.source;
    if (limit_ && (!entry.free || *limit_ < *entry.free)) {
      entry.free = limit_;
      entry.source = "--memory-limit";
    }
  }
  return entries_.emplace(key, entry).first->second;
}

std::optional<int64_t> DeviceLedger::Free(c10::Device device) {
  const Entry& e = Lookup(device);
  if (!e.free) return std::nullopt;
  return std::max<int64_t>(*e.free, 0);
}

std::string DeviceLedger::Source(c10::Device device) { return Lookup(device).source; }

std::vector<c10::Device> DeviceLedger::AutoDevices() {
  std::vector<c10::Device> devices = synthetic_order_;
  if (!synthetic_) {
    const int count = at::hasCUDA() ? static_cast<int>(at::getNumGPUs()) : 0;
    for (int i = 0; i < count; ++i) devices.emplace_back(c10::kCUDA, static_cast<c10::DeviceIndex>(i));
  }
  if (devices.empty()) devices.emplace_back(c10::kCPU);
  return devices;
}

void DeviceLedger::Reserve(const Placement& placement) {
  for (const PlacementStage& s : placement.stages) {
    Entry& e = Lookup(s.device);
    if (e.free) *e.free -= s.needed();
  }
}

Placement PlanPlacement(const PlacementSpec& spec, const ModelCost& cost, DeviceLedger& ledger,
                        const std::string& what) {
  if (cost.layer_weight_bytes.empty()) throw InputError(what + ": a model without layers");
  Attempt attempt;
  if (spec.automatic) {
    const std::vector<c10::Device> candidates = ledger.AutoDevices();
    const size_t most = std::min(candidates.size(), cost.layer_weight_bytes.size());
    for (size_t k = 1; k <= most; ++k) {
      std::vector<DeviceRequest> requests;
      for (size_t i = 0; i < k; ++i) requests.push_back({candidates[i], std::nullopt, std::nullopt});
      attempt = PlanOver(requests, cost, ledger, what);
      attempt.placement.reason =
          fmt::format("auto: the fewest of {} device(s) that hold it: {}{}", candidates.size(), k,
                      k > 1 ? ", " + attempt.placement.reason : "");
      if (attempt.fits) break;
    }
  } else {
    attempt = PlanOver(spec.devices, cost, ledger, what);
  }
  if (!attempt.fits) Refuse(attempt.placement, cost, what, spec.text);
  ledger.Reserve(attempt.placement);
  return attempt.placement;
}

}  // namespace parity::forward
