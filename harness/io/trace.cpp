#include "harness/io/trace.h"

#include <filesystem>
#include <set>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/core/atomic_file.h"
#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/io/safetensors.h"

namespace parity::io {
namespace {

constexpr int kVersion = 1;

std::string Shape(const at::Tensor& t) { return fmt::format("[{}]", fmt::join(t.sizes(), ", ")); }

// safetensors' names for the dtypes a trace holds.
std::string DtypeName(at::ScalarType dtype) {
  if (dtype == at::kFloat) return "F32";
  if (dtype == at::kLong) return "I64";
  return c10::toString(dtype);
}

// Checks one array of prompt `p`: defined, dtype, rank, and the sizes given (-1: any).
void CheckArray(const std::string& where, const std::string& name, const at::Tensor& t,
                at::ScalarType dtype, std::vector<int64_t> sizes) {
  if (!t.defined()) throw InputError(fmt::format("{}: tensor '{}' is missing", where, name));
  bool ok = t.scalar_type() == dtype && t.dim() == static_cast<int64_t>(sizes.size());
  for (size_t d = 0; ok && d < sizes.size(); ++d) ok = sizes[d] < 0 || t.size(d) == sizes[d];
  if (!ok) {
    std::string want;
    for (int64_t s : sizes) want += (want.empty() ? "" : ", ") + (s < 0 ? std::string("*") : std::to_string(s));
    throw InputError(fmt::format("{}: tensor '{}': expected {} [{}], got {} {}", where, name,
                                 DtypeName(dtype), want, DtypeName(t.scalar_type()), Shape(t)));
  }
}

void CheckIds(const std::string& where, const std::string& name, const std::vector<int64_t>& ids,
              int64_t vocab) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      throw InputError(fmt::format("{}: tensor '{}': id {} at index {} is outside [0, {})", where,
                                   name, ids[i], i, vocab));
    }
  }
}

void Validate(const Trace& trace, const std::string& where) {
  if (trace.vocab_size <= 0) throw InputError(fmt::format("{}: vocab_size must be positive", where));
  if (trace.mode != "free" && trace.mode != "teacher_forced") {
    throw InputError(fmt::format("{}: mode '{}' (expected \"free\" or \"teacher_forced\")", where,
                                 trace.mode));
  }
  if (!trace.full_logits && (trace.top_k <= 0 || trace.top_k > trace.vocab_size)) {
    throw InputError(fmt::format("{}: top_k {} must be in [1, vocab_size {}]", where, trace.top_k,
                                 trace.vocab_size));
  }
  std::set<std::string> names;
  for (size_t i = 0; i < trace.prompts.size(); ++i) {
    const TracePrompt& p = trace.prompts[i];
    const std::string prefix = fmt::format("p{}.", i);
    if (!names.insert(p.name).second) {
      throw InputError(fmt::format("{}: prompt name '{}' appears twice", where, p.name));
    }
    const int64_t steps = static_cast<int64_t>(p.tokens.size());
    CheckIds(where, prefix + "prompt_tokens", p.prompt_tokens, trace.vocab_size);
    CheckIds(where, prefix + "tokens", p.tokens, trace.vocab_size);
    if (trace.full_logits) {
      CheckArray(where, prefix + "logits", p.logits, at::kFloat, {steps, trace.vocab_size});
    } else {
      CheckArray(where, prefix + "topk_ids", p.topk_ids, at::kLong, {steps, trace.top_k});
      CheckArray(where, prefix + "topk_logprobs", p.topk_logprobs, at::kFloat, {steps, trace.top_k});
      const at::Tensor ids = p.topk_ids.contiguous();
      const int64_t* data = ids.data_ptr<int64_t>();
      CheckIds(where, prefix + "topk_ids", std::vector<int64_t>(data, data + ids.numel()),
               trace.vocab_size);
    }
  }
}

at::Tensor IdsTensor(const std::vector<int64_t>& ids) {
  return at::tensor(at::ArrayRef<int64_t>(ids), at::kLong);
}

std::vector<int64_t> IdsVector(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

std::string JsonString(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string()) {
    throw InputError(fmt::format("{}: '{}' must be a string", where, key));
  }
  return j[key].get<std::string>();
}

// An integer field (a float such as 1e300 would be undefined behaviour to convert).
int64_t JsonInt(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_number_integer()) {
    throw InputError(fmt::format("{}: '{}' must be an integer", where, key));
  }
  return j[key].get<int64_t>();
}

}  // namespace

void WriteTrace(const std::string& dir, const Trace& trace) {
  Validate(trace, dir);
  std::filesystem::create_directories(dir);
  nlohmann::json prompts = nlohmann::json::array();
  std::vector<NamedTensor> tensors;
  for (size_t i = 0; i < trace.prompts.size(); ++i) {
    const TracePrompt& p = trace.prompts[i];
    const std::string prefix = fmt::format("p{}.", i);
    nlohmann::json entry = {{"name", p.name},
                            {"prompt_tokens", p.prompt_tokens.size()},
                            {"steps", p.tokens.size()}};
    if (p.text) entry["text"] = *p.text;
    prompts.push_back(entry);
    tensors.push_back({prefix + "prompt_tokens", IdsTensor(p.prompt_tokens)});
    tensors.push_back({prefix + "tokens", IdsTensor(p.tokens)});
    if (trace.full_logits) {
      tensors.push_back({prefix + "logits", p.logits.contiguous()});
    } else {
      tensors.push_back({prefix + "topk_ids", p.topk_ids.contiguous()});
      tensors.push_back({prefix + "topk_logprobs", p.topk_logprobs.contiguous()});
    }
  }
  nlohmann::json description = {
      {"format", "parity-trace"},
      {"version", kVersion},
      {"producer",
       {{"engine", trace.producer.engine},
        {"engine_version", trace.producer.engine_version},
        {"model", trace.producer.model},
        {"dtype", trace.producer.dtype},
        {"device", trace.producer.device},
        {"settings", trace.producer.settings}}},
      {"vocab_size", trace.vocab_size},
      {"content", trace.full_logits ? "logits" : "topk"},
      {"top_k", trace.full_logits ? nlohmann::json(nullptr) : nlohmann::json(trace.top_k)},
      {"mode", trace.mode},
      {"prompts", prompts}};
  // Arrays first: a reader that finds trace.json finds its arrays.
  WriteSafetensors(dir + "/trace.safetensors", InPythonWriteOrder(std::move(tensors)),
                   {{"format", "parity-trace"}});
  WriteFileAtomic(dir + "/trace.json", description.dump(1) + "\n");
}

Trace ReadTrace(const std::string& dir) {
  const std::string json_path = dir + "/trace.json";
  const std::string arrays_path = dir + "/trace.safetensors";
  if (!std::filesystem::exists(json_path)) {
    throw InputError(fmt::format("{}: missing; a trace directory holds trace.json and "
                                 "trace.safetensors (reports/TRACES.md)",
                                 json_path));
  }
  nlohmann::json j = ReadJsonFile(json_path);
  Trace trace;
  try {
    if (j.value("format", "") != "parity-trace") {
      throw InputError("'format' must be \"parity-trace\"");
    }
    if (!j.contains("version") || !j["version"].is_number_integer() || j["version"] != kVersion) {
      throw InputError(fmt::format("'version' must be {} (this Parity reads trace format {})",
                                   kVersion, kVersion));
    }
    const nlohmann::json& producer = j.at("producer");
    trace.producer.engine = JsonString(producer, "engine", "producer");
    trace.producer.engine_version = producer.value("engine_version", "");
    trace.producer.model = producer.value("model", "");
    trace.producer.dtype = producer.value("dtype", "");
    trace.producer.device = producer.value("device", "");
    trace.producer.settings = producer.value("settings", nlohmann::json::object());
    trace.vocab_size = JsonInt(j, "vocab_size", "trace");
    const std::string content = JsonString(j, "content", "trace");
    if (content != "logits" && content != "topk") {
      throw InputError(fmt::format("'content' is '{}' (expected \"logits\" or \"topk\")", content));
    }
    trace.full_logits = content == "logits";
    if (!trace.full_logits) trace.top_k = JsonInt(j, "top_k", "trace");
    trace.mode = JsonString(j, "mode", "trace");
    if (!j.contains("prompts") || !j["prompts"].is_array()) {
      throw InputError("'prompts' must be an array");
    }
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: {}", json_path, e.what()));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: {}", json_path, e.what()));
  }

  SafetensorsFile arrays = SafetensorsFile::Open(arrays_path);
  std::set<std::string> expected_names;
  auto get = [&](const std::string& name) -> at::Tensor {
    expected_names.insert(name);
    if (!arrays.Contains(name)) throw InputError(fmt::format("{}: tensor '{}' is missing", arrays_path, name));
    return arrays.Get(name).clone();
  };
  const nlohmann::json& prompts = j.at("prompts");
  for (size_t i = 0; i < prompts.size(); ++i) {
    const nlohmann::json& entry = prompts[i];
    const std::string prefix = fmt::format("p{}.", i);
    const std::string where = fmt::format("{}: prompts[{}]", json_path, i);
    if (!entry.is_object()) throw InputError(where + " must be an object");
    TracePrompt p;
    p.name = fmt::format("p{}", i);
    if (entry.contains("name")) p.name = JsonString(entry, "name", where);
    if (entry.contains("text") && entry["text"].is_string()) p.text = entry["text"].get<std::string>();
    for (const char* key : {"prompt_tokens", "steps"}) {
      if (entry.contains(key)) (void)JsonInt(entry, key, where);
    }
    at::Tensor prompt_tokens = get(prefix + "prompt_tokens");
    at::Tensor tokens = get(prefix + "tokens");
    CheckArray(arrays_path, prefix + "prompt_tokens", prompt_tokens, at::kLong, {-1});
    CheckArray(arrays_path, prefix + "tokens", tokens, at::kLong, {-1});
    p.prompt_tokens = IdsVector(prompt_tokens);
    p.tokens = IdsVector(tokens);
    if (entry.value("prompt_tokens", -1) != static_cast<int64_t>(p.prompt_tokens.size()) ||
        entry.value("steps", -1) != static_cast<int64_t>(p.tokens.size())) {
      throw InputError(fmt::format(
          "{}: prompt {} ('{}') says {} prompt tokens and {} steps, {} holds {} and {}", json_path,
          i, p.name, entry.value("prompt_tokens", -1), entry.value("steps", -1), arrays_path,
          p.prompt_tokens.size(), p.tokens.size()));
    }
    if (trace.full_logits) {
      p.logits = get(prefix + "logits");
    } else {
      p.topk_ids = get(prefix + "topk_ids");
      p.topk_logprobs = get(prefix + "topk_logprobs");
    }
    trace.prompts.push_back(std::move(p));
  }
  for (const TensorInfo& info : arrays.tensors()) {
    if (!expected_names.count(info.name)) {
      throw InputError(fmt::format("{}: unexpected tensor '{}' (trace.json lists {} prompts of "
                                   "content '{}')",
                                   arrays_path, info.name, prompts.size(),
                                   trace.full_logits ? "logits" : "topk"));
    }
  }
  Validate(trace, arrays_path);
  return trace;
}

}  // namespace parity::io
