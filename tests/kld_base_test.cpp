// llama.cpp's KL-divergence base file against an independent numpy implementation
// (tests/data/kld/make_reference.py, written from perplexity.cpp's description): the file it writes
// must be the one Parity writes from the same logits (header, tokens, scales and quantized log-probs
// bit for bit; min_log_prob to 1 float ulp-ish, since numpy's exp is not glibc's expf), Parity must
// read it back, and llama-perplexity's statistics of a second model against it must match the
// reference's FP64 values.
#include "harness/io/kld_base.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/core/error.h"
#include "harness/io/checkpoint.h"
#include "tests/test_util.h"

namespace parity::io {
namespace {

using ::testing::HasSubstr;

struct Reference {
  nlohmann::json json;
  std::vector<int32_t> tokens() const { return json["tokens"].get<std::vector<int32_t>>(); }
  // logits(chunk, position) over the reference's "base_logits" or "other_logits".
  std::function<std::vector<float>(int64_t, int64_t)> Logits(const char* key) const {
    const nlohmann::json& all = json[key];
    return [&all](int64_t chunk, int64_t position) {
      std::vector<float> row;
      for (const auto& v : all[chunk][position]) row.push_back(static_cast<float>(v.get<double>()));
      return row;
    };
  }
};

Reference LoadReference() { return {ReadJsonFile(TestDataPath("kld/reference.json"))}; }

TEST(KldBase, WritesWhatTheIndependentReferenceWrites) {
  Reference reference = LoadReference();
  KldBaseFile expected = KldBaseFile::Read(TestDataPath("kld/base.kld"));
  KldBaseFile written = KldBaseFile::FromLogits(10, 13, reference.tokens(),
                                                reference.Logits("base_logits"));
  ASSERT_EQ(written.n_chunk, expected.n_chunk);
  EXPECT_EQ(written.tokens, expected.tokens);
  ASSERT_EQ(written.records.size(), expected.records.size());
  for (int64_t chunk = 0; chunk < expected.n_chunk; ++chunk) {
    for (int64_t index = 0; index < expected.scored_per_chunk(); ++index) {
      SCOPED_TRACE(testing::Message() << "chunk " << chunk << " record " << index);
      EXPECT_EQ(written.scale(chunk, index), expected.scale(chunk, index));
      EXPECT_NEAR(written.min_log_prob(chunk, index), expected.min_log_prob(chunk, index),
                  4 * std::abs(expected.min_log_prob(chunk, index)) * 1.2e-7);
      const size_t at = size_t((chunk * expected.scored_per_chunk() + index) * expected.record_size());
      for (int64_t v = 4; v < expected.record_size(); ++v) {  // quantized values and the pad
        EXPECT_EQ(written.records[at + v], expected.records[at + v]) << "value " << v - 4;
      }
    }
  }
  // The planted cases: an all-equal row (scale 0) and a 40-nat spread cut by the 16-nat floor.
  EXPECT_EQ(expected.scale(0, 1), 0.f);
  EXPECT_FLOAT_EQ(expected.scale(1, 0), 16.f / 65535.f);
}

TEST(KldBase, WriteReadRoundTripKeepsBytesAndStatistics) {
  Reference reference = LoadReference();
  TempDir dir;
  KldBaseFile written = KldBaseFile::FromLogits(10, 13, reference.tokens(),
                                                reference.Logits("base_logits"));
  written.Write(dir.path() + "/base.kld");
  KldBaseFile read = KldBaseFile::Read(dir.path() + "/base.kld");
  EXPECT_EQ(read.tokens, written.tokens);
  EXPECT_EQ(read.records, written.records);
  EXPECT_EQ(ReadFileText(dir.path() + "/base.kld").size(), 388u);

  // Each stored log-prob is the true one (FP64 here) within half a quantization step, except below
  // the 16-nat floor, where the format stores the floor (min_log_prob).
  auto logits = reference.Logits("base_logits");
  for (int64_t chunk = 0; chunk < read.n_chunk; ++chunk) {
    for (int64_t index = 0; index < read.scored_per_chunk(); ++index) {
      std::vector<float> row = logits(chunk, read.position(index));
      double max = *std::max_element(row.begin(), row.end()), sum = 0;
      for (float x : row) sum += std::exp(double(x) - max);
      std::vector<float> stored = read.LogProbs(chunk, index);
      for (size_t v = 0; v < row.size(); ++v) {
        const double truth = double(row[v]) - max - std::log(sum);
        const double expected = std::max(truth, double(read.min_log_prob(chunk, index)));
        EXPECT_NEAR(stored[v], expected, read.scale(chunk, index) / 2 + 1e-5)
            << "chunk " << chunk << " record " << index << " id " << v;
      }
    }
  }
  // The base model against its own base file: |KL| <= max |log p_base - log q| <= step / 2.
  KldStatistics self = CompareWithBase(read, logits);
  EXPECT_EQ(self.count, 8);
  EXPECT_EQ(self.same_top, 1.0);
  EXPECT_LT(std::abs(self.mean_kld), 16.0 / 65535 / 2);
  KldStatistics before = CompareWithBase(written, reference.Logits("other_logits"));
  KldStatistics after = CompareWithBase(read, reference.Logits("other_logits"));
  EXPECT_EQ(before.mean_kld, after.mean_kld);
  EXPECT_EQ(before.mean_nll_base, after.mean_nll_base);
}

TEST(KldBase, StatisticsMatchTheReference) {
  Reference reference = LoadReference();
  KldBaseFile base = KldBaseFile::Read(TestDataPath("kld/base.kld"));
  KldStatistics stats = CompareWithBase(base, reference.Logits("other_logits"));
  const nlohmann::json& expected = reference.json["statistics"];
  EXPECT_EQ(stats.count, expected["count"].get<int64_t>());
  // llama.cpp computes each position in FP32; the reference in FP64: relative 1e-5 covers FP32
  // rounding of log-sum-exp terms of magnitude <= 50.
  EXPECT_NEAR(stats.mean_nll, expected["mean_nll"].get<double>(), 1e-5 * 50);
  EXPECT_NEAR(stats.mean_nll_base, expected["mean_nll_base"].get<double>(), 1e-5 * 50);
  EXPECT_NEAR(stats.mean_kld, expected["mean_kld"].get<double>(), 1e-5);
  EXPECT_NEAR(stats.max_kld, expected["max_kld"].get<double>(), 1e-5);
  EXPECT_EQ(stats.same_top, expected["same_top"].get<double>());
  EXPECT_NEAR(stats.rms_p_diff, expected["rms_p_diff"].get<double>(), 1e-6);
}

TEST(KldBase, SummaryOfABaseFileAlone) {
  Reference reference = LoadReference();
  KldBaseSummary summary = SummarizeBase(KldBaseFile::Read(TestDataPath("kld/base.kld")));
  EXPECT_EQ(summary.count, 8);
  // The reference's PPL(base) uses the same stored values, in FP64.
  EXPECT_NEAR(summary.mean_nll_base, reference.json["statistics"]["mean_nll_base"].get<double>(),
              1e-5 * 50);
  EXPECT_DOUBLE_EQ(summary.ppl_base, std::exp(summary.mean_nll_base));
}

TEST(KldBaseCli, ComparesTwoBaseFiles) {
  const std::string base = TestDataPath("kld/base.kld");
  std::string output;
  ASSERT_EQ(RunCommand(fmt::format("'{}' kld-base '{}' --json 2>/dev/null", ParityCli(), base), &output), 0)
      << output;
  nlohmann::json alone = nlohmann::json::parse(output);
  EXPECT_EQ(alone["n_vocab"], 13);
  EXPECT_EQ(alone["scored_positions"], 8);
  ASSERT_EQ(RunCommand(fmt::format("'{}' kld-base '{}' '{}' --json 2>/dev/null", ParityCli(), base, base),
                       &output),
            0)
      << output;
  nlohmann::json self = nlohmann::json::parse(output)["statistics"];
  EXPECT_EQ(self["same_top"], 1.0);
  // Stored log-probs re-normalised: off by at most half a step plus the floored mass.
  EXPECT_LT(std::abs(self["mean_kld"].get<double>()), 16.0 / 65535);
  EXPECT_LT(std::abs(self["ln_ppl_ratio"].get<double>()), 16.0 / 65535);

  TempDir dir;
  std::string other = ReadFileText(base);
  other[20] = static_cast<char>(other[20] == 1 ? 2 : 1);  // the first token
  WriteFileText(dir.path() + "/other.kld", other);
  EXPECT_EQ(RunCommand(fmt::format("'{}' kld-base '{}' '{}'", ParityCli(), base, dir.path() + "/other.kld"),
                       &output),
            2);
  EXPECT_THAT(output, HasSubstr("evaluate different tokens (first at index 0"));
}

TEST(KldBase, BadFilesAreNamedErrors) {
  TempDir dir;
  std::string good = ReadFileText(TestDataPath("kld/base.kld"));
  auto error_for = [&](const std::string& bytes) -> std::string {
    WriteFileText(dir.path() + "/bad.kld", bytes);
    try {
      KldBaseFile::Read(dir.path() + "/bad.kld");
    } catch (const InputError& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_THAT(error_for("GGUF" + good.substr(4)), HasSubstr("must start with \"_logits_\""));
  EXPECT_THAT(error_for(good.substr(0, good.size() - 2)), HasSubstr("386 bytes, but n_ctx 10"));
  std::string bad_token = good;
  int32_t out_of_vocab = 13;
  std::memcpy(bad_token.data() + 20, &out_of_vocab, 4);
  EXPECT_THAT(error_for(bad_token), HasSubstr("token 13 at index 0 is outside the vocabulary"));
  std::string zero_ctx = good;
  int32_t zero = 0;
  std::memcpy(zero_ctx.data() + 8, &zero, 4);
  EXPECT_THAT(error_for(zero_ctx), HasSubstr("n_ctx 0"));
  EXPECT_THAT(error_for("_logits_"), HasSubstr("8 bytes, too short"));
}

}  // namespace
}  // namespace parity::io
