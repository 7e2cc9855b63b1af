#include "harness/io/trace_import.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/core/error.h"

namespace parity::io {
namespace {

using nlohmann::json;

// One listed id of one step.
struct Entry {
  int64_t id = 0;
  double logprob = 0;
  std::optional<int64_t> rank;  // vLLM's 1-based vocabulary rank, when given
};

// One prompt as read from a response.
struct Parsed {
  std::string where;                          // "FILE: response 0, choice 1"
  std::optional<std::string> text;            // prompt text, when the file has it
  std::optional<std::vector<int64_t>> prompt;  // prompt ids, when the file has them
  std::vector<int64_t> tokens;                // the generated ids
  std::vector<std::vector<Entry>> steps;      // listed ids per step
  std::string model;                          // the response's "model", when given
};

[[noreturn]] void Fail(const std::string& where, const std::string& what) {
  throw InputError(fmt::format("{}: {}", where, what));
}

std::string Got(const json& value) {
  std::string text = value.dump();
  return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

const json& Field(const json& object, const char* key, const std::string& where) {
  if (!object.is_object()) Fail(where, fmt::format("expected an object, got {}", Got(object)));
  auto it = object.find(key);
  if (it == object.end()) Fail(where, fmt::format("missing field '{}'", key));
  return *it;
}

const json* OptionalField(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

const json& ArrayField(const json& object, const char* key, const std::string& where) {
  const json& value = Field(object, key, where);
  if (!value.is_array()) Fail(where, fmt::format("'{}': expected an array, got {}", key, Got(value)));
  return value;
}

double Number(const json& value, const std::string& where) {
  if (!value.is_number()) {
    Fail(where, fmt::format("expected a number (log-prob), got {}{}", Got(value),
                            value.is_null() ? " (a non-finite log-prob written as null?)" : ""));
  }
  return value.get<double>();
}

int64_t Id(const json& value, const std::string& where) {
  if (!value.is_number_integer()) Fail(where, fmt::format("expected a token id, got {}", Got(value)));
  return value.get<int64_t>();
}

std::vector<int64_t> Ids(const json& array, const std::string& where) {
  if (!array.is_array()) Fail(where, fmt::format("expected an array of token ids, got {}", Got(array)));
  std::vector<int64_t> ids;
  for (size_t i = 0; i < array.size(); ++i) ids.push_back(Id(array[i], fmt::format("{}[{}]", where, i)));
  return ids;
}

// A token string of the OpenAI APIs: "token_id:N", or through the tokenizer.
int64_t TokenStringId(const std::string& token, const std::string& where, const ImportOptions& options) {
  const std::string prefix = "token_id:";
  if (token.rfind(prefix, 0) == 0) {
    const std::string digits = token.substr(prefix.size());
    if (!digits.empty() && digits.size() < 19 &&
        digits.find_first_not_of("0123456789") == std::string::npos) {
      return std::stoll(digits);
    }
    Fail(where, fmt::format("token string '{}': expected token_id:N", token));
  }
  if (!options.token_id) {
    Fail(where, fmt::format("token string {}: mapping token strings to ids needs --tokenizer (or "
                            "request return_tokens_as_token_ids from vLLM)", json(token).dump()));
  }
  std::optional<int64_t> id = options.token_id(token);
  if (!id) {
    Fail(where, fmt::format("token string {} is not one token of the tokenizer, or spells several; "
                            "request return_tokens_as_token_ids (vLLM) to get ids", json(token).dump()));
  }
  return *id;
}

// vllm: a RequestOutput as JSON.
void ParseVllm(const json& response, const std::string& where, std::vector<Parsed>& out) {
  std::optional<std::vector<int64_t>> prompt;
  if (const json* ids = OptionalField(response, "prompt_token_ids")) prompt = Ids(*ids, where + ": prompt_token_ids");
  std::optional<std::string> text;
  if (const json* p = OptionalField(response, "prompt"); p && p->is_string()) text = p->get<std::string>();
  const json& outputs = ArrayField(response, "outputs", where);
  for (size_t o = 0; o < outputs.size(); ++o) {
    Parsed parsed;
    parsed.where = fmt::format("{}, outputs[{}]", where, o);
    parsed.prompt = prompt;
    parsed.text = text;
    parsed.tokens = Ids(Field(outputs[o], "token_ids", parsed.where), parsed.where + ": token_ids");
    const json& steps = Field(outputs[o], "logprobs", parsed.where);
    if (!steps.is_array()) {
      Fail(parsed.where, fmt::format("'logprobs': expected one object per step (SamplingParams("
                                     "logprobs=k)), got {}", Got(steps)));
    }
    for (size_t t = 0; t < steps.size(); ++t) {
      const std::string at = fmt::format("{}: logprobs[{}]", parsed.where, t);
      if (!steps[t].is_object()) Fail(at, fmt::format("expected an object id -> Logprob, got {}", Got(steps[t])));
      std::vector<Entry> entries;
      for (const auto& item : steps[t].items()) {
        const std::string key = item.key();
        if (key.empty() || key.size() > 18 || key.find_first_not_of("0123456789") != std::string::npos) {
          Fail(at, fmt::format("key '{}': expected a token id", key));
        }
        Entry e;
        e.id = std::stoll(key);
        const json& value = item.value();
        const std::string here = fmt::format("{}[\"{}\"]", at, key);
        if (value.is_object()) {
          e.logprob = Number(Field(value, "logprob", here), here + ".logprob");
          if (const json* rank = OptionalField(value, "rank")) e.rank = Id(*rank, here + ".rank");
        } else {
          e.logprob = Number(value, here);
        }
        entries.push_back(e);
      }
      parsed.steps.push_back(std::move(entries));
    }
    out.push_back(std::move(parsed));
  }
}

// sglang: a /generate response.
void ParseSglang(const json& response, const std::string& where, std::vector<Parsed>& out) {
  const json& meta = Field(response, "meta_info", where);
  Parsed parsed;
  parsed.where = where;
  auto triple = [](const json& item, const std::string& at) {
    if (!item.is_array() || item.size() < 2) {
      Fail(at, fmt::format("expected [logprob, token_id, text], got {}", Got(item)));
    }
    Entry e;
    e.logprob = item[0].is_null() ? NAN : Number(item[0], at + "[0]");
    e.id = Id(item[1], at + "[1]");
    return e;
  };
  if (const json* input = OptionalField(meta, "input_token_logprobs")) {
    std::vector<int64_t> ids;
    for (size_t i = 0; i < input->size(); ++i) {
      ids.push_back(triple((*input)[i], fmt::format("{}: meta_info.input_token_logprobs[{}]", where, i)).id);
    }
    // Only the whole prompt (logprob_start_len = 0) gives the prompt's ids.
    const json* count = OptionalField(meta, "prompt_tokens");
    if (count && count->is_number_integer() && count->get<int64_t>() == static_cast<int64_t>(ids.size())) {
      parsed.prompt = ids;
    }
  }
  const json& chosen = ArrayField(meta, "output_token_logprobs", where + ": meta_info");
  const json& top = ArrayField(meta, "output_top_logprobs", where + ": meta_info");
  if (top.size() != chosen.size()) {
    Fail(where, fmt::format("meta_info: output_top_logprobs has {} steps, output_token_logprobs {}",
                            top.size(), chosen.size()));
  }
  for (size_t t = 0; t < chosen.size(); ++t) {
    parsed.tokens.push_back(triple(chosen[t], fmt::format("{}: meta_info.output_token_logprobs[{}]", where, t)).id);
    const std::string at = fmt::format("{}: meta_info.output_top_logprobs[{}]", where, t);
    if (!top[t].is_array()) {
      Fail(at, fmt::format("expected a list of [logprob, token_id, text] (top_logprobs_num > 0), got {}",
                           Got(top[t])));
    }
    std::vector<Entry> entries;
    for (size_t i = 0; i < top[t].size(); ++i) {
      Entry e = triple(top[t][i], fmt::format("{}[{}]", at, i));
      if (std::isnan(e.logprob)) Fail(fmt::format("{}[{}]", at, i), "log-prob is null");
      entries.push_back(e);
    }
    parsed.steps.push_back(std::move(entries));
  }
  out.push_back(std::move(parsed));
}

// openai: completions or chat completions.
void ParseOpenAI(const json& response, const std::string& where, const ImportOptions& options,
                 std::vector<Parsed>& out) {
  const json& choices = ArrayField(response, "choices", where);
  std::string model;
  if (const json* m = OptionalField(response, "model"); m && m->is_string()) model = m->get<std::string>();
  for (size_t c = 0; c < choices.size(); ++c) {
    Parsed parsed;
    parsed.where = fmt::format("{}, choices[{}]", where, c);
    parsed.model = model;
    const json& choice = choices[c];
    if (const json* ids = OptionalField(choice, "prompt_token_ids")) {
      parsed.prompt = Ids(*ids, parsed.where + ": prompt_token_ids");
    }
    const json& logprobs = Field(choice, "logprobs", parsed.where);
    if (logprobs.is_null()) Fail(parsed.where, "'logprobs' is null: request logprobs (top-k)");
    if (const json* content = OptionalField(logprobs, "content")) {  // chat completions
      if (!content->is_array()) Fail(parsed.where, "logprobs.content: expected an array");
      for (size_t t = 0; t < content->size(); ++t) {
        const std::string at = fmt::format("{}: logprobs.content[{}]", parsed.where, t);
        const json& token = Field((*content)[t], "token", at);
        if (!token.is_string()) Fail(at, "'token': expected a string");
        parsed.tokens.push_back(TokenStringId(token.get<std::string>(), at + ".token", options));
        const json& top = ArrayField((*content)[t], "top_logprobs", at);
        std::vector<Entry> entries;
        for (size_t i = 0; i < top.size(); ++i) {
          const std::string here = fmt::format("{}.top_logprobs[{}]", at, i);
          const json& name = Field(top[i], "token", here);
          if (!name.is_string()) Fail(here, "'token': expected a string");
          entries.push_back({TokenStringId(name.get<std::string>(), here + ".token", options),
                             Number(Field(top[i], "logprob", here), here + ".logprob"), std::nullopt});
        }
        parsed.steps.push_back(std::move(entries));
      }
    } else {  // completions
      const json& tokens = ArrayField(logprobs, "tokens", parsed.where + ": logprobs");
      const json& top = ArrayField(logprobs, "top_logprobs", parsed.where + ": logprobs");
      if (top.size() != tokens.size()) {
        Fail(parsed.where, fmt::format("logprobs: {} tokens but {} top_logprobs entries",
                                       tokens.size(), top.size()));
      }
      for (size_t t = 0; t < tokens.size(); ++t) {
        const std::string at = fmt::format("{}: logprobs", parsed.where);
        if (!tokens[t].is_string()) Fail(fmt::format("{}.tokens[{}]", at, t), "expected a string");
        parsed.tokens.push_back(
            TokenStringId(tokens[t].get<std::string>(), fmt::format("{}.tokens[{}]", at, t), options));
        const std::string here = fmt::format("{}.top_logprobs[{}]", at, t);
        if (!top[t].is_object()) Fail(here, fmt::format("expected an object token -> log-prob, got {}", Got(top[t])));
        std::vector<Entry> entries;
        for (const auto& item : top[t].items()) {
          entries.push_back({TokenStringId(item.key(), here, options),
                             Number(item.value(), fmt::format("{}[{}]", here, json(item.key()).dump())),
                             std::nullopt});
        }
        parsed.steps.push_back(std::move(entries));
      }
    }
    if (const json* ids = OptionalField(choice, "token_ids")) {  // vLLM return_token_ids
      std::vector<int64_t> given = Ids(*ids, parsed.where + ": token_ids");
      if (given != parsed.tokens) Fail(parsed.where, "token_ids disagree with logprobs' tokens");
    }
    out.push_back(std::move(parsed));
  }
}

// The responses in `text`: one JSON value (an array is a list of responses) or JSON lines.
std::vector<json> Responses(const std::string& text, const std::string& source) {
  json whole = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!whole.is_discarded()) {
    if (whole.is_array()) return std::vector<json>(whole.begin(), whole.end());
    return {whole};
  }
  std::vector<json> lines;
  std::istringstream in(text);
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json value = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) {
      throw InputError(fmt::format(
          "{}: neither one JSON value nor JSON lines (line {} does not parse; Python's json.dumps "
          "writes NaN/Infinity for non-finite floats, which JSON does not allow)", source, number));
    }
    lines.push_back(std::move(value));
  }
  if (lines.empty()) throw InputError(fmt::format("{}: no responses in the file", source));
  return lines;
}

}  // namespace

ImportFormat ParseImportFormat(const std::string& text) {
  if (text == "vllm") return ImportFormat::kVllm;
  if (text == "sglang") return ImportFormat::kSglang;
  if (text == "openai") return ImportFormat::kOpenAI;
  throw InputError(fmt::format("--from: expected vllm, sglang or openai, got \"{}\"", text));
}

const char* ImportFormatName(ImportFormat format) {
  switch (format) {
    case ImportFormat::kVllm: return "vllm";
    case ImportFormat::kSglang: return "sglang";
    case ImportFormat::kOpenAI: return "openai";
  }
  return "vllm";
}

Trace ImportTrace(const std::string& text, const std::string& source, const ImportOptions& options) {
  if (options.vocab_size <= 0) throw InputError(fmt::format("{}: the vocabulary size must be known (> 0)", source));
  std::vector<json> responses = Responses(text, source);
  std::vector<Parsed> parsed;
  for (size_t r = 0; r < responses.size(); ++r) {
    const std::string where = fmt::format("{}: response {}", source, r);
    switch (options.format) {
      case ImportFormat::kVllm: ParseVllm(responses[r], where, parsed); break;
      case ImportFormat::kSglang: ParseSglang(responses[r], where, parsed); break;
      case ImportFormat::kOpenAI: ParseOpenAI(responses[r], where, options, parsed); break;
    }
  }
  if (parsed.empty()) throw InputError(fmt::format("{}: no prompts in the file", source));
  if (options.prompt_tokens.size() > parsed.size()) {
    throw InputError(fmt::format("{}: {} prompts given, the file holds {}", source,
                                 options.prompt_tokens.size(), parsed.size()));
  }
  // K: as asked, else the fewest listed at any step (vLLM adds the sampled token when outside).
  int64_t k = options.top_k;
  if (k <= 0) {
    k = INT64_MAX;
    for (const Parsed& p : parsed) {
      for (const auto& step : p.steps) k = std::min<int64_t>(k, static_cast<int64_t>(step.size()));
    }
    if (k == INT64_MAX) k = 1;  // no steps at all
  }
  if (k <= 0) throw InputError(fmt::format("{}: a step lists no log-probs (request top-k > 0)", source));

  Trace trace;
  trace.producer = options.producer;
  if (trace.producer.engine.empty()) trace.producer.engine = ImportFormatName(options.format);
  if (trace.producer.model.empty() && !parsed.front().model.empty()) trace.producer.model = parsed.front().model;
  trace.producer.settings["imported_from"] = source;
  trace.producer.settings["format"] = ImportFormatName(options.format);
  trace.vocab_size = options.vocab_size;
  trace.full_logits = false;
  trace.top_k = k;
  trace.mode = "free";
  for (size_t i = 0; i < parsed.size(); ++i) {
    Parsed& p = parsed[i];
    TracePrompt prompt;
    prompt.name = fmt::format("p{}", i);
    prompt.text = i < options.prompt_texts.size() && options.prompt_texts[i] ? options.prompt_texts[i] : p.text;
    if (i < options.prompt_tokens.size() && !options.prompt_tokens[i].empty()) {
      if (p.prompt && *p.prompt != options.prompt_tokens[i]) {
        throw InputError(fmt::format("{}: the prompt ids given differ from the file's", p.where));
      }
      prompt.prompt_tokens = options.prompt_tokens[i];
    } else if (p.prompt) {
      prompt.prompt_tokens = *p.prompt;
    } else {
      throw InputError(fmt::format("{}: the file does not carry the prompt's token ids; give them "
                                   "(--prompt-tokens, or --prompt with --tokenizer)", p.where));
    }
    if (prompt.prompt_tokens.empty()) throw InputError(fmt::format("{}: empty prompt", p.where));
    if (p.tokens.size() != p.steps.size()) {
      throw InputError(fmt::format("{}: {} generated tokens but {} steps of log-probs", p.where,
                                   p.tokens.size(), p.steps.size()));
    }
    const int64_t steps = static_cast<int64_t>(p.steps.size());
    prompt.tokens = p.tokens;
    prompt.topk_ids = at::empty({steps, k}, at::kLong);
    prompt.topk_logprobs = at::empty({steps, k}, at::kFloat);
    auto ids = prompt.topk_ids.accessor<int64_t, 2>();
    auto logprobs = prompt.topk_logprobs.accessor<float, 2>();
    for (int64_t t = 0; t < steps; ++t) {
      std::vector<Entry>& entries = p.steps[t];
      if (static_cast<int64_t>(entries.size()) < k) {
        throw InputError(fmt::format("{}: step {} lists {} log-probs, fewer than K = {}", p.where, t,
                                     entries.size(), k));
      }
      // Most likely first: by log-prob, then vLLM's rank, then the lower id.
      std::stable_sort(entries.begin(), entries.end(), [](const Entry& x, const Entry& y) {
        if (x.logprob != y.logprob) return x.logprob > y.logprob;
        if (x.rank && y.rank && *x.rank != *y.rank) return *x.rank < *y.rank;
        return x.id < y.id;
      });
      std::set<int64_t> seen;
      for (int64_t j = 0; j < k; ++j) {
        if (!seen.insert(entries[j].id).second) {
          throw InputError(fmt::format("{}: step {} lists token {} twice", p.where, t, entries[j].id));
        }
        ids[t][j] = entries[j].id;
        logprobs[t][j] = static_cast<float>(entries[j].logprob);
      }
    }
    trace.prompts.push_back(std::move(prompt));
  }
  // The writer's validation (ids in range, shapes) applies to imported traces too.
  return trace;
}

}  // namespace parity::io
