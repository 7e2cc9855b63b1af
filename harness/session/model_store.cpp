#include "harness/session/model_store.h"

#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "harness/convert/internlm2_to_llama.h"
#include "harness/core/error.h"
#include "harness/model/gguf_checkpoint.h"
#include "harness/model/inspect.h"

namespace parity::session {
namespace fs = std::filesystem;
namespace {

constexpr const char* kInternLM2ToLlama = "internlm2-to-llama";
// Bump when the converter's output changes, so that cached conversions are made again.
constexpr int kInternLM2ToLlamaRevision = 1;

std::string Canonical(const std::string& dir) {
  std::error_code ec;
  fs::path path = fs::weakly_canonical(fs::absolute(dir), ec);
  return ec ? fs::absolute(dir).lexically_normal().string() : path.string();
}

// Up to `limit` items, then "and N more".
std::string FirstFew(const std::vector<std::string>& items, size_t limit = 3) {
  std::vector<std::string> shown(items.begin(), items.begin() + std::min(limit, items.size()));
  std::string text = fmt::format("{}", fmt::join(shown, "; "));
  if (items.size() > limit) text += fmt::format("; and {} more", items.size() - limit);
  return text;
}

}  // namespace

std::shared_ptr<const StoredModel> OpenCheckpoint(const std::string& dir) {
  auto model = std::make_shared<StoredModel>();
  model->path = dir;
  model->source_path = dir;
  model->identity = Canonical(dir) + "#" + FingerprintDirectory(dir);
  model->checkpoint = std::make_shared<io::Checkpoint>(model::OpenCheckpointPath(dir));
  model::CheckpointSummary summary = model::SummarizeCheckpoint(*model->checkpoint);
  model->config = summary.config;
  std::vector<std::string> problems;
  if (!summary.missing.empty()) {
    problems.push_back(fmt::format("missing {}", FirstFew(summary.missing)));
  }
  if (!summary.shape_mismatches.empty()) {
    problems.push_back(fmt::format("wrong shape {}", FirstFew(summary.shape_mismatches)));
  }
  if (!problems.empty()) {
    throw InputError(fmt::format("{}: the tensors disagree with {}: {} (see `parity "
                                 "inspect {}`)", dir,
                                 model->checkpoint->format() == "gguf" ? "its GGUF metadata" : "config.json",
                                 fmt::join(problems, "; "), dir));
  }
  return model;
}

void CheckConversionName(const std::string& conversion) {
  if (conversion != kInternLM2ToLlama) {
    throw InputError(fmt::format("unknown conversion '{}': expected {}", conversion,
                                 kInternLM2ToLlama));
  }
}

ModelStore::ModelStore(const std::string& cache_dir) : cache_(ResolveCacheDir(cache_dir)) {}

std::shared_ptr<const StoredModel> ModelStore::Open(const std::string& dir) {
  const std::string key = Canonical(dir);
  auto it = opened_.find(key);
  if (it == opened_.end()) it = opened_.emplace(key, OpenCheckpoint(dir)).first;
  return it->second;
}

std::shared_ptr<const StoredModel> ModelStore::OpenConverted(const std::string& source_dir,
                                                             const std::string& conversion) {
  CheckConversionName(conversion);
  const std::string key = conversion + "(" + Canonical(source_dir) + ")";
  auto it = opened_.find(key);
  if (it != opened_.end()) return it->second;
  const StoredModel& source = *Open(source_dir);  // refuses a broken source before converting it
  bool reused = false;
  const std::string dir = cache_.Get(
      source_dir, conversion, kInternLM2ToLlamaRevision,
      [](const std::string& src, const std::string& dst) { convert::ConvertInternLM2ToLlama(src, dst); },
      &reused);
  auto model = std::const_pointer_cast<StoredModel>(OpenCheckpoint(dir));
  model->identity = conversion + "(" + source.identity + ")";
  model->source_path = source_dir;
  model->conversion = conversion;
  model->reused_conversion = reused;
  return opened_.emplace(key, model).first->second;
}

std::string ModelStore::LoadKey(const StoredModel& model, const forward::PrecisionPolicy& precision,
                                c10::Device device) {
  return fmt::format("{}@{}@{}", model.identity, precision.Text(), device.str());
}

std::string ModelStore::LoadKey(const StoredModel& model, const forward::PrecisionPolicy& precision,
                                const forward::Placement& placement) {
  if (placement.stages.size() == 1) return LoadKey(model, precision, placement.first_device());
  return fmt::format("{}@{}@{}", model.identity, precision.Text(), placement.Key());
}

forward::CausalLM& ModelStore::Get(const StoredModel& model,
                                   const forward::PrecisionPolicy& precision,
                                   c10::Device device) {
  return Get(model, precision, forward::Placement::Single(device, model.config.num_layers));
}

forward::CausalLM& ModelStore::Get(const StoredModel& model,
                                   const forward::PrecisionPolicy& precision,
                                   const forward::Placement& placement) {
  const std::string key = LoadKey(model, precision, placement);
  auto it = loaded_.find(key);
  if (it != loaded_.end()) return *it->second;
  const forward::Numerics numerics = forward::MakeNumerics(precision, placement.first_device());
  if (placement.stages.size() == 1) {
    spdlog::info("loading {} in {}", model.path, numerics.Describe());
  } else {
    spdlog::info("loading {} in {}, placed: {}", model.path, numerics.Describe(),
                 placement.Describe());
  }
  auto lm = forward::LoadCausalLM(*model.checkpoint, numerics, nullptr, &placement);
  return *loaded_.emplace(key, std::move(lm)).first->second;
}

void ModelStore::KeepOnly(const std::set<std::string>& keep) {
  for (auto it = loaded_.begin(); it != loaded_.end();) {
    it = keep.count(it->first) ? std::next(it) : loaded_.erase(it);
  }
}

}  // namespace parity::session
