#include "harness/compare/case.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "harness/core/error.h"
#include "harness/forward/placement.h"

namespace parity::compare {
namespace {

using Json = nlohmann::ordered_json;

// Collects every problem of a case, each as "<file>: <field>: <what>", and throws them together.
class Problems {
 public:
  explicit Problems(std::string path) : path_(std::move(path)) {}
  void Add(const std::string& field, const std::string& what) {
    lines_.push_back(fmt::format("{}: {}: {}", path_, field, what));
  }
  void ThrowIfAny() const {
    if (lines_.empty()) return;
    std::string message;
    for (size_t i = 0; i < lines_.size(); ++i) message += (i ? "\n" : "") + lines_[i];
    throw InputError(message);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> lines_;
};

std::string Got(const Json& value) { return value.dump(); }

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out;
}

// Reports every key of `object` not in `allowed`.
void CheckKeys(const Json& object, const std::string& where, const std::vector<std::string>& allowed,
               Problems& problems) {
  for (const auto& item : object.items()) {
    if (std::find(allowed.begin(), allowed.end(), item.key()) == allowed.end()) {
      problems.Add(where.empty() ? item.key() : where + "." + item.key(),
                   fmt::format("unknown field (expected one of {})", Join(allowed)));
    }
  }
}

std::string Field(const std::string& where, const std::string& key) {
  return where.empty() ? key : where + "." + key;
}

// A precision or a precision policy ("bf16+fp32:norm"); a problem naming the bad token otherwise.
// `after` (" after '@'" or "") words the message for a plain name that is no precision.
std::optional<forward::PrecisionPolicy> PolicyFromText(const std::string& text,
                                                       const std::string& field,
                                                       Problems& problems,
                                                       const std::string& after = "") {
  if (text.find('+') == std::string::npos && !forward::TryParsePrecisionPolicy(text)) {
    problems.Add(field, fmt::format("expected {}{}, got \"{}\"", forward::kPrecisionNames, after,
                                    text));
    return std::nullopt;
  }
  try {
    return forward::ParsePrecisionPolicy(text);
  } catch (const InputError& error) {
    problems.Add(field, error.what());
    return std::nullopt;
  }
}

std::optional<forward::PrecisionPolicy> ParsePrecisionField(const Json& value,
                                                            const std::string& field,
                                                            Problems& problems) {
  if (!value.is_string()) {
    problems.Add(field, fmt::format("expected {} (or a precision policy), got {}",
                                    forward::kPrecisionNames, Got(value)));
    return std::nullopt;
  }
  return PolicyFromText(value.get<std::string>(), field, problems);
}

// Typed optional getters: absent -> std::nullopt; wrong type -> a problem and std::nullopt.
std::optional<std::string> GetString(const Json& object, const std::string& key,
                                     const std::string& where, Problems& problems) {
  auto it = object.find(key);
  if (it == object.end()) return std::nullopt;
  if (!it->is_string()) {
    problems.Add(Field(where, key), fmt::format("expected a string, got {}", Got(*it)));
    return std::nullopt;
  }
  return it->get<std::string>();
}
std::optional<bool> GetBool(const Json& object, const std::string& key, const std::string& where,
                            Problems& problems) {
  auto it = object.find(key);
  if (it == object.end()) return std::nullopt;
  if (!it->is_boolean()) {
    problems.Add(Field(where, key), fmt::format("expected true or false, got {}", Got(*it)));
    return std::nullopt;
  }
  return it->get<bool>();
}
std::optional<int64_t> GetInt(const Json& object, const std::string& key, const std::string& where,
                              int64_t minimum, Problems& problems) {
  auto it = object.find(key);
  if (it == object.end()) return std::nullopt;
  if (!it->is_number_integer() || it->get<int64_t>() < minimum) {
    problems.Add(Field(where, key),
                 fmt::format("expected an integer >= {}, got {}", minimum, Got(*it)));
    return std::nullopt;
  }
  return it->get<int64_t>();
}
std::optional<double> GetNumber(const Json& object, const std::string& key,
                                const std::string& where, double minimum, Problems& problems) {
  auto it = object.find(key);
  if (it == object.end()) return std::nullopt;
  if (!it->is_number() || it->get<double>() < minimum) {
    problems.Add(Field(where, key), fmt::format("expected a number >= {}, got {}", minimum, Got(*it)));
    return std::nullopt;
  }
  return it->get<double>();
}

// `case_level`: the case's own thresholds, which may also hold "drift", the gates of `parity drift`
// (read and checked by the report layer, which owns them; skipped here).
Thresholds ParseThresholdsInto(const Json& json, const Thresholds& base, const std::string& where,
                               bool case_level, Problems& problems) {
  Thresholds t = base;
  if (!json.is_object()) {
    problems.Add(where, fmt::format("expected an object, got {}", Got(json)));
    return t;
  }
  std::vector<std::string> allowed = {"max_kl", "mean_kl", "p99_kl", "max_abs_logit_diff",
                                      "min_top1_agreement", "min_first_divergence_step",
                                      "fail_on_real_divergence", "require_oracle_acceptable"};
  if (case_level) allowed.push_back("drift");
  CheckKeys(json, where, allowed, problems);
  // null switches a gate inherited from the case off.
  auto number = [&](const char* key, std::optional<double>& out) {
    auto it = json.find(key);
    if (it == json.end()) return;
    if (it->is_null()) {
      out.reset();
    } else if (auto v = GetNumber(json, key, where, 0, problems)) {
      out = v;
    }
  };
  number("max_kl", t.max_kl);
  number("mean_kl", t.mean_kl);
  number("p99_kl", t.p99_kl);
  number("max_abs_logit_diff", t.max_abs_logit_diff);
  number("min_top1_agreement", t.min_top1_agreement);
  if (t.min_top1_agreement && *t.min_top1_agreement > 1) {
    problems.Add(Field(where, "min_top1_agreement"),
                 fmt::format("expected a fraction in [0, 1], got {}", *t.min_top1_agreement));
  }
  if (auto it = json.find("min_first_divergence_step"); it != json.end()) {
    if (it->is_null()) {
      t.min_first_divergence_step.reset();
    } else if (auto v = GetInt(json, "min_first_divergence_step", where, 0, problems)) {
      t.min_first_divergence_step = v;
    }
  }
  if (auto v = GetBool(json, "fail_on_real_divergence", where, problems)) {
    t.fail_on_real_divergence = *v;
  }
  if (auto v = GetBool(json, "require_oracle_acceptable", where, problems)) {
    t.require_oracle_acceptable = *v;
  }
  return t;
}

std::string ResolvePath(const std::string& case_path, const std::string& relative) {
  std::filesystem::path p(relative);
  if (p.is_absolute()) return p.lexically_normal().string();
  std::filesystem::path base = std::filesystem::path(case_path).parent_path();
  return (base / p).lexically_normal().string();
}

void ParseModels(const Json& json, Case& c, Problems& problems) {
  auto it = json.find("models");
  if (it == json.end()) {
    problems.Add("models", "missing field (an object of label -> {\"path\": ...})");
    return;
  }
  if (!it->is_object() || it->empty()) {
    problems.Add("models", fmt::format("expected a non-empty object, got {}", Got(*it)));
    return;
  }
  for (const auto& item : it->items()) {
    std::string where = "models." + item.key();
    CaseModel model;
    model.label = item.key();
    if (model.label.empty() || model.label.find_first_of("@/ ") != std::string::npos) {
      problems.Add(where, "a label must be non-empty without '@', '/' or spaces");
    }
    const Json& spec = item.value();
    if (!spec.is_object()) {
      problems.Add(where, fmt::format("expected an object, got {}", Got(spec)));
      continue;
    }
    CheckKeys(spec, where, {"path", "convert_from"}, problems);
    auto path = GetString(spec, "path", where, problems);
    model.convert_from = GetString(spec, "convert_from", where, problems);
    if (path && model.convert_from) {
      problems.Add(where, "give either path or convert_from, not both (a converted model is "
                          "written into the output directory)");
    } else if (!path && !model.convert_from && !spec.contains("path") &&
               !spec.contains("convert_from")) {
      problems.Add(where, "missing field path (or convert_from)");
    }
    if (path) model.path = ResolvePath(problems.path(), *path);
    c.models.push_back(model);
  }
  for (const CaseModel& model : c.models) {
    if (!model.convert_from || !model.path.empty()) continue;  // path + convert_from: reported above
    auto source = std::find_if(c.models.begin(), c.models.end(),
                               [&](const CaseModel& m) { return m.label == *model.convert_from; });
    if (source == c.models.end()) {
      problems.Add("models." + model.label + ".convert_from",
                   fmt::format("no model labelled \"{}\"", *model.convert_from));
    } else if (source->convert_from) {
      problems.Add("models." + model.label + ".convert_from",
                   fmt::format("\"{}\" is itself converted; convert from a model with a path",
                               *model.convert_from));
    }
  }
}

void ParsePrompts(const Json& json, Case& c, Problems& problems) {
  auto it = json.find("prompts");
  if (it == json.end()) {
    problems.Add("prompts", "missing field (an array of texts or {\"tokens\": [...]})");
    return;
  }
  if (!it->is_array() || it->empty()) {
    problems.Add("prompts", fmt::format("expected a non-empty array, got {}", Got(*it)));
    return;
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& item = (*it)[i];
    std::string where = fmt::format("prompts[{}]", i);
    CasePrompt prompt;
    prompt.chat = c.chat;
    if (item.is_string()) {
      prompt.text = item.get<std::string>();
    } else if (item.is_object()) {
      CheckKeys(item, where, {"text", "tokens", "chat"}, problems);
      prompt.text = GetString(item, "text", where, problems);
      if (auto chat = GetBool(item, "chat", where, problems)) prompt.chat = *chat;
      if (auto tokens = item.find("tokens"); tokens != item.end()) {
        bool ok = tokens->is_array() && !tokens->empty();
        for (const Json& t : *tokens) {
          if (!t.is_number_integer() || t.get<int64_t>() < 0) ok = false;
        }
        if (!ok) {
          problems.Add(where + ".tokens",
                       fmt::format("expected a non-empty array of token ids >= 0, got {}", Got(*tokens)));
        } else {
          prompt.tokens = tokens->get<std::vector<int64_t>>();
        }
        if (item.contains("text")) problems.Add(where, "give either text or tokens, not both");
        if (item.contains("chat")) problems.Add(where + ".chat", "applies to text prompts only");
      } else if (!item.contains("text")) {
        problems.Add(where, "missing field text (or tokens)");
      }
    } else {
      problems.Add(where, fmt::format("expected a string or an object, got {}", Got(item)));
    }
    c.prompts.push_back(prompt);
  }
}

void ParseDtypes(const Json& json, Case& c, Problems& problems) {
  auto it = json.find("dtypes");
  if (it == json.end()) {
    c.dtypes = {forward::Precision::kFP32};
    return;
  }
  if (!it->is_array() || it->empty()) {
    problems.Add("dtypes", fmt::format("expected a non-empty array, got {}", Got(*it)));
    return;
  }
  for (size_t i = 0; i < it->size(); ++i) {
    if (auto p = ParsePrecisionField((*it)[i], fmt::format("dtypes[{}]", i), problems)) {
      if (std::find(c.dtypes.begin(), c.dtypes.end(), *p) != c.dtypes.end()) {
        problems.Add(fmt::format("dtypes[{}]", i), fmt::format("{} listed twice", Got((*it)[i])));
      }
      c.dtypes.push_back(*p);
    }
  }
}

// "label" or "label@dtype".
std::optional<std::pair<std::string, std::optional<forward::PrecisionPolicy>>> ParseSideText(
    const Json& value, const std::string& where, const Case& c, Problems& problems) {
  if (!value.is_string()) {
    problems.Add(where, fmt::format("expected \"model\" or \"model@dtype\", got {}", Got(value)));
    return std::nullopt;
  }
  std::string text = value.get<std::string>();
  std::string label = text;
  std::optional<forward::PrecisionPolicy> precision;
  if (size_t at = text.find('@'); at != std::string::npos) {
    label = text.substr(0, at);
    precision = PolicyFromText(text.substr(at + 1), where, problems, " after '@'");
    if (!precision) return std::nullopt;
  }
  bool known = std::any_of(c.models.begin(), c.models.end(),
                           [&](const CaseModel& m) { return m.label == label; });
  if (!known) {
    std::vector<std::string> labels;
    for (const CaseModel& m : c.models) labels.push_back(m.label);
    problems.Add(where, fmt::format("no model labelled \"{}\" (models: {})", label, Join(labels)));
    return std::nullopt;
  }
  return std::make_pair(label, precision);
}

void ParsePairs(const Json& json, Case& c, Problems& problems) {
  auto it = json.find("pairs");
  if (it == json.end()) {
    if (c.models.size() != 2) {
      if (!c.models.empty()) {
        problems.Add("pairs", fmt::format("missing field: required unless exactly two models are "
                                          "given ({} are)", c.models.size()));
      }
      return;
    }
    for (const forward::PrecisionPolicy& p : c.dtypes) {
      c.pairs.push_back({{c.models[0].label, p}, {c.models[1].label, p}, c.thresholds});
    }
    return;
  }
  if (!it->is_array() || it->empty()) {
    problems.Add("pairs", fmt::format("expected a non-empty array, got {}", Got(*it)));
    return;
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& item = (*it)[i];
    std::string where = fmt::format("pairs[{}]", i);
    if (!item.is_object()) {
      problems.Add(where, fmt::format("expected an object, got {}", Got(item)));
      continue;
    }
    CheckKeys(item, where, {"a", "b", "dtype", "thresholds"}, problems);
    if (!item.contains("a")) problems.Add(where, "missing field a");
    if (!item.contains("b")) problems.Add(where, "missing field b");
    if (!item.contains("a") || !item.contains("b")) continue;
    auto a = ParseSideText(item["a"], where + ".a", c, problems);
    auto b = ParseSideText(item["b"], where + ".b", c, problems);
    std::optional<forward::PrecisionPolicy> dtype;
    if (item.contains("dtype")) {
      dtype = ParsePrecisionField(item["dtype"], where + ".dtype", problems);
      if (!dtype) continue;
    }
    Thresholds thresholds = c.thresholds;
    if (item.contains("thresholds")) {
      thresholds = ParseThresholdsInto(item["thresholds"], c.thresholds, where + ".thresholds",
                                       /*case_level=*/false, problems);
    }
    if (!a || !b) continue;
    if (a->second && b->second && dtype) {
      problems.Add(where + ".dtype", "both sides name their dtype with '@'; dtype is unused");
      continue;
    }
    // A side without '@' takes the pair's dtype, or each of the case's dtypes in turn.
    std::vector<forward::PrecisionPolicy> expand =
        dtype ? std::vector<forward::PrecisionPolicy>{*dtype} : c.dtypes;
    if (a->second && b->second) expand = {*a->second};
    for (const forward::PrecisionPolicy& p : expand) {
      CasePair pair{{a->first, a->second.value_or(p)}, {b->first, b->second.value_or(p)},
                    thresholds};
      if (pair.a.model == pair.b.model && pair.a.precision == pair.b.precision) {
        problems.Add(where, fmt::format("compares {} with itself", SideLabel(pair.a)));
        break;
      }
      c.pairs.push_back(pair);
    }
  }
}

}  // namespace

std::string SideLabel(const CaseSide& side) {
  return fmt::format("{}@{}", side.model, side.precision.Text());
}

const CaseModel& Case::Model(const std::string& label) const {
  for (const CaseModel& model : models) {
    if (model.label == label) return model;
  }
  throw InputError(fmt::format("{}: no model labelled \"{}\"", path.value_or(name), label));
}

const std::string& Case::SideDevices(bool a) const {
  const std::string& given = a ? devices_a : devices_b;
  return given.empty() ? device : given;
}

const std::string& Case::OracleDevices() const {
  return oracle_device.empty() ? device : oracle_device;
}

decode::GraphMode ParseCudaGraphs(const std::string& text, const std::string& field) {
  if (text == "auto") return decode::GraphMode::kAuto;
  if (text == "off") return decode::GraphMode::kOff;
  throw InputError(fmt::format("{}: expected \"auto\" or \"off\", got \"{}\"", field, text));
}

Thresholds ParseThresholds(const nlohmann::ordered_json& json, const Thresholds& base,
                           const std::string& where, const std::string& path) {
  Problems problems(path);
  Thresholds t = ParseThresholdsInto(json, base, where, /*case_level=*/false, problems);
  problems.ThrowIfAny();
  return t;
}

Case ParseCase(const nlohmann::ordered_json& json, const std::string& path) {
  Problems problems(path);
  Case c;
  c.path = path;
  if (!json.is_object()) {
    problems.Add("(top level)", fmt::format("expected an object, got {}", Got(json)));
    problems.ThrowIfAny();
  }
  CheckKeys(json, "",
            {"name", "description", "models", "prompts", "chat", "dtypes", "pairs", "mode",
             "teacher", "max_new_tokens", "device", "seed", "top_k", "near_tie_ulps", "oracle",
             "oracle_device", "devices", "thresholds", "save_traces", "save_kld_base",
             "range_watch", "saturation_fraction", "cuda_graphs"},
            problems);
  if (auto name = GetString(json, "name", "", problems)) {
    c.name = *name;
    if (c.name.empty()) problems.Add("name", "must not be empty");
  } else if (!json.contains("name")) {
    problems.Add("name", "missing field");
  }
  GetString(json, "description", "", problems);
  if (auto chat = GetBool(json, "chat", "", problems)) c.chat = *chat;
  if (auto save = GetBool(json, "save_traces", "", problems)) c.save_traces = *save;
  if (auto save = GetBool(json, "save_kld_base", "", problems)) c.save_kld_base = *save;
  if (auto mode = GetString(json, "mode", "", problems)) {
    if (*mode == "free") {
      c.mode = decode::GreedyMode::kFree;
    } else if (*mode == "teacher_forced") {
      c.mode = decode::GreedyMode::kTeacherForced;
    } else {
      problems.Add("mode", fmt::format("expected \"free\" or \"teacher_forced\", got \"{}\"", *mode));
    }
  }
  if (auto teacher = GetString(json, "teacher", "", problems)) {
    if (*teacher != "a" && *teacher != "b") {
      problems.Add("teacher", fmt::format("expected \"a\" or \"b\", got \"{}\"", *teacher));
    }
    c.teacher_is_a = *teacher != "b";
  }
  if (auto n = GetInt(json, "max_new_tokens", "", 1, problems)) c.max_new_tokens = *n;
  auto is_device = [](const std::string& device) {
    return device == "cpu" || device == "cuda" ||
           (device.rfind("cuda:", 0) == 0 && device.size() > 5 &&
            device.find_first_not_of("0123456789", 5) == std::string::npos);
  };
  if (auto device = GetString(json, "device", "", problems)) {
    if (!is_device(*device)) problems.Add("device", fmt::format("expected \"cpu\", \"cuda\" or \"cuda:N\", got \"{}\"", *device));
    c.device = *device;
  }
  // Placements (forward/placement.h): each checked here, planned against memory at run time.
  auto placement = [&](const std::string& field, const std::string& text) {
    try {
      forward::ParsePlacementSpec(text, "placement");
    } catch (const InputError& e) {
      problems.Add(field, e.what());
    }
    return text;
  };
  if (auto device = GetString(json, "oracle_device", "", problems)) {
    c.oracle_device = placement("oracle_device", *device);
  }
  if (auto devices = json.find("devices"); devices != json.end()) {
    if (devices->is_string()) {
      c.devices_a = c.devices_b = placement("devices", devices->get<std::string>());
    } else if (devices->is_object()) {
      CheckKeys(*devices, "devices", {"a", "b"}, problems);
      if (auto a = GetString(*devices, "a", "devices", problems)) c.devices_a = placement("devices.a", *a);
      if (auto b = GetString(*devices, "b", "devices", problems)) c.devices_b = placement("devices.b", *b);
    } else {
      problems.Add("devices", fmt::format("expected a placement string (\"cuda:0,cuda:1\") or an "
                                          "object {{\"a\": ..., \"b\": ...}}, got {}", Got(*devices)));
    }
  }
  if (auto seed = GetInt(json, "seed", "", 0, problems)) c.seed = static_cast<uint64_t>(*seed);
  if (auto k = GetInt(json, "top_k", "", 1, problems)) c.top_k = *k;
  if (auto ulps = GetNumber(json, "near_tie_ulps", "", 0, problems)) c.near_tie_ulps = *ulps;
  if (json.contains("thresholds")) {
    c.thresholds = ParseThresholdsInto(json["thresholds"], Thresholds{}, "thresholds", /*case_level=*/true,
                                       problems);
  }
  ParseModels(json, c, problems);
  ParsePrompts(json, c, problems);
  ParseDtypes(json, c, problems);
  bool has_fp64 = std::find(c.dtypes.begin(), c.dtypes.end(),
                            forward::PrecisionPolicy(forward::Precision::kFP64)) != c.dtypes.end();
  c.oracle = has_fp64;
  if (auto oracle = GetBool(json, "oracle", "", problems)) c.oracle = *oracle;
  if (auto watch = GetBool(json, "range_watch", "", problems)) c.range_watch = *watch;
  if (auto fraction = GetNumber(json, "saturation_fraction", "", 0, problems)) {
    if (*fraction <= 0 || *fraction > 1) {
      problems.Add("saturation_fraction",
                   fmt::format("expected a fraction of the range in (0, 1], got {}", *fraction));
    } else {
      c.saturation_fraction = *fraction;
    }
  }
  if (auto graphs = GetString(json, "cuda_graphs", "", problems)) {
    try {
      c.cuda_graphs = ParseCudaGraphs(*graphs, "cuda_graphs");
    } catch (const InputError&) {
      problems.Add("cuda_graphs", fmt::format("expected \"auto\" or \"off\", got \"{}\"", *graphs));
    }
  }
  ParsePairs(json, c, problems);
  problems.ThrowIfAny();
  return c;
}

Case LoadCase(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot read the case file", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  nlohmann::ordered_json json;
  try {
    json = nlohmann::ordered_json::parse(buffer.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(fmt::format("{}: not valid JSON: {}", path, e.what()));
  }
  return ParseCase(json, path);
}

}  // namespace parity::compare
