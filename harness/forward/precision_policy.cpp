#include "harness/forward/precision_policy.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "harness/core/error.h"

namespace parity::forward {

namespace {

struct ModuleEntry {
  Module module;
  const char* name;
  bool per_layer;
};
constexpr ModuleEntry kModules[] = {
    {Module::kEmbedding, "embedding", false},
    {Module::kAttentionProjections, "attn_proj", true},
    {Module::kAttentionScores, "attn_scores", true},
    {Module::kRotary, "rotary", false},
    {Module::kNorm, "norm", true},
    {Module::kMlp, "mlp", true},
    {Module::kRouter, "router", true},
    {Module::kResidual, "residual", true},
    {Module::kLmHead, "lm_head", false},
    {Module::kAll, "all", true},
};

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string ModuleList() {
  std::string out;
  for (const ModuleEntry& entry : kModules) out += std::string(out.empty() ? "" : ", ") + entry.name;
  return out;
}

// A non-negative decimal layer index, or nullopt.
std::optional<int64_t> ParseIndex(const std::string& text) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  return std::stoll(text);
}

std::vector<std::string> Split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return parts;
    start = end + 1;
  }
}

std::string RangeText(const PrecisionOverride& o) {
  if (!o.layers) return "";
  if (o.layers->first == o.layers->second) return fmt::format("[{}]", o.layers->first);
  return fmt::format("[{}-{}]", o.layers->first, o.layers->second);
}

// "mlp[20-23]" -> an override at `precision`; throws naming `token` within `text`.
PrecisionOverride ParseModule(const std::string& token, Precision precision,
                              const std::string& text) {
  auto fail = [&](const std::string& why) {
    throw InputError(fmt::format("precision policy '{}': {}", text, why));
  };
  std::string name = token, range;
  if (size_t open = token.find('['); open != std::string::npos) {
    if (token.back() != ']') fail(fmt::format("module '{}': a layer range is [N] or [N-M]", token));
    name = token.substr(0, open);
    range = token.substr(open + 1, token.size() - open - 2);
  }
  std::string lower = Lower(name);
  if (lower == "experts") lower = "mlp";
  const ModuleEntry* entry = nullptr;
  for (const ModuleEntry& e : kModules) {
    if (lower == e.name) entry = &e;
  }
  if (entry == nullptr) {
    fail(fmt::format("unknown module '{}' (expected {})", name.empty() ? token : name,
                     ModuleList()));
  }
  PrecisionOverride o{precision, entry->module, std::nullopt};
  if (token.find('[') != std::string::npos) {
    if (!entry->per_layer) {
      fail(fmt::format("module '{}' has one instance per model, not per layer: no layer range",
                       token));
    }
    const size_t dash = range.find('-');
    std::optional<int64_t> first = ParseIndex(range.substr(0, dash));
    std::optional<int64_t> last =
        dash == std::string::npos ? first : ParseIndex(range.substr(dash + 1));
    if (!first || !last) fail(fmt::format("module '{}': a layer range is [N] or [N-M]", token));
    if (*first > *last) fail(fmt::format("module '{}': range {} > {}", token, *first, *last));
    o.layers = std::make_pair(*first, *last);
  }
  return o;
}

bool Matches(const PrecisionOverride& o, Module module, int64_t layer) {
  if (o.module != Module::kAll && o.module != module) return false;
  if (!o.layers) return true;
  if (!ModuleIsPerLayer(module) || layer < 0) return false;  // ranges name layers only
  return layer >= o.layers->first && layer <= o.layers->second;
}

int Bits(Precision precision) {
  switch (precision) {
    case Precision::kBF16: return 8;
    case Precision::kFP16: return 11;
    case Precision::kFP32: return 24;
    case Precision::kFP64: return 53;
  }
  return 24;
}

}  // namespace

const char* ModuleName(Module module) {
  for (const ModuleEntry& entry : kModules) {
    if (entry.module == module) return entry.name;
  }
  return "?";
}

bool ModuleIsPerLayer(Module module) {
  for (const ModuleEntry& entry : kModules) {
    if (entry.module == module) return entry.per_layer;
  }
  return false;
}

std::vector<Module> AllModules() {
  std::vector<Module> modules;
  for (const ModuleEntry& entry : kModules) {
    if (entry.module != Module::kAll) modules.push_back(entry.module);
  }
  return modules;
}

Precision PrecisionPolicy::Of(Module module, int64_t layer) const {
  Precision precision = base;
  for (const PrecisionOverride& o : overrides) {
    if (Matches(o, module, layer)) precision = o.precision;
  }
  return precision;
}

Precision PrecisionPolicy::Widest() const {
  Precision widest = base;
  for (const PrecisionOverride& o : overrides) {
    if (Bits(o.precision) > Bits(widest)) widest = o.precision;
  }
  return widest;
}

Precision PrecisionPolicy::Coarsest() const {
  Precision coarsest = base;
  for (const PrecisionOverride& o : overrides) {
    if (Bits(o.precision) < Bits(coarsest)) coarsest = o.precision;
  }
  return coarsest;
}

std::string PrecisionPolicy::Text() const {
  std::string text = (tf32 && base == Precision::kFP32 && overrides.empty()) ? "tf32"
                                                                              : PrecisionName(base);
  for (size_t i = 0; i < overrides.size(); ++i) {
    const PrecisionOverride& o = overrides[i];
    const bool continues = i > 0 && overrides[i - 1].precision == o.precision;
    text += continues ? "," : fmt::format("+{}:", PrecisionName(o.precision));
    text += ModuleName(o.module) + RangeText(o);
  }
  if (tf32 && text != "tf32") text += "+tf32";
  return text;
}

void PrecisionPolicy::CheckLayers(int64_t num_layers) const {
  for (const PrecisionOverride& o : overrides) {
    if (o.layers && o.layers->second >= num_layers) {
      throw InputError(fmt::format("precision policy '{}': {}{} reaches past the model's {} layers "
                                   "(0..{})", Text(), ModuleName(o.module), RangeText(o),
                                   num_layers, num_layers - 1));
    }
  }
}

PrecisionPolicy ParsePrecisionPolicy(const std::string& text) {
  auto fail = [&](const std::string& why) {
    throw InputError(fmt::format("precision policy '{}': {}", text, why));
  };
  const std::vector<std::string> parts = Split(text, '+');
  PrecisionPolicy policy;
  if (Lower(parts[0]) == "tf32") {
    policy.base = Precision::kFP32;
    policy.tf32 = true;
  } else if (std::optional<Precision> base = TryParsePrecision(parts[0])) {
    policy.base = *base;
  } else {
    fail(fmt::format("unknown precision '{}' (expected {}, or tf32)", parts[0], kPrecisionNames));
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    if (Lower(part) == "tf32") {
      policy.tf32 = true;
      continue;
    }
    const size_t colon = part.find(':');
    if (colon == std::string::npos) {
      fail(fmt::format("'{}' is neither PRECISION:MODULES nor tf32", part));
    }
    std::optional<Precision> precision = TryParsePrecision(part.substr(0, colon));
    if (!precision) {
      fail(fmt::format("unknown precision '{}' (expected {})", part.substr(0, colon),
                       kPrecisionNames));
    }
    const std::string modules = part.substr(colon + 1);
    if (modules.empty()) fail(fmt::format("'{}' names no module", part));
    for (const std::string& token : Split(modules, ',')) {
      if (token.empty()) fail(fmt::format("'{}' has an empty module name", part));
      policy.overrides.push_back(ParseModule(token, *precision, text));
    }
  }
  return policy;
}

std::optional<PrecisionPolicy> TryParsePrecisionPolicy(const std::string& text) {
  try {
    return ParsePrecisionPolicy(text);
  } catch (const InputError&) {
    return std::nullopt;
  }
}

std::vector<std::string> SplitPolicyList(const std::string& text) {
  std::vector<std::string> out;
  for (const std::string& piece : Split(text, ',')) {
    const std::string head = Lower(piece.substr(0, piece.find('+')));
    const bool starts_policy = TryParsePrecision(head).has_value() || head == "tf32";
    const bool in_module_list = !out.empty() && out.back().find(':') != std::string::npos;
    if (out.empty() || starts_policy || !in_module_list) {
      out.push_back(piece);
    } else {
      out.back() += "," + piece;
    }
  }
  return out;
}

}  // namespace parity::forward
