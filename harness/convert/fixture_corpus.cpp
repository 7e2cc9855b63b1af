#include "harness/convert/fixture_corpus.h"

#include <array>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "harness/convert/seeded_random.h"

namespace parity::convert {
namespace {

// The corpus' own stream, independent of any fixture seed.
constexpr uint64_t kCorpusSeed = 0x70617269747931ULL;  // "parity1"

using Words = std::vector<std::string_view>;

const Words kNouns = {"model",   "token",    "layer",   "weight",  "matrix", "vector",  "prompt",
                      "answer",  "question", "engineer", "report", "number", "value",   "head",
                      "checkpoint", "kernel", "result", "student", "teacher", "river",  "city",
                      "book",    "garden",   "machine", "language", "sentence", "word", "step",
                      "window",  "assistant", "user",   "reader",  "table",  "file",    "line"};
const Words kAdjectives = {"small", "large", "quiet", "careful", "new",     "old",   "bright",
                           "simple", "exact", "random", "greedy", "precise", "slow", "fast",
                           "first", "last",  "same",   "different", "hidden", "final"};
const Words kVerbs = {"reads",  "writes",   "checks",  "compares", "finds",  "follows", "builds",
                      "counts", "explains", "repeats", "changes",  "keeps",  "splits",  "loads",
                      "saves",  "measures", "answers", "learns",   "prints", "returns"};
const Words kPrepositions = {"in", "on", "with", "from", "after", "before", "under", "near", "for"};
const Words kQuestions = {"who are you?",
                          "what is a transformer?",
                          "how do two models differ?",
                          "why did the output change after the first newline?",
                          "can you count from one to ten?",
                          "what is the capital of the small country?",
                          "please explain rounding in simple words.",
                          "which layer changed the most?"};
const Words kAnswers = {"I am a small assistant model, trained to help with questions.",
                        "A transformer reads tokens and predicts the next one, step by step.",
                        "They agree for many tokens and then split where two choices are close.",
                        "The two numbers were almost equal, so rounding picked a different one.",
                        "One, two, three, four, five, six, seven, eight, nine, ten.",
                        "I do not know that city, but I can describe how to find it.",
                        "Rounding keeps a few bits of each number and drops the rest.",
                        "The last layer moved the most, by a small amount."};
const Words kChinese = {"你好，我是一个语言模型。", "请问你是谁？", "这个模型的输出和原来的一样。",
                        "我们比较两个模型的结果。", "今天的天气很好。"};

std::string_view Pick(SplitMix64& random, const Words& words) {
  return words[random.Below(words.size())];
}

std::string Capitalized(std::string text) {
  if (!text.empty() && text[0] >= 'a' && text[0] <= 'z') text[0] = static_cast<char>(text[0] - 32);
  return text;
}

std::string Sentence(SplitMix64& random) {
  static constexpr std::array<const char*, 3> kEnds = {".", ".", "!"};
  std::string text = fmt::format("the {} {} {} the {} {} the {} {}", Pick(random, kAdjectives),
                                 Pick(random, kNouns), Pick(random, kVerbs), Pick(random, kNouns),
                                 Pick(random, kPrepositions), Pick(random, kAdjectives),
                                 Pick(random, kNouns));
  if (random.Below(3) == 0) {
    text += fmt::format(" and {} {} {}", Pick(random, kVerbs), random.Below(1000), Pick(random, kNouns));
  }
  return Capitalized(text) + kEnds[random.Below(kEnds.size())];
}

std::string Line(SplitMix64& random, int64_t index) {
  switch (random.Below(10)) {
    case 0: {
      const uint64_t q = random.Below(kQuestions.size());
      return fmt::format("<|im_start|>user {}<|im_end|> <|im_start|>assistant {}<|im_end|>",
                         Capitalized(std::string(kQuestions[q])), kAnswers[q]);
    }
    case 1:
      return fmt::format("{}. {}", index % 9 + 1, Sentence(random));
    case 2:
      return fmt::format("{} = {} + {} * {}", Pick(random, kNouns), random.Below(100),
                         random.Below(100), random.Below(10));
    case 3:
      return std::string(Pick(random, kChinese));
    default:
      return Sentence(random);
  }
}

}  // namespace

std::string FixtureCorpus(int64_t lines) {
  SplitMix64 random(kCorpusSeed);
  std::string corpus;
  for (int64_t i = 0; i < lines; ++i) corpus += Line(random, i) + "\n";
  return corpus;
}

}  // namespace parity::convert
