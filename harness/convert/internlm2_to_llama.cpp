#include "harness/convert/internlm2_to_llama.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "harness/convert/converted_config.h"
#include "harness/convert/python_json.h"
#include "harness/convert/python_safetensors.h"
#include "harness/convert/qkv_split.h"
#include "harness/core/atomic_file.h"
#include "harness/core/error.h"
#include "harness/core/interrupt.h"
#include "harness/io/checkpoint.h"
#include "harness/io/safetensors.h"
#include "harness/model/arch.h"
#include "harness/model/config.h"
#include "harness/model/inspect.h"

namespace parity::convert {
namespace {

namespace fs = std::filesystem;
using model::Architecture;
using model::Role;

constexpr const char* kIndexFile = "model.safetensors.index.json";
constexpr const char* kTokenizerModel = "tokenizer.model";
// The tokenizer files LlamaTokenizer.save_pretrained writes as JSON (when the source has them).
constexpr const char* kTokenizerJsonFiles[] = {"tokenizer_config.json", "special_tokens_map.json",
                                               "added_tokens.json"};

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string ReadBinaryFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot read", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Regular files of `dir`, sorted by name (the script walks os.listdir, whose order the file system
// decides; sorted order is the one that is reproducible).
std::vector<std::string> ListFiles(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file()) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Everything the script refuses, and what Parity cannot read, checked before anything is written.
model::ModelConfig CheckSource(const std::string& src, const std::string& dst,
                               const std::vector<std::string>& files) {
  std::error_code ec;
  if (fs::exists(dst) && fs::equivalent(src, dst, ec)) {
    throw InputError(fmt::format("convert: DST '{}' is SRC itself; choose another directory", dst));
  }
  const std::string config_path = (fs::path(src) / "config.json").string();
  const nlohmann::json config_json = io::ReadJsonFile(config_path);
  model::ModelConfig config = model::ParseConfig(config_json, config_path);
  if (config.arch != Architecture::kInternLM2) {
    throw InputError(fmt::format("{}: not an InternLM2 config (architecture {}); convert "
                                 "internlm2-to-llama needs model_type 'internlm2'",
                                 config_path, model::ArchitectureName(config.arch)));
  }
  LlamaConfigFromInternLM2(config_json, config_path);  // throws for bias true, naming the field
  for (const std::string& name : files) {
    if (EndsWith(name, ".bin") || name == "pytorch_model.bin.index.json") {
      throw InputError(fmt::format("{}: PyTorch pickle weights are not read by Parity; convert the "
                                   "checkpoint to safetensors first",
                                   (fs::path(src) / name).string()));
    }
  }
  if (std::find(files.begin(), files.end(), kTokenizerModel) == files.end()) {
    throw InputError(fmt::format("{}: missing; convert2llama copies the tokenizer with "
                                 "LlamaTokenizer, which needs it",
                                 (fs::path(src) / kTokenizerModel).string()));
  }
  // A source whose tensors disagree with its own config would give an inconsistent checkpoint.
  const model::CheckpointSummary summary = model::SummarizeCheckpoint(io::Checkpoint::Open(src));
  if (!summary.missing.empty() || !summary.shape_mismatches.empty()) {
    std::vector<std::string> problems = summary.shape_mismatches;
    for (const std::string& name : summary.missing) problems.push_back(name + ": missing");
    throw InputError(fmt::format("{}: the tensors disagree with config.json ({}{}); see `parity "
                                 "inspect {}`", src, problems.front(),
                                 problems.size() > 1 ? fmt::format(", and {} more", problems.size() - 1) : "",
                                 src));
  }
  // DST: new, empty, or holding only files this conversion writes (an earlier conversion). A foreign
  // file (another model's generation_config.json, where EOS ids are read) would pass as this one's.
  if (fs::exists(dst, ec) && !fs::is_directory(dst, ec)) {
    throw InputError(fmt::format("convert: DST '{}' exists and is not a directory", dst));
  }
  if (fs::is_directory(dst, ec)) {
    std::set<std::string> written = {kIndexFile, kTokenizerModel, "config.json"};
    for (const char* name : kTokenizerJsonFiles) written.insert(name);
    for (const std::string& name : files) {
      if (EndsWith(name, ".safetensors")) written.insert(name);
    }
    std::vector<std::string> foreign;
    for (const fs::directory_entry& entry : fs::directory_iterator(dst)) {
      const std::string name = entry.path().filename().string();
      if (!written.count(name) && name.rfind(".", 0) != 0) foreign.push_back(name);
    }
    if (!foreign.empty()) {
      throw InputError(fmt::format("convert: DST '{}' holds files this conversion does not write "
                                   "({}); give a new or empty directory", dst,
                                   fmt::join(foreign, ", ")));
    }
  }
  return config;
}

// The renamed (and, for wqkv, split) tensors of one source tensor, in the order the script inserts
// them into its state dict.
std::vector<io::NamedTensor> ConvertTensor(const io::SafetensorsFile& shard, const io::TensorInfo& info,
                                           const QkvLayout& layout, ConversionResult& result) {
  at::Tensor tensor = shard.Get(info.name);
  // FP8 arrives as raw bytes; keep its dtype label so the output records the same dtype.
  std::optional<io::DType> label;
  if (info.dtype == io::DType::kF8E4M3 || info.dtype == io::DType::kF8E5M2) label = info.dtype;

  const auto parsed = model::ParseTensorName(Architecture::kInternLM2, info.name);
  const std::vector<Role> roles =
      parsed ? model::CounterpartRoles(Architecture::kInternLM2, parsed->role, Architecture::kLlama)
             : std::vector<Role>{};
  if (roles.empty()) {
    // The script's last branch keeps the name; say so, since no table knows this tensor.
    result.passed_through.push_back(info.name);
    return {{info.name, tensor, label}};
  }
  if (roles.size() == 1) {
    return {{model::TensorName(Architecture::kLlama, roles[0], parsed->layer), tensor, label}};
  }
  // kQkv -> {kQ, kK, kV}.
  SplitQkv parts = SplitPackedQkv(tensor, layout, fmt::format("{} (in {})", info.name, shard.path()));
  ++result.qkv_split;
  return {{model::TensorName(Architecture::kLlama, roles[0], parsed->layer), parts.q, label},
          {model::TensorName(Architecture::kLlama, roles[1], parsed->layer), parts.k, label},
          {model::TensorName(Architecture::kLlama, roles[2], parsed->layer), parts.v, label}};
}

// Converts one shard file; appends its output names to `weight_map` (when indexing).
ConvertedShard ConvertShard(const std::string& src, const std::string& dst, const std::string& file,
                            const QkvLayout& layout, std::set<std::string>& written_names,
                            nlohmann::ordered_json* weight_map, ConversionResult& result) {
  const io::SafetensorsFile shard = io::SafetensorsFile::Open((fs::path(src) / file).string());
  // safe_open(...).keys() lists names sorted; the script converts in that order.
  std::vector<const io::TensorInfo*> infos;
  for (const io::TensorInfo& info : shard.tensors()) infos.push_back(&info);
  std::sort(infos.begin(), infos.end(),
            [](const io::TensorInfo* a, const io::TensorInfo* b) { return a->name < b->name; });

  ConvertedShard converted{file};
  std::vector<io::NamedTensor> outputs;
  for (const io::TensorInfo* info : infos) {
    for (io::NamedTensor& out : ConvertTensor(shard, *info, layout, result)) {
      if (!written_names.insert(out.name).second) {
        throw InputError(fmt::format("{}: tensor '{}' (from '{}') is produced twice", shard.path(),
                                     out.name, info->name));
      }
      if (weight_map != nullptr) (*weight_map)[out.name] = file;
      outputs.push_back(std::move(out));
    }
    ++converted.tensors_in;
  }
  converted.tensors_out = static_cast<int64_t>(outputs.size());
  spdlog::debug("convert: writing {} ({} tensors)", file, outputs.size());
  WriteSafetensorsLikePython((fs::path(dst) / file).string(), std::move(outputs));
  return converted;
}

void WriteTokenizerFiles(const std::string& src, const std::string& dst,
                         const std::vector<std::string>& files, ConversionResult& result) {
  auto has = [&](const std::string& name) {
    return std::find(files.begin(), files.end(), name) != files.end();
  };
  for (const char* name : kTokenizerJsonFiles) {
    if (!has(name)) continue;
    const std::string path = (fs::path(src) / name).string();
    const std::string text = ReadBinaryFile(path);
    nlohmann::json value = ParseOrderedJson(text, path);  // to a sorted object: sort_keys=True
    if (std::string(name) == "tokenizer_config.json") value = LlamaTokenizerConfigFrom(value);
    WriteFileAtomic((fs::path(dst) / name).string(),
                    RestoreBigIntegers(DumpSortedJson(value, /*ensure_ascii=*/false), text));
    result.files_written.push_back(name);
  }
  // save_vocabulary copies the SentencePiece model file as it is.
  WriteFileAtomic((fs::path(dst) / kTokenizerModel).string(),
                  ReadBinaryFile((fs::path(src) / kTokenizerModel).string()));
  result.files_written.push_back(kTokenizerModel);
}

}  // namespace

ConversionResult ConvertInternLM2ToLlama(const std::string& src, const std::string& dst) {
  if (!fs::is_directory(src)) throw InputError(fmt::format("{}: not a directory", src));
  const std::vector<std::string> files = ListFiles(src);
  const model::ModelConfig config = CheckSource(src, dst, files);
  const QkvLayout layout = QkvLayoutOf(config);

  std::vector<std::string> shard_files;
  for (const std::string& name : files) {
    if (EndsWith(name, ".safetensors")) shard_files.push_back(name);
  }
  if (shard_files.empty()) throw InputError(fmt::format("{}: no *.safetensors files", src));

  ConversionResult result;
  result.src = src;
  result.dst = dst;
  std::optional<nlohmann::ordered_json> index;
  std::string index_source_text;
  const bool has_index = std::find(files.begin(), files.end(), kIndexFile) != files.end();
  if (has_index) {
    const std::string path = (fs::path(src) / kIndexFile).string();
    index_source_text = ReadBinaryFile(path);
    index = ParseOrderedJson(index_source_text, path);
    if (!index->is_object()) throw InputError(fmt::format("{}: expected a JSON object", path));
    (*index)["weight_map"] = nlohmann::ordered_json::object();  // keeps its place among the keys
  }

  std::error_code create_error;
  fs::create_directories(dst, create_error);
  if (create_error) {
    throw InputError(fmt::format("convert: cannot create DST '{}': {}", dst, create_error.message()));
  }
  std::set<std::string> written_names;
  for (const std::string& file : shard_files) {
    ThrowIfInterrupted();  // SIGINT: stop between shards (each shard file is written atomically)
    result.shards.push_back(ConvertShard(src, dst, file, layout, written_names,
                                         index ? &(*index)["weight_map"] : nullptr, result));
    result.tensors_in += result.shards.back().tensors_in;
    result.tensors_out += result.shards.back().tensors_out;
    result.files_written.push_back(file);
  }
  if (index) {
    WriteFileAtomic((fs::path(dst) / kIndexFile).string(),
                    RestoreBigIntegers(DumpOrderedJson(*index), index_source_text));
    result.files_written.push_back(kIndexFile);
    result.index_written = true;
  }
  WriteTokenizerFiles(src, dst, files, result);

  const std::string config_path = (fs::path(src) / "config.json").string();
  const nlohmann::json llama_config =
      LlamaConfigFromInternLM2(io::ReadJsonFile(config_path), config_path);
  WriteFileAtomic((fs::path(dst) / "config.json").string(), DumpSortedJson(llama_config));
  result.files_written.push_back("config.json");

  const std::set<std::string> written(result.files_written.begin(), result.files_written.end());
  for (const std::string& name : files) {
    if (!written.count(name)) result.files_not_copied.push_back(name);
  }
  return result;
}

nlohmann::json ConversionResultToJson(const ConversionResult& result) {
  nlohmann::json shards = nlohmann::json::array();
  for (const ConvertedShard& shard : result.shards) {
    shards.push_back({{"file", shard.file},
                      {"tensors_in", shard.tensors_in},
                      {"tensors_out", shard.tensors_out}});
  }
  return {{"command", "convert internlm2-to-llama"},
          {"src", result.src},
          {"dst", result.dst},
          {"shards", shards},
          {"tensors_in", result.tensors_in},
          {"tensors_out", result.tensors_out},
          {"qkv_split", result.qkv_split},
          {"passed_through", result.passed_through},
          {"index_written", result.index_written},
          {"files_written", result.files_written},
          {"files_not_copied", result.files_not_copied}};
}

std::string FormatConversionResult(const ConversionResult& result) {
  std::string text = fmt::format("Converted {} (InternLM2) -> {} (Llama)\n", result.src, result.dst);
  for (const ConvertedShard& shard : result.shards) {
    text += fmt::format("  {}: {} tensors -> {}\n", shard.file, shard.tensors_in, shard.tensors_out);
  }
  text += fmt::format("  {} tensors in, {} out; {} wqkv split into q/k/v per KV group; dtypes kept\n",
                      result.tensors_in, result.tensors_out, result.qkv_split);
  for (const std::string& name : result.passed_through) {
    text += fmt::format("  passed through unchanged (not in the InternLM2 table): {}\n", name);
  }
  text += fmt::format("  wrote: {}\n", fmt::join(result.files_written, ", "));
  if (!result.files_not_copied.empty()) {
    text += fmt::format("  not copied (convert2llama does not copy them either): {}\n",
                        fmt::join(result.files_not_copied, ", "));
  }
  return text;
}

}  // namespace parity::convert
