#include "harness/report/run_view.h"

#include <fmt/format.h>

#include "harness/compare/range_watch.h"
#include "harness/report/text_util.h"

namespace parity::report {

std::vector<const compare::StepRecord*> StepsOfRun(const std::vector<compare::StepRecord>& steps,
                                                   const std::string& run_id) {
  std::vector<const compare::StepRecord*> out;
  for (const compare::StepRecord& step : steps) {
    if (step.run == run_id) out.push_back(&step);
  }
  return out;
}

StreamSplit SplitAtDivergence(const compare::Run& run, bool side_a) {
  const std::string& text = side_a ? run.text_a : run.text_b;
  StreamSplit split;
  if (!run.first_divergence) {
    split.prefix = text;
    return split;
  }
  const compare::FirstDivergence& fd = *run.first_divergence;
  split.diverged = true;
  size_t prefix_length;
  auto starts_with = [](const std::string& s, const std::string& p) {
    return s.compare(0, p.size(), p) == 0;
  };
  if (starts_with(run.text_a, fd.context) && starts_with(run.text_b, fd.context)) {
    prefix_length = fd.context.size();
  } else {
    prefix_length = CommonPrefixUtf8(run.text_a, run.text_b);
  }
  prefix_length = std::min(prefix_length, text.size());
  split.prefix = text.substr(0, prefix_length);
  std::string remainder = text.substr(prefix_length);
  const std::string& token = side_a ? fd.text_a : fd.text_b;
  if (!token.empty() && starts_with(remainder, token)) {
    split.token = token;
    split.rest = remainder.substr(token.size());
    split.located = true;
  } else {
    split.rest = remainder;
  }
  return split;
}

std::vector<std::string> GatesInWords(const compare::Thresholds& t) {
  std::vector<std::string> out;
  auto le = [&](const char* name, const std::optional<double>& v) {
    if (v) out.push_back(fmt::format("{} \u2264 {}", name, FormatNumber(*v)));
  };
  le("max_kl", t.max_kl);
  le("mean_kl", t.mean_kl);
  le("p99_kl", t.p99_kl);
  le("max_abs_logit_diff", t.max_abs_logit_diff);
  if (t.min_top1_agreement) {
    out.push_back(fmt::format("top1_agreement \u2265 {}", FormatNumber(*t.min_top1_agreement)));
  }
  if (t.min_first_divergence_step) {
    out.push_back(fmt::format("first_divergence_step \u2265 {}", *t.min_first_divergence_step));
  }
  if (t.fail_on_real_divergence) out.push_back("no real divergence");
  if (t.require_oracle_acceptable) out.push_back("oracle acceptable");
  return out;
}

bool MarginWithinNoise(const compare::StepRecord& step) {
  return std::min(step.margin_a, step.margin_b) <= step.noise;
}

std::vector<std::string> RangeWatchLines(const compare::Run& run) {
  std::vector<std::string> lines;
  if (run.range_a) lines.push_back(compare::DescribeRangeWatch("A", *run.range_a));
  if (run.range_b) lines.push_back(compare::DescribeRangeWatch("B", *run.range_b));
  return lines;
}

std::vector<const compare::Failure*> FailuresOfRun(const compare::Summary& summary,
                                                   const std::string& run_id) {
  std::vector<const compare::Failure*> out;
  for (const compare::Failure& failure : summary.verdict.failures) {
    if (failure.run == run_id) out.push_back(&failure);
  }
  return out;
}

std::vector<const compare::Run*> RunsOfPair(const compare::Summary& summary,
                                            const compare::PairSummary& pair) {
  std::vector<const compare::Run*> out;
  for (const std::string& id : pair.runs) {
    for (const compare::Run& run : summary.runs) {
      if (run.id == id) {
        out.push_back(&run);
        break;
      }
    }
  }
  return out;
}

nlohmann::json SettingsJson(const compare::Settings& settings) {
  compare::Summary summary;
  summary.settings = settings;
  return compare::ToJson(summary)["settings"];
}

std::string DescribeSide(const compare::SideSpec& side) {
  std::string text = side.model + "@" + side.precision;
  if (!side.numerics.empty() && side.numerics != side.precision) text += ", " + side.numerics;
  return text;
}

std::string KindWords(const std::string& kind) {
  if (kind == "rounding") return "rounding flip";
  if (kind == "real") return "real divergence";
  if (kind == "precision_failure") return "precision failure";
  return "undetermined divergence";
}

std::string KindCounts(const std::vector<const compare::Run*>& runs) {
  int rounding = 0, real = 0, other = 0;
  for (const compare::Run* run : runs) {
    if (!run->first_divergence) continue;
    const std::string& kind = run->first_divergence->kind;
    (kind == "rounding" ? rounding : (kind == "real" ? real : other)) += 1;
  }
  return fmt::format("{} / {} / {}", rounding, real, other);
}

}  // namespace parity::report
