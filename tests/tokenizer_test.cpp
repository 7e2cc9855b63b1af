#include "harness/decode/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "tests/test_util.h"

namespace parity::decode {
namespace {

using ::testing::HasSubstr;

// A small corpus with newlines, repeated so BPE has something to merge.
std::string Corpus() {
  std::string text;
  for (int i = 0; i < 200; ++i) {
    text += "The licensee may copy and distribute the program.\n";
    text += "Section " + std::to_string(i % 10) + ": conditions apply to all copies.\n";
    text += "Who are you? I am a small model, trained here.\n";
  }
  return text;
}

class TokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFileText(dir_.path() + "/corpus.txt", Corpus());
    TrainSentencePiece(dir_.path() + "/corpus.txt", dir_.path() + "/tokenizer.model", 300,
                       {"<|im_start|>", "<|im_end|>"});
  }
  TempDir dir_;
};

TEST_F(TokenizerTest, RoundTripsTextWithNewlines) {
  Tokenizer tokenizer = Tokenizer::Load(dir_.path());
  std::string text = "The licensee may copy\nthe program.\n\nSection 3: conditions";
  auto ids = tokenizer.Encode(text, /*add_bos=*/true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 1);  // BOS
  EXPECT_EQ(tokenizer.Decode(ids), text);
  std::string concatenated;
  for (size_t i = 1; i < ids.size(); ++i) concatenated += tokenizer.TokenText(ids[i]);
  // Token texts concatenate to the text, up to the dummy-prefix space SentencePiece adds in front.
  EXPECT_THAT(concatenated, HasSubstr("copy\nthe program.\n\nSection"));
}

TEST_F(TokenizerTest, ChatTemplateUsesSpecialTokenIds) {
  // Declared as added tokens, as InternLM2's tokenizer_config.json does: they split the text first.
  WriteFileText(dir_.path() + "/tokenizer_config.json", R"({"added_tokens_decoder": {
      "3": {"content": "<|im_start|>", "special": true},
      "4": {"content": "<|im_end|>", "special": true}}})");
  Tokenizer tokenizer = Tokenizer::Load(dir_.path());
  auto ids = tokenizer.EncodeChat("who are you");
  // <unk>=0 <s>=1 </s>=2, then the user-defined symbols in order, then the byte pieces.
  ASSERT_GE(ids.size(), 6u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 3);  // <|im_start|>
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 3), 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 4), 1);  // <|im_end|>
  EXPECT_EQ(tokenizer.TokenText(3), "<|im_start|>");
}

TEST_F(TokenizerTest, ReadsAddedTokensAndEosIdsFromCheckpointFiles) {
  WriteFileText(dir_.path() + "/generation_config.json",
                R"({"bos_token_id": 1, "eos_token_id": [2, 4]})");
  // An added token outside the SentencePiece vocabulary, as real checkpoints declare them.
  WriteFileText(dir_.path() + "/tokenizer_config.json",
                R"({"added_tokens_decoder": {"300": {"content": "<|action|>", "special": true}}})");
  Tokenizer tokenizer = Tokenizer::Load(dir_.path());
  EXPECT_THAT(tokenizer.eos_ids(), ::testing::ElementsAre(2, 4));
  EXPECT_TRUE(tokenizer.IsEos(4));
  EXPECT_FALSE(tokenizer.IsEos(1));
  auto ids = tokenizer.Encode("copy<|action|>copy", /*add_bos=*/false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 300), 1);
  EXPECT_EQ(tokenizer.Decode(ids), "copy<|action|>copy");
}

TEST_F(TokenizerTest, TrainingIsDeterministic) {
  TrainSentencePiece(dir_.path() + "/corpus.txt", dir_.path() + "/again.model", 300,
                     {"<|im_start|>", "<|im_end|>"});
  // Compared as booleans: a failure would otherwise print the whole model twice.
  EXPECT_TRUE(ReadFileText(dir_.path() + "/again.model") ==
              ReadFileText(dir_.path() + "/tokenizer.model"));
}

TEST(TokenizerErrors, MissingModelNamesTheFile) {
  TempDir dir;
  try {
    Tokenizer::Load(dir.path());
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("tokenizer.model"));
  }
}

TEST(TokenizerErrors, CorruptModelIsAnInputError) {
  TempDir dir;
  WriteFileText(dir.path() + "/tokenizer.model", "not a protobuf at all");
  EXPECT_THROW(Tokenizer::Load(dir.path()), InputError);
}

}  // namespace
}  // namespace parity::decode
