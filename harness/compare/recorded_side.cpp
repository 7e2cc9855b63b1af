#include "harness/compare/recorded_side.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "harness/core/error.h"
#include "harness/io/kld_base.h"

namespace parity::compare {
namespace {

namespace fs = std::filesystem;

bool HasKldMagic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  return in.read(magic, sizeof(magic)) && std::memcmp(magic, "_logits_", 8) == 0;
}

// The trace directory behind `path` (a directory, or its trace.json).
std::string TraceDir(const std::string& path) {
  if (fs::is_regular_file(path) && fs::path(path).filename() == "trace.json") {
    std::string parent = fs::path(path).parent_path().string();
    return parent.empty() ? "." : parent;
  }
  return path;
}

}  // namespace

bool IsRecordedPath(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return fs::is_regular_file(fs::path(path) / "trace.json", ec);
  if (!fs::is_regular_file(path, ec)) return false;
  return fs::path(path).filename() == "trace.json" || HasKldMagic(path);
}

io::Trace TraceFromKldBase(const std::string& path) {
  io::KldBaseFile base = io::KldBaseFile::Read(path);
  if (base.scored_per_chunk() <= 0) {
    throw InputError(fmt::format("{}: n_ctx {} scores no position (needs n_ctx >= 3)", path,
                                 base.n_ctx));
  }
  io::Trace trace;
  trace.producer.engine = "llama.cpp (llama-perplexity --kl-divergence-base)";
  trace.producer.model = path;
  trace.producer.dtype = "";
  trace.producer.settings = {{"n_ctx", base.n_ctx},
                             {"n_chunk", base.n_chunk},
                             {"log_probs", "uint16-quantized, floored 16 nats below the maximum"}};
  trace.vocab_size = base.n_vocab;
  trace.full_logits = true;
  trace.mode = "teacher_forced";
  const int64_t half = base.n_ctx / 2;
  for (int64_t chunk = 0; chunk < base.n_chunk; ++chunk) {
    io::TracePrompt p;
    p.name = fmt::format("chunk{}", chunk);
    auto begin = base.tokens.begin() + chunk * base.n_ctx;
    p.prompt_tokens.assign(begin, begin + half + 1);
    p.tokens.assign(begin + half + 1, begin + base.n_ctx);
    const int64_t steps = base.scored_per_chunk();
    p.logits = at::empty({steps, base.n_vocab}, at::kFloat);
    for (int64_t index = 0; index < steps; ++index) {
      std::vector<float> row = base.LogProbs(chunk, index);
      std::memcpy(p.logits[index].data_ptr<float>(), row.data(), row.size() * sizeof(float));
    }
    trace.prompts.push_back(std::move(p));
  }
  return trace;
}

RecordedSide RecordedSide::Open(const std::string& path) {
  if (!IsRecordedPath(path)) {
    throw InputError(fmt::format("{}: neither a trace (a directory with trace.json, "
                                 "reports/TRACES.md) nor a llama.cpp KL-divergence base file",
                                 path));
  }
  RecordedSide side;
  side.path_ = path;
  if (fs::is_regular_file(path) && fs::path(path).filename() != "trace.json") {
    side.format_ = "llama.cpp-kld-base";
    side.trace_ = TraceFromKldBase(path);
  } else {
    side.format_ = "trace";
    side.trace_ = io::ReadTrace(TraceDir(path));
  }
  return side;
}

const io::TracePrompt* RecordedSide::Find(const std::vector<int64_t>& prompt_tokens) const {
  for (const io::TracePrompt& p : trace_.prompts) {
    if (p.prompt_tokens == prompt_tokens) return &p;
  }
  return nullptr;
}

std::optional<forward::Precision> RecordedSide::precision() const {
  std::string text = trace_.producer.dtype;
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (text.rfind("torch.", 0) == 0) text = text.substr(6);
  if (text == "float32" || text == "f32" || text == "float") return forward::Precision::kFP32;
  if (text == "float16" || text == "f16" || text == "half") return forward::Precision::kFP16;
  if (text == "bfloat16") return forward::Precision::kBF16;
  if (text == "float64" || text == "f64" || text == "double") return forward::Precision::kFP64;
  return forward::TryParsePrecision(text);
}

std::string RecordedSide::precision_text() const {
  if (auto p = precision()) return forward::PrecisionName(*p);
  return trace_.producer.dtype.empty() ? "unknown" : trace_.producer.dtype;
}

std::string RecordedSide::Describe() const {
  const io::TraceProducer& p = trace_.producer;
  std::string who = p.engine + (p.engine_version.empty() ? "" : " " + p.engine_version);
  std::string content = trace_.full_logits ? "full logits"
                                           : fmt::format("top-{} log-probs", trace_.top_k);
  if (format_ == "llama.cpp-kld-base") content = "quantized log-probs (16-nat floor)";
  return fmt::format("{} of {}, {}{}, {}, {}",
                     format_ == "trace" ? "trace" : "KLD base", who, precision_text(),
                     p.device.empty() ? "" : " on " + p.device, content, trace_.mode);
}

ModelInfo RecordedSide::Info() const {
  ModelInfo info;
  info.path = fs::absolute(path_).lexically_normal().string();
  info.architecture = format_ == "trace" ? "trace" : "llama.cpp-kld-base";
  info.variants = Describe();
  const io::TraceProducer& p = trace_.producer;
  info.config = {{"vocab_size", trace_.vocab_size},
                 {"content", trace_.full_logits ? "logits" : "topk"},
                 {"top_k", trace_.full_logits ? nlohmann::json(nullptr) : nlohmann::json(trace_.top_k)},
                 {"mode", trace_.mode},
                 {"prompts", trace_.prompts.size()},
                 {"producer",
                  {{"engine", p.engine},
                   {"engine_version", p.engine_version},
                   {"model", p.model},
                   {"dtype", p.dtype},
                   {"device", p.device},
                   {"settings", p.settings}}}};
  return info;
}

}  // namespace parity::compare
