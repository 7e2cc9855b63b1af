#include "harness/convert/random_fixture.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "harness/convert/fixture_corpus.h"
#include "harness/convert/fixture_files.h"
#include "harness/convert/python_json.h"
#include "harness/convert/python_safetensors.h"
#include "harness/convert/seeded_random.h"
#include "harness/convert/spm_model_bytes.h"
#include "harness/core/atomic_file.h"
#include "harness/core/error.h"
#include "harness/decode/tokenizer.h"
#include "harness/model/arch.h"
#include "harness/model/config.h"

namespace parity::convert {
namespace {

namespace fs = std::filesystem;
using model::Role;

constexpr const char* kImStart = "<|im_start|>";
constexpr const char* kImEnd = "<|im_end|>";
constexpr int kShards = 2;

std::string ShardName(int shard) {
  return fmt::format("model-{:05d}-of-{:05d}.safetensors", shard + 1, kShards);
}

at::ScalarType StorageType(const std::string& dtype) {
  if (dtype == "bfloat16") return at::kBFloat16;
  if (dtype == "float16") return at::kHalf;
  if (dtype == "float32") return at::kFloat;
  throw InputError(fmt::format("fixture dtype '{}': expected bfloat16, float16 or float32", dtype));
}

std::string ReadBinaryFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: not written by the tokenizer trainer", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

struct TrainedTokenizer {
  int64_t pieces = 0;
  int64_t im_start_id = -1;
  int64_t im_end_id = -1;
};

// Trains the tokenizer on the generated corpus into DIR/tokenizer.model. TrainSentencePiece trains
// from memory, so the model records no path and its bytes depend on the corpus alone.
TrainedTokenizer WriteTokenizerModel(const std::string& dir, int64_t vocab_size) {
  const std::string corpus_path =
      (fs::path(dir) / fmt::format(".fixture_corpus.{}.txt", ::getpid())).string();
  const std::string model_path = (fs::path(dir) / "tokenizer.model").string();
  WriteFileAtomic(corpus_path, FixtureCorpus());
  try {
    decode::TrainSentencePiece(corpus_path, model_path, vocab_size, {kImStart, kImEnd});
  } catch (...) {
    std::remove(corpus_path.c_str());
    throw;
  }
  std::remove(corpus_path.c_str());
  const std::string model = ReadBinaryFile(model_path);

  TrainedTokenizer trained;
  const std::vector<std::string> pieces = ModelPieces(model, model_path);
  trained.pieces = static_cast<int64_t>(pieces.size());
  for (size_t id = 0; id < pieces.size(); ++id) {
    if (pieces[id] == kImStart) trained.im_start_id = static_cast<int64_t>(id);
    if (pieces[id] == kImEnd) trained.im_end_id = static_cast<int64_t>(id);
  }
  if (trained.pieces != vocab_size || trained.im_start_id < 0 || trained.im_end_id < 0) {
    throw InputError(fmt::format("fixture tokenizer: expected {} pieces including {} and {}, got {}",
                                 vocab_size, kImStart, kImEnd, trained.pieces));
  }
  return trained;
}

bool IsNorm(Role role) {
  return role == Role::kAttentionNorm || role == Role::kMlpNorm || role == Role::kFinalNorm;
}

// Values ~ N(0, std^2) (norms: 1 + N(0, std^2)) from the tensor's own stream, rounded once from
// double to float and then to the storage dtype (round to nearest even).
at::Tensor RandomTensor(const model::ExpectedTensor& spec, const FixtureOptions& options) {
  int64_t count = 1;
  for (int64_t size : spec.shape) count *= size;
  NormalGenerator normal(options.seed ^ Fnv1a64(spec.name));
  std::vector<float> values(static_cast<size_t>(count));
  const double offset = IsNorm(spec.role) ? 1.0 : 0.0;
  for (float& value : values) value = static_cast<float>(offset + options.init_std * normal.Next());
  return at::from_blob(values.data(), spec.shape, at::kFloat).clone().to(StorageType(options.dtype));
}

// Shard 0: the embedding and the first half of the layers; shard 1: the rest, final norm, LM head.
int ShardOf(const model::ExpectedTensor& spec, int64_t num_layers) {
  const int64_t first_half = (num_layers + 1) / 2;
  if (spec.layer >= 0) return spec.layer < first_half ? 0 : 1;
  return spec.role == Role::kEmbedding ? 0 : 1;
}

}  // namespace

void FixtureOptions::Validate() const {
  std::vector<std::string> problems;
  auto require = [&](bool ok, const std::string& message) {
    if (!ok) problems.push_back(message);
  };
  require(num_layers >= 1, fmt::format("layers {} must be >= 1", num_layers));
  require(num_heads >= 1 && hidden_size >= 1 && hidden_size % num_heads == 0,
          fmt::format("heads {} must divide hidden {}", num_heads, hidden_size));
  require(num_kv_heads >= 1 && num_heads % num_kv_heads == 0,
          fmt::format("kv-heads {} must divide heads {}", num_kv_heads, num_heads));
  require(intermediate_size >= 1, fmt::format("intermediate {} must be >= 1", intermediate_size));
  // Byte fallback needs 256 pieces, plus the 3 control and 2 ChatML pieces and the corpus' characters.
  require(vocab_size >= 400 && vocab_size <= 4096,
          fmt::format("vocab {} must be within [400, 4096] for the generated corpus", vocab_size));
  require(max_position_embeddings >= 1,
          fmt::format("max-position {} must be >= 1", max_position_embeddings));
  require(init_std > 0.0, fmt::format("init std {} must be > 0", init_std));
  if (dtype != "bfloat16" && dtype != "float16" && dtype != "float32") {
    problems.push_back(fmt::format("dtype '{}' must be bfloat16, float16 or float32", dtype));
  }
  if (!problems.empty()) {
    std::string message = "invalid fixture options:";
    for (const auto& problem : problems) message += "\n  " + problem;
    throw InputError(message);
  }
}

FixtureResult MakeFixture(const std::string& out_dir, const FixtureOptions& options) {
  options.Validate();
  fs::create_directories(out_dir);
  FixtureResult result;
  result.dir = out_dir;
  auto write = [&](const std::string& name, const std::string& content) {
    WriteFileAtomic((fs::path(out_dir) / name).string(), content);
    result.files.push_back(name);
  };

  const TrainedTokenizer tokenizer = WriteTokenizerModel(out_dir, options.vocab_size);
  result.files.push_back("tokenizer.model");
  result.im_start_id = tokenizer.im_start_id;
  result.im_end_id = tokenizer.im_end_id;

  result.config = FixtureConfigJson(options);
  const model::ModelConfig config = model::ParseConfig(result.config, "fixture config.json");
  std::vector<io::NamedTensor> shards[kShards];
  nlohmann::json weight_map = nlohmann::json::object();
  int64_t total_bytes = 0;
  for (const model::ExpectedTensor& spec : model::ExpectedTensors(config)) {
    at::Tensor tensor = RandomTensor(spec, options);
    const int shard = ShardOf(spec, options.num_layers);
    weight_map[spec.name] = ShardName(shard);
    total_bytes += tensor.numel() * tensor.element_size();
    result.parameters += tensor.numel();
    shards[shard].push_back({spec.name, tensor});
    ++result.tensors;
  }
  for (int shard = 0; shard < kShards; ++shard) {
    WriteSafetensorsLikePython((fs::path(out_dir) / ShardName(shard)).string(),
                               std::move(shards[shard]));
    result.files.push_back(ShardName(shard));
  }
  // transformers' save_pretrained: json.dumps(index, indent=2, sort_keys=True) + "\n".
  const nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}},
                                {"weight_map", weight_map}};
  write("model.safetensors.index.json", DumpSortedJson(index));
  write("config.json", DumpSortedJson(result.config));
  write("generation_config.json", DumpSortedJson(FixtureGenerationConfigJson(result.im_end_id)));
  write("tokenizer_config.json",
        DumpSortedJson(FixtureTokenizerConfigJson(result.im_start_id, result.im_end_id), false));
  write("special_tokens_map.json", DumpSortedJson(FixtureSpecialTokensMapJson(), false));
  std::sort(result.files.begin(), result.files.end());
  return result;
}

nlohmann::json FixtureResultToJson(const FixtureResult& result) {
  return {{"command", "make-fixture"},     {"dir", result.dir},
          {"files", result.files},         {"tensors", result.tensors},
          {"parameters", result.parameters}, {"im_start_id", result.im_start_id},
          {"im_end_id", result.im_end_id},   {"config", result.config}};
}

}  // namespace parity::convert
