// A small, deterministic, random InternLM2 checkpoint shaped like the published ones: grouped-query
// attention, packed wqkv, dynamic rope scaling, BF16 weights sharded over two safetensors files with
// an index, the config / generation / tokenizer files of a real InternLM2 chat checkpoint, and a
// SentencePiece tokenizer.model trained here on a generated corpus (fixture_corpus.h).
//
// Same options (seed included) -> same bytes in every file, on every machine: weights come from
// seeded_random.h, not from libtorch's generators, the tokenizer is trained from memory on a
// generated corpus (its bytes record no path), and every file is written in the exact format
// transformers 4.41 writes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace parity::convert {

struct FixtureOptions {
  uint64_t seed = 0;
  int64_t num_layers = 2;
  int64_t hidden_size = 64;         // D
  int64_t num_heads = 8;            // H; head_dim = D / H = 8
  int64_t num_kv_heads = 2;         // GQA: G = 4 query heads per KV head
  int64_t intermediate_size = 176;  // F
  int64_t vocab_size = 512;         // SentencePiece pieces; the model's vocab_size equals it
  int64_t max_position_embeddings = 32768;
  std::string dtype = "bfloat16";   // torch_dtype of the stored weights: bfloat16, float16, float32
  double init_std = 0.02;           // matrices ~ N(0, std^2); norm weights ~ 1 + N(0, std^2)

  // Throws InputError naming the option when the sizes do not make a valid InternLM2 model.
  void Validate() const;
};

struct FixtureResult {
  std::string dir;
  std::vector<std::string> files;  // written, relative to dir, sorted
  int64_t tensors = 0;
  int64_t parameters = 0;
  int64_t im_start_id = -1;        // ids of the ChatML markers in the trained tokenizer
  int64_t im_end_id = -1;
  nlohmann::json config;           // the config.json written
};

// Writes the fixture into `out_dir` (created if needed; files of the same names are replaced
// atomically).
FixtureResult MakeFixture(const std::string& out_dir, const FixtureOptions& options);

nlohmann::json FixtureResultToJson(const FixtureResult& result);

}  // namespace parity::convert
