#include "harness/report/terminal.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "harness/report/run_view.h"

namespace parity::report {
namespace {

// Display width of UTF-8 text, counting code points (good enough for a terminal table).
size_t DisplayWidth(const std::string& text) {
  size_t width = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++width;
  }
  return width;
}

std::string Pad(const std::string& text, size_t width) {
  size_t shown = DisplayWidth(text);
  return shown >= width ? text : text + std::string(width - shown, ' ');
}

std::string Number(double value) {
  if (value == 0) return "0";
  if (std::isnan(value)) return "n/a";  // not computed (e.g. a top-k trace side), or NaN logits
  return fmt::format("{:.3g}", value);
}

std::string Divergence(const compare::Run& run) {
  if (!run.first_divergence) return "-";
  const compare::FirstDivergence& d = *run.first_divergence;
  return fmt::format("{} {} '{}' vs '{}'{}", d.step, d.kind, ShowText(d.text_a), ShowText(d.text_b),
                     d.after_newline ? " (after \\n)" : "");
}

std::string Oracle(const compare::Run& run) {
  if (!run.oracle) return "-";
  const compare::OracleResult& o = *run.oracle;
  std::string verdict = !o.acceptable ? "n/a" : (*o.acceptable ? "ok" : "FAIL");
  // The figures the oracle rule compares: each side against the FP64 run of A's model.
  return fmt::format("{} / {} {}", Number(o.a_rms_error_vs_reference),
                     Number(o.b_rms_error_vs_reference), verdict);
}

}  // namespace

std::string ShowText(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out += fmt::format("\\x{:02x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

std::string FormatSummaryTable(const compare::Summary& summary) {
  const compare::Settings& s = summary.settings;
  std::string out = fmt::format(
      "case {}: {} mode, {} new tokens max, device {}, seed {}{}\n", summary.case_ref.name, s.mode,
      s.max_new_tokens, s.device, s.seed, s.oracle ? ", FP64 oracle" : "");
  bool emulated = std::any_of(summary.runs.begin(), summary.runs.end(), [](const auto& run) {
    return run.pair.a.emulated || run.pair.b.emulated;
  });
  if (emulated) {
    out += "note: fp16 is emulated on this device (each op computed in fp32, its output rounded to "
           "fp16)\n";
  }
  const std::vector<std::string> header = {"run",    "steps", "first divergence", "max KL",
                                           "mean KL", "top-1", "err vs fp64 of a: a / b", "gate"};
  std::vector<std::vector<std::string>> rows;
  for (const compare::Run& run : summary.runs) {
    rows.push_back({run.id, std::to_string(run.metrics.steps), Divergence(run),
                    Number(run.metrics.max_kl), Number(run.metrics.mean_kl),
                    fmt::format("{:.1f}%", 100 * run.metrics.top1_agreement), Oracle(run),
                    !compare::AnyGate(run.thresholds) ? "-" : (run.pass ? "pass" : "FAIL")});
  }
  std::vector<size_t> widths(header.size());
  for (size_t i = 0; i < header.size(); ++i) {
    widths[i] = DisplayWidth(header[i]);
    for (const auto& row : rows) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (size_t i = 0; i < cells.size(); ++i) {
      text += i + 1 == cells.size() ? cells[i] : Pad(cells[i], widths[i]) + "  ";
    }
    return text + "\n";
  };
  out += line(header);
  for (const auto& row : rows) out += line(row);
  // Each first divergence's verdict with its evidence in words.
  for (const compare::Run& run : summary.runs) {
    if (run.first_divergence) {
      const compare::FirstDivergence& d = *run.first_divergence;
      out += fmt::format("{} step {}: {} ({}): {}\n", run.id, d.step, d.kind, d.evidence.source,
                         d.evidence.reason);
    } else if (run.verdict_kind && *run.verdict_kind != "rounding") {
      out += fmt::format("{}: {} ({}): {}\n", run.id, *run.verdict_kind,
                         run.verdict_evidence.source, run.verdict_evidence.reason);
    }
  }
  // The range watch of each run's sides: how close each came to its precision's largest value.
  for (const compare::Run& run : summary.runs) {
    for (const std::string& line : RangeWatchLines(run)) {
      out += fmt::format("{} range watch: {}\n", run.id, line);
    }
  }
  // Metrics a run could not compute (a top-k trace side), once per pair: which, and why.
  std::set<std::string> noted_pairs;
  for (const compare::Run& run : summary.runs) {
    if (run.unavailable_metrics.empty()) continue;
    const std::string pair = run.pair.a.model + "@" + run.pair.a.precision + "/" + run.pair.b.model +
                             "@" + run.pair.b.precision;
    if (!noted_pairs.insert(pair).second) continue;
    out += fmt::format("{}: unavailable metrics (null in summary.json):\n", pair);
    // Metrics sharing a reason on one line, in the order first seen.
    std::vector<std::pair<std::string, std::string>> lines;  // (metrics, reason)
    for (const compare::UnavailableMetric& u : run.unavailable_metrics) {
      auto it = std::find_if(lines.begin(), lines.end(), [&](const auto& l) { return l.second == u.reason; });
      if (it == lines.end()) {
        lines.push_back({u.metric, u.reason});
      } else {
        it->first += ", " + u.metric;
      }
    }
    for (const auto& [metrics, reason] : lines) out += fmt::format("  {}: {}\n", metrics, reason);
  }
  auto runs = [](size_t n) { return fmt::format("{} run{}", n, n == 1 ? "" : "s"); };
  if (summary.interrupted) {
    out += fmt::format("INTERRUPTED: only the {} that finished before the stop are here\n",
                       runs(summary.runs.size()));
  }
  if (summary.runs.empty()) {
    out += "verdict: nothing ran (0 runs)\n";
  } else if (!summary.verdict.gated) {
    out += fmt::format("verdict: no gate was on ({}; nothing was checked, so nothing passed or "
                       "failed: give thresholds, or --fail-on-real-divergence)\n",
                       runs(summary.runs.size()));
  } else if (summary.verdict.pass) {
    out += fmt::format("verdict: PASS ({})\n", runs(summary.runs.size()));
  } else {
    size_t failed_runs = std::count_if(summary.runs.begin(), summary.runs.end(),
                                       [](const auto& run) { return !run.pass; });
    out += fmt::format("verdict: FAIL ({} of {} failed a gate)\n", failed_runs,
                       runs(summary.runs.size()));
    for (const compare::Failure& failure : summary.verdict.failures) {
      out += "  " + failure.message + "\n";
    }
  }
  return out;
}

}  // namespace parity::report
