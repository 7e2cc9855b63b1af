#include "harness/compare/save_traces.h"

#include <filesystem>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "harness/core/error.h"
#include "harness/core/version.h"
#include "harness/io/kld_base.h"
#include "harness/io/trace.h"

namespace parity::compare {
namespace {

// A side's rows, stream and mode for one run.
struct SideData {
  std::vector<int64_t> tokens;  // the token appended after each step (trace "tokens")
  at::Tensor logits;            // [T, V] FP32
};

SideData SideOf(const RunOutcome& outcome, bool a_side, bool forced, bool teacher_is_a) {
  const at::Tensor& rows = a_side ? outcome.logits_a : outcome.logits_b;
  SideData d;
  if (!rows.defined()) return d;
  const int64_t steps = rows.size(0);
  // Free: each side's own tokens; teacher-forced: the teacher's (what both read).
  const bool own = !forced || a_side == teacher_is_a;
  const std::vector<int64_t>& stream =
      own ? (a_side ? outcome.run.tokens_a : outcome.run.tokens_b)
          : (teacher_is_a ? outcome.run.tokens_a : outcome.run.tokens_b);
  d.tokens.assign(stream.begin(), stream.begin() + std::min<int64_t>(steps, stream.size()));
  d.logits = rows.slice(0, 0, static_cast<int64_t>(d.tokens.size())).to(at::kFloat).contiguous();
  return d;
}

// False (with a warning) when a run is too short for the layout.
bool WriteKldBase(const std::string& path, const std::vector<RunRequest>& requests,
                  const std::vector<SideData>& sides) {
  const int64_t prompt_length = static_cast<int64_t>(requests.front().prompt_tokens.size());
  const int64_t n_ctx = 2 * (prompt_length - 1);
  const int64_t scored = prompt_length - 2;
  std::vector<int32_t> tokens;
  for (size_t r = 0; r < requests.size(); ++r) {
    if (static_cast<int64_t>(sides[r].tokens.size()) < scored) {
      spdlog::warn("{}: not written: run {} stopped after {} step(s) (EOS), the base file needs {} "
                   "per prompt", path, requests[r].id, sides[r].tokens.size(), scored);
      return false;
    }
    for (int64_t id : requests[r].prompt_tokens) tokens.push_back(static_cast<int32_t>(id));
    for (int64_t t = 0; t < n_ctx - prompt_length; ++t) {
      tokens.push_back(static_cast<int32_t>(sides[r].tokens[t]));
    }
  }
  const int32_t vocab = static_cast<int32_t>(sides.front().logits.size(1));
  io::KldBaseFile file = io::KldBaseFile::FromLogits(
      static_cast<int32_t>(n_ctx), vocab, tokens, [&](int64_t chunk, int64_t position) {
        const at::Tensor row = sides[chunk].logits[position - (prompt_length - 1)].contiguous();
        return std::vector<float>(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
      });
  file.Write(path);
  return true;
}

}  // namespace

void CheckKldBaseRequest(const std::vector<std::vector<int64_t>>& prompts, int64_t max_new_tokens) {
  if (prompts.empty()) return;
  const size_t length = prompts.front().size();
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].size() != length) {
      throw InputError(fmt::format(
          "--save-kld-base: prompts have {} and {} tokens; a llama.cpp base file has one context "
          "size, so every prompt must have the same length", length, prompts[i].size()));
    }
  }
  if (length < 3 || max_new_tokens < static_cast<int64_t>(length) - 2) {
    throw InputError(fmt::format(
        "--save-kld-base: prompts of {} tokens make chunks of n_ctx = {} whose scored second half "
        "needs {} decode steps; give prompts of at least 3 tokens and max_new_tokens >= {} (now {})",
        length, 2 * (static_cast<int64_t>(length) - 1), static_cast<int64_t>(length) - 2,
        static_cast<int64_t>(length) - 2, max_new_tokens));
  }
}

std::vector<SavedTrace> SavePairTraces(const SaveRequest& save, const Case& c,
                                       const CasePair& case_pair, const Pair& pair,
                                       const std::vector<RunRequest>& requests,
                                       const std::vector<RunOutcome>& outcomes,
                                       const std::string& path_a, const std::string& path_b,
                                       bool recorded_a, bool recorded_b,
                                       std::set<std::string>& written) {
  std::vector<SavedTrace> saved;
  if ((!save.traces && !save.kld_base) || outcomes.empty()) return saved;
  const bool forced = c.mode == decode::GreedyMode::kTeacherForced;
  const std::string pair_id = PairId(pair);
  for (const bool a_side : {true, false}) {
    if (a_side ? recorded_a : recorded_b) continue;
    const CaseSide& side = a_side ? case_pair.a : case_pair.b;
    const CaseSide& teacher = c.teacher_is_a ? case_pair.a : case_pair.b;
    std::string name = SideLabel(side);
    if (forced && a_side != c.teacher_is_a) name += ".on." + SideLabel(teacher);
    if (written.count(name)) continue;
    std::vector<SideData> sides;
    for (const RunOutcome& outcome : outcomes) sides.push_back(SideOf(outcome, a_side, forced, c.teacher_is_a));
    if (!sides.front().logits.defined()) {
      spdlog::warn("{}: no trace written for side {} of {}: this comparison kept no logits for it "
                   "(a top-k pair)", name, a_side ? "a" : "b", pair_id);
      continue;
    }
    written.insert(name);
    std::vector<std::string> runs;
    for (const RunOutcome& outcome : outcomes) runs.push_back(outcome.run.id);
    const std::string side_letter = a_side ? "a" : "b";
    if (save.traces) {
      io::Trace trace;
      const SideSpec& spec = a_side ? pair.a : pair.b;
      trace.producer.engine = "parity";
      trace.producer.engine_version = ParityVersion();
      trace.producer.model = a_side ? path_a : path_b;
      trace.producer.dtype = spec.precision;
      trace.producer.device = c.device;
      trace.producer.settings = {
          {"numerics", spec.numerics},
          {"libtorch", LibtorchVersion()},
          {"mode", decode::GreedyModeName(c.mode)},
          {"teacher", forced ? SideLabel(teacher) : ""},
          {"max_new_tokens", c.max_new_tokens},
          {"seed", c.seed},
          {"deterministic_algorithms", at::globalContext().deterministicAlgorithms()},
          {"num_threads", at::get_num_threads()},
          {"case", c.name},
          {"pair", pair_id},
          {"logits", spec.precision == "fp64" ? "FP64 logits rounded to FP32" : "FP32"}};
      trace.mode = forced && a_side != c.teacher_is_a ? "teacher_forced" : "free";
      trace.vocab_size = sides.front().logits.size(1);
      for (size_t r = 0; r < requests.size(); ++r) {
        io::TracePrompt p;
        p.name = fmt::format("p{}", requests[r].prompt_index);
        p.text = requests[r].prompt_text;
        p.prompt_tokens = requests[r].prompt_tokens;
        p.tokens = sides[r].tokens;
        p.logits = sides[r].logits;
        trace.prompts.push_back(std::move(p));
      }
      const std::string relative = "traces/" + name;
      io::WriteTrace(save.out_dir + "/" + relative, trace);
      saved.push_back({relative, "parity-trace", side_letter, pair_id, SideLabel(side), runs});
      spdlog::info("wrote {}/{}", save.out_dir, relative);
    }
    if (save.kld_base) {
      const std::string relative = "kld-base/" + name + ".kld";
      std::filesystem::create_directories(save.out_dir + "/kld-base");
      if (WriteKldBase(save.out_dir + "/" + relative, requests, sides)) {
        saved.push_back({relative, "llama.cpp-kld-base", side_letter, pair_id, SideLabel(side), runs});
        spdlog::info("wrote {}/{}", save.out_dir, relative);
      }
    }
  }
  return saved;
}

}  // namespace parity::compare
