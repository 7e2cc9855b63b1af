#include "harness/diagnose/model_source.h"

#include <filesystem>

#include <fmt/format.h>

#include "harness/core/error.h"
#include "harness/decode/tokenizer.h"
#include "harness/diagnose/recompute.h"
#include "harness/io/checkpoint.h"

namespace parity::diagnose {

namespace {

// Applies the decode-loop variant (kv_cache) that the forward passes leave to their caller.
std::unique_ptr<forward::CausalLM> WithDecodeVariants(std::unique_ptr<forward::CausalLM> model,
                                                      const forward::Variants* variants) {
  if (variants != nullptr && !variants->kv_cache) {
    return std::make_unique<RecomputingLM>(std::move(model));
  }
  return model;
}

std::string DirLabel(const std::string& dir) {
  std::filesystem::path path = std::filesystem::path(dir).lexically_normal();
  std::string name = path.filename().string();
  if (name.empty()) name = path.parent_path().filename().string();
  return name.empty() ? dir : name;
}

}  // namespace

std::unique_ptr<forward::CausalLM> ModelSource::Build(const forward::Numerics& numerics,
                                                      const forward::Variants* variants) const {
  return build(numerics, variants);
}

ModelSource CheckpointSource(const std::string& dir) {
  auto checkpoint = std::make_shared<io::Checkpoint>(io::Checkpoint::Open(dir));
  ModelSource source;
  source.label = DirLabel(dir);
  source.config = model::ParseConfig(checkpoint->config_json(), dir + "/config.json");
  source.build = [checkpoint](const forward::Numerics& numerics, const forward::Variants* variants) {
    return WithDecodeVariants(forward::LoadCausalLM(*checkpoint, numerics, variants), variants);
  };
  return source;
}

ModelSource WeightsSource(const std::string& label, const model::ModelConfig& config,
                          const forward::Weights& weights) {
  auto held = std::make_shared<forward::Weights>(weights);
  ModelSource source;
  source.label = label;
  source.config = config;
  source.build = [config, held](const forward::Numerics& numerics,
                                const forward::Variants* variants) {
    return WithDecodeVariants(forward::MakeCausalLM(config, *held, numerics, variants), variants);
  };
  return source;
}

std::vector<int64_t> ParseTokenIds(const std::string& text, const std::string& what) {
  std::vector<int64_t> ids;
  size_t start = 0;
  while (true) {
    size_t end = text.find(',', start);
    std::string item = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    try {
      size_t used = 0;
      ids.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw InputError(
          fmt::format("{}: expected comma-separated token ids, got \"{}\"", what, text));
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return ids;
}

ResolvedPrompt ResolvePrompt(const PromptSpec& prompt, const std::vector<std::string>& dirs) {
  ResolvedPrompt resolved;
  resolved.token_text = [](int64_t id) { return fmt::format("<{}>", id); };
  std::shared_ptr<decode::Tokenizer> tokenizer;
  for (const std::string& dir : dirs) {
    if (std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.model")) {
      tokenizer = std::make_shared<decode::Tokenizer>(decode::Tokenizer::Load(dir));
      break;
    }
  }
  if (tokenizer) {
    resolved.eos_ids = tokenizer->eos_ids();
    resolved.token_text = [tokenizer](int64_t id) { return tokenizer->TokenText(id); };
  }
  if (!prompt.token_ids.empty()) {
    resolved.tokens = ParseTokenIds(prompt.token_ids, "--tokens");
  } else {
    if (prompt.text.empty()) throw InputError("give a prompt: --prompt TEXT or --tokens IDS");
    if (!tokenizer) {
      throw InputError(fmt::format(
          "--prompt: a text prompt needs a tokenizer.model in {} (or pass --tokens)",
          fmt::format("{}", dirs.empty() ? std::string("the model directory") : dirs.front())));
    }
    resolved.tokens = prompt.chat ? tokenizer->EncodeChat(prompt.text)
                                  : tokenizer->Encode(prompt.text, true);
  }
  if (resolved.tokens.empty()) throw InputError("the prompt has no tokens");
  return resolved;
}

}  // namespace parity::diagnose
