// InternLM2 -> Llama conversion that produces what InternLM's tools/convert2llama.py produces:
//
// - every *.safetensors file of SRC becomes the file of the same name in DST, holding the same
//   tensors renamed by role (model::TensorTable of both architectures) and the packed wqkv split per
//   KV group into q_proj / k_proj / v_proj (see qkv_split.h); no dtype cast, data bit for bit; each
//   file written as Python's safetensors.save_file(..., metadata={"format": "pt"}) writes it, so the
//   files are byte-identical to the script's;
// - model.safetensors.index.json: the source index with weight_map rebuilt (shards in name order,
//   names within a shard in sorted order as safe_open lists them, q/k/v in that order) and everything
//   else, metadata.total_size included, left as it was; written like json.dump(indent=2);
// - config.json: the script's save_conifg, i.e. InternLM2Config.to_dict() with _name_or_path,
//   auto_map, transformers_version, model_type, architectures, tokenizer_class and
//   attn_implementation removed, bias renamed attention_bias, architectures ["LlamaForCausalLM"],
//   then LlamaConfig(**d).save_pretrained(), which adds model_type "llama", Llama's own defaults and
//   drops PretrainedConfig defaults (emulated for transformers 4.41, the version InternLM2 checkpoints
//   declare; see converted_config.h);
// - tokenizer: LlamaTokenizer.from_pretrained(SRC) then save_pretrained(DST) with auto_map removed:
//   tokenizer.model copied byte for byte, tokenizer_config.json without auto_map and with
//   tokenizer_class "LlamaTokenizer", special_tokens_map.json and added_tokens.json re-serialised.
//   Which extra keys LlamaTokenizer adds varies across transformers versions and is not emulated.
// - nothing else: generation_config.json, remote code (*.py) and other files are not copied (the
//   script does not copy them either); the result lists them.
//
// Refuses (InputError, before writing anything): a config with bias true (InternLM2's default when
// the field is absent), as the script's assert does; a non-InternLM2 config; PyTorch .bin weights
// (not read by Parity); a missing tokenizer.model (the script's LlamaTokenizer needs it); DST == SRC;
// a source whose tensors disagree with its config (missing, wrong shape); a DST that is a file or
// holds files this conversion does not write.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace parity::convert {

struct ConvertedShard {
  std::string file;          // e.g. "model-00001-of-00002.safetensors", same name in SRC and DST
  int64_t tensors_in = 0;    // tensors read from SRC's file
  int64_t tensors_out = 0;   // tensors written to DST's file (each wqkv becomes three)
};

struct ConversionResult {
  std::string src;
  std::string dst;
  std::vector<ConvertedShard> shards;
  int64_t tensors_in = 0;
  int64_t tensors_out = 0;
  int64_t qkv_split = 0;                  // wqkv tensors split into q/k/v
  std::vector<std::string> passed_through;  // names not in the InternLM2 table, written unchanged
  std::vector<std::string> files_written;   // DST-relative, in the order written
  std::vector<std::string> files_not_copied;  // SRC files the script does not carry over
  bool index_written = false;
};

ConversionResult ConvertInternLM2ToLlama(const std::string& src_dir, const std::string& dst_dir);

nlohmann::json ConversionResultToJson(const ConversionResult& result);
// A few lines for a terminal: what was written, what was split, what was not copied.
std::string FormatConversionResult(const ConversionResult& result);

}  // namespace parity::convert
