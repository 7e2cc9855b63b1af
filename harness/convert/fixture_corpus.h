// The text the fixture tokenizer is trained on, generated in code so that nothing has to be shipped
// or downloaded: English sentences from a fixed word list, ChatML-style exchanges, numbered lists,
// numbers and a few Chinese phrases (InternLM2 is bilingual), one sentence per line.
#pragma once

#include <cstdint>
#include <string>

namespace parity::convert {

// Deterministic: the same `lines` give the same text on every machine (seeded_random.h). The corpus
// does not depend on the fixture's seed, so fixtures of different seeds share one tokenizer and
// token ids mean the same thing across them.
std::string FixtureCorpus(int64_t lines = 3000);

}  // namespace parity::convert
