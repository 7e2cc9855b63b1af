// What the report writers (Markdown and HTML) need from a run beyond the raw schema: its steps,
// the two output streams split at the first divergence, the gates in words, the near-tie steps.
// Kept apart from the renderers so both formats say the same thing and tests can check it directly.
#pragma once

#include <string>
#include <vector>

#include "harness/compare/run_result.h"

namespace parity::report {

// The steps of one run, in file order (steps.jsonl keeps each run's steps in step order).
std::vector<const compare::StepRecord*> StepsOfRun(const std::vector<compare::StepRecord>& steps,
                                                   const std::string& run_id);

// One side's generated text split around the first divergence: prefix (the shared context),
// token (the diverging token's text, when it could be located right after the prefix) and rest.
struct StreamSplit {
  std::string prefix;
  std::string token;
  std::string rest;
  bool diverged = false;  // there is a first divergence (otherwise everything is in prefix)
  bool located = false;   // token was found right after the prefix
};

// Splits run.text_a (side_a) or run.text_b at the first divergence. The shared prefix is the
// divergence's context when both texts start with it (the normal case), else the longest common
// UTF-8 prefix of the two texts (SentencePiece may decode a prefix differently on its own).
StreamSplit SplitAtDivergence(const compare::Run& run, bool side_a);

// The gates of a Thresholds in words, e.g. {"max_kl ≤ 0.001", "min_top1_agreement ≥ 0.99",
// "no real divergence"}; empty when no gate is set.
std::vector<std::string> GatesInWords(const compare::Thresholds& thresholds);

// A step is a near-tie candidate when the smaller margin is within the observed noise: rounding
// alone could have swapped the top-1 there.
bool MarginWithinNoise(const compare::StepRecord& step);

// A first divergence's kind in words: "rounding flip", "real divergence", "precision failure",
// "undetermined divergence".
std::string KindWords(const std::string& kind);
// Counts of first-divergence kinds among `runs`, as "R / X / O" (rounding / real / other:
// precision failures and undetermined).
std::string KindCounts(const std::vector<const compare::Run*>& runs);

// The run's range watch in words, one line per watched side (compare/range_watch.h
// DescribeRangeWatch: "B fp16: saturation risk from layer 5 mlp ..."); empty when it did not run.
std::vector<std::string> RangeWatchLines(const compare::Run& run);

// The verdict failures that belong to one run.
std::vector<const compare::Failure*> FailuresOfRun(const compare::Summary& summary,
                                                   const std::string& run_id);

// The runs of a pair, in its order (PairSummary::runs); ids not found are skipped.
std::vector<const compare::Run*> RunsOfPair(const compare::Summary& summary,
                                            const compare::PairSummary& pair);

// The JSON form of settings as summary.json writes it (run_result.h exposes only the whole-summary
// serializer, so this goes through it).
nlohmann::json SettingsJson(const compare::Settings& settings);

// "fp16 (emulated on cpu)" style description of a side: "original@fp16, fp16 (emulated on cpu)".
std::string DescribeSide(const compare::SideSpec& side);

}  // namespace parity::report
