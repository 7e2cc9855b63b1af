#include "harness/report/merge.h"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "harness/compare/metrics.h"
#include "harness/core/error.h"
#include "harness/report/run_view.h"

namespace parity::report {
namespace {

nlohmann::json SettingsForComparison(const compare::Settings& settings) {
  nlohmann::json json = SettingsJson(settings);
  json.erase("num_threads");  // machine-dependent; results do not depend on it
  return json;
}

nlohmann::json ModelsForComparison(const compare::Summary& summary) {
  nlohmann::json json = nlohmann::json::object();
  for (const auto& [label, model] : summary.models) {
    json[label] = {{"architecture", model.architecture},
                   {"convert_from", model.convert_from ? nlohmann::json(*model.convert_from)
                                                       : nlohmann::json(nullptr)},
                   {"variants", model.variants},
                   {"config", model.config}};
    // A model converted at run time lives inside each shard's --out: its path differs by design.
    if (!model.convert_from) json[label]["path"] = model.path;
  }
  return json;
}

std::string JoinIndices(const std::vector<int64_t>& values) {
  std::string out;
  for (size_t i = 0; i < values.size() && i < 20; ++i) out += (i ? ", " : "") + std::to_string(values[i]);
  if (values.size() > 20) out += fmt::format(", ... ({} in all)", values.size());
  return out;
}

// Every shard must describe the same case, settings, versions, gates and models.
void CheckConsistent(const std::vector<ShardOutputs>& shards, std::vector<std::string>* problems) {
  const compare::Summary& first = shards.front().outputs.summary;
  for (size_t i = 1; i < shards.size(); ++i) {
    const compare::Summary& s = shards[i].outputs.summary;
    auto differ = [&](const char* what, const std::string& a, const std::string& b) {
      problems->push_back(fmt::format("{} and {} disagree on {}: {} vs {}", shards.front().name,
                                      shards[i].name, what, a, b));
    };
    if (s.case_ref.name != first.case_ref.name) differ("case.name", first.case_ref.name, s.case_ref.name);
    if (s.case_ref.path != first.case_ref.path) {
      differ("case.path", first.case_ref.path.value_or("null"), s.case_ref.path.value_or("null"));
    }
    if (s.parity_version != first.parity_version) differ("parity_version", first.parity_version, s.parity_version);
    if (s.libtorch_version != first.libtorch_version) {
      differ("libtorch_version", first.libtorch_version, s.libtorch_version);
    }
    if (SettingsForComparison(s.settings) != SettingsForComparison(first.settings)) {
      differ("settings", SettingsForComparison(first.settings).dump(),
             SettingsForComparison(s.settings).dump());
    }
    if (compare::ToJson(s.thresholds) != compare::ToJson(first.thresholds)) {
      differ("thresholds", compare::ToJson(first.thresholds).dump(),
             compare::ToJson(s.thresholds).dump());
    }
    if (ModelsForComparison(s) != ModelsForComparison(first)) {
      differ("models", ModelsForComparison(first).dump(), ModelsForComparison(s).dump());
    }
  }
}

// With shard.json everywhere: shards 0..N-1 each exactly once, one N and one prompt count, and
// each shard's runs within the prompts it was given.
void CheckShardCoverage(const std::vector<ShardOutputs>& shards, std::vector<std::string>* problems) {
  const ShardInfo& first = *shards.front().info;
  std::map<int64_t, std::string> seen;
  for (const ShardOutputs& shard : shards) {
    const ShardInfo& info = *shard.info;
    if (info.shard.count != first.shard.count || info.num_prompts != first.num_prompts) {
      problems->push_back(fmt::format("{} is shard {}/{} of {} prompts, {} is {}/{} of {}",
                                      shards.front().name, first.shard.index, first.shard.count,
                                      first.num_prompts, shard.name, info.shard.index,
                                      info.shard.count, info.num_prompts));
      continue;
    }
    auto [it, inserted] = seen.emplace(info.shard.index, shard.name);
    if (!inserted) {
      problems->push_back(fmt::format("shard {}/{} given twice: {} and {}", info.shard.index,
                                      info.shard.count, it->second, shard.name));
    }
    if (info.prompt_indices != ShardPromptIndices(info.num_prompts, info.shard)) {
      problems->push_back(fmt::format("{}: shard.json prompt_indices [{}] are not those of shard "
                                      "{}/{}",
                                      shard.name, JoinIndices(info.prompt_indices),
                                      info.shard.index, info.shard.count));
    }
    for (const compare::Run& run : shard.outputs.summary.runs) {
      if (!InShard(run.prompt_index, info.shard) || run.prompt_index >= info.num_prompts) {
        problems->push_back(fmt::format("{}: run {} has prompt {}, which is not in shard {}/{}",
                                        shard.name, run.id, run.prompt_index, info.shard.index,
                                        info.shard.count));
      }
    }
  }
  std::vector<int64_t> missing;
  for (int64_t i = 0; i < first.shard.count; ++i) {
    if (!seen.count(i)) missing.push_back(i);
  }
  if (!missing.empty()) {
    problems->push_back(fmt::format("missing shard(s) {} of {}", JoinIndices(missing),
                                    first.shard.count));
  }
}

}  // namespace

compare::RunOutputs MergeShards(const std::vector<ShardOutputs>& shards) {
  if (shards.empty()) throw InputError("parity merge: no shard directories given");
  std::vector<std::string> problems;
  CheckConsistent(shards, &problems);

  size_t with_info = 0;
  for (const ShardOutputs& shard : shards) with_info += shard.info ? 1 : 0;
  if (with_info == shards.size()) {
    CheckShardCoverage(shards, &problems);
  } else if (with_info != 0) {
    problems.push_back("some shard directories have shard.json and some do not: give the outputs "
                       "of one sharded run");
  }

  // Pairs: the same ids in the same order in every shard that has any.
  std::vector<compare::PairSummary> pair_ids;
  for (const ShardOutputs& shard : shards) {
    const auto& pairs = shard.outputs.summary.pairs;
    if (pairs.empty()) continue;
    if (pair_ids.empty()) {
      pair_ids = pairs;
      continue;
    }
    bool same = pairs.size() == pair_ids.size();
    for (size_t i = 0; same && i < pairs.size(); ++i) same = pairs[i].id == pair_ids[i].id;
    if (!same) {
      problems.push_back(fmt::format("{} and {} have different pairs", shards.front().name,
                                     shard.name));
    }
  }

  // Runs: each id once; each attached to a known pair.
  std::map<std::string, std::pair<const compare::Run*, size_t>> runs_by_id;  // id -> (run, shard)
  std::map<std::string, std::vector<const compare::Run*>> runs_of_pair;
  for (size_t s = 0; s < shards.size(); ++s) {
    const compare::Summary& summary = shards[s].outputs.summary;
    for (const compare::PairSummary& pair : summary.pairs) {
      for (const std::string& id : pair.runs) {
        const compare::Run* run = nullptr;
        for (const compare::Run& r : summary.runs) {
          if (r.id == id) run = &r;
        }
        if (run == nullptr) {
          problems.push_back(fmt::format("{}: pair {} lists run {}, which is not in runs",
                                         shards[s].name, pair.id, id));
          continue;
        }
        auto [it, inserted] = runs_by_id.emplace(id, std::make_pair(run, s));
        if (!inserted) {
          problems.push_back(fmt::format("run {} is in two shards: {} and {}", id,
                                         shards[it->second.second].name, shards[s].name));
          continue;
        }
        runs_of_pair[pair.id].push_back(run);
      }
    }
    if (summary.runs.size() != [&] {
          size_t listed = 0;
          for (const compare::PairSummary& pair : summary.pairs) listed += pair.runs.size();
          return listed;
        }()) {
      problems.push_back(fmt::format("{}: runs[] and pairs[].runs do not list the same runs",
                                     shards[s].name));
    }
  }

  // Coverage of prompts: every pair has the same prompt indices, and they are 0..max (without
  // shard.json the last prompts could still be missing; shard.json closes that gap).
  std::set<int64_t> all_prompts;
  for (const auto& [id, entry] : runs_by_id) all_prompts.insert(entry.first->prompt_index);
  for (const compare::PairSummary& pair : pair_ids) {
    std::set<int64_t> prompts;
    for (const compare::Run* run : runs_of_pair[pair.id]) prompts.insert(run->prompt_index);
    std::vector<int64_t> missing;
    for (int64_t p : all_prompts) {
      if (!prompts.count(p)) missing.push_back(p);
    }
    if (!missing.empty()) {
      problems.push_back(fmt::format("pair {} has no run for prompt(s) {}", pair.id,
                                     JoinIndices(missing)));
    }
  }
  int64_t expected_prompts = with_info == shards.size() && with_info > 0
                                 ? shards.front().info->num_prompts
                                 : (all_prompts.empty() ? 0 : *all_prompts.rbegin() + 1);
  std::vector<int64_t> missing_prompts;
  for (int64_t p = 0; p < expected_prompts; ++p) {
    if (!all_prompts.count(p)) missing_prompts.push_back(p);
  }
  if (!missing_prompts.empty()) {
    problems.push_back(fmt::format("no shard ran prompt(s) {}", JoinIndices(missing_prompts)));
  }

  if (!problems.empty()) {
    std::string message = "parity merge: the shards do not form one run:";
    for (const std::string& p : problems) message += "\n  " + p;
    throw InputError(message);
  }

  // The merged run.
  const compare::Summary& first = shards.front().outputs.summary;
  compare::RunOutputs merged;
  compare::Summary& summary = merged.summary;
  summary.schema_version = first.schema_version;
  summary.parity_version = first.parity_version;
  summary.libtorch_version = first.libtorch_version;
  summary.case_ref = first.case_ref;
  summary.settings = first.settings;
  summary.models = first.models;
  summary.thresholds = first.thresholds;
  summary.placements = first.placements;  // each shard planned alike but for its own prompts
  summary.created_utc = first.created_utc;
  for (const ShardOutputs& shard : shards) {
    summary.created_utc = std::max(summary.created_utc, shard.outputs.summary.created_utc);
  }

  std::map<std::string, std::vector<const compare::StepRecord*>> steps_of_run;
  for (const ShardOutputs& shard : shards) {
    for (const compare::StepRecord& step : shard.outputs.steps) {
      steps_of_run[step.run].push_back(&step);
    }
  }
  std::map<std::string, size_t> run_order;
  for (const compare::PairSummary& identity : pair_ids) {
    std::vector<const compare::Run*> runs = runs_of_pair[identity.id];
    std::stable_sort(runs.begin(), runs.end(), [](const compare::Run* a, const compare::Run* b) {
      return a->prompt_index < b->prompt_index;
    });
    for (const compare::Run* run : runs) {
      run_order[run->id] = summary.runs.size();
      summary.runs.push_back(*run);
      for (const compare::StepRecord* step : steps_of_run[run->id]) merged.steps.push_back(*step);
    }
  }
  for (const compare::PairSummary& identity : pair_ids) {
    // runs_of_pair points into the shards; take the merged copies, in merged order.
    std::vector<const compare::Run*> runs;
    for (const compare::Run& run : summary.runs) {
      for (const compare::Run* source : runs_of_pair[identity.id]) {
        if (source->id == run.id) runs.push_back(&run);
      }
    }
    summary.pairs.push_back(
        compare::SummarizePair(identity, runs, merged.steps, summary.settings.max_new_tokens));
  }

  // Verdict: the shards' gate failures (gates are per run), in merged run order.
  for (const ShardOutputs& shard : shards) {
    for (const compare::Failure& failure : shard.outputs.summary.verdict.failures) {
      summary.verdict.failures.push_back(failure);
    }
  }
  std::stable_sort(summary.verdict.failures.begin(), summary.verdict.failures.end(),
                   [&](const compare::Failure& a, const compare::Failure& b) {
                     auto ia = run_order.find(a.run), ib = run_order.find(b.run);
                     size_t ka = ia == run_order.end() ? run_order.size() : ia->second;
                     size_t kb = ib == run_order.end() ? run_order.size() : ib->second;
                     return ka < kb;
                   });
  summary.verdict.pass = summary.verdict.failures.empty();
  summary.verdict.gated = false;  // gated when any shard had a gate on
  for (const ShardOutputs& shard : shards) summary.verdict.gated |= shard.outputs.summary.verdict.gated;
  for (const compare::Run& run : summary.runs) summary.verdict.pass = summary.verdict.pass && run.pass;
  return merged;
}

compare::RunOutputs MergeShardDirs(const std::vector<std::string>& dirs) {
  std::vector<ShardOutputs> shards;
  for (const std::string& dir : dirs) {
    shards.push_back({dir, compare::ReadRunOutputs(dir), ReadShardInfo(dir)});
  }
  return MergeShards(shards);
}

}  // namespace parity::report
