// The JSON files of the random fixture, shaped like those of the published InternLM2 chat checkpoints
// (internlm2-chat-1_8b, internlm2_5-7b-chat) as transformers 4.41 wrote them.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "harness/convert/random_fixture.h"

namespace parity::convert {

// config.json: model_type internlm2, auto_map to the remote code, bias false, rope_theta 1e6,
// rope_scaling dynamic x2, rms_norm_eps 1e-5, attn_implementation eager, bos 1, eos 2, pad 2.
nlohmann::json FixtureConfigJson(const FixtureOptions& options);

// generation_config.json: EOS is both </s> (2) and <|im_end|>, as in the chat checkpoints.
nlohmann::json FixtureGenerationConfigJson(int64_t im_end_id);

// tokenizer_config.json: the InternLM2Tokenizer entry with its added tokens, ChatML chat template.
nlohmann::json FixtureTokenizerConfigJson(int64_t im_start_id, int64_t im_end_id);

// special_tokens_map.json.
nlohmann::json FixtureSpecialTokensMapJson();

}  // namespace parity::convert
