#include "harness/report/history.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>

#include "harness/core/error.h"

namespace parity::report {
namespace {

// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

[[noreturn]] void FailErrno(const std::string& what, const std::string& path) {
  throw InputError(fmt::format("{} '{}': {}", what, path, std::strerror(errno)));
}

nlohmann::json Number(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

double DoubleField(const nlohmann::json& json, const char* key, const std::string& source) {
  auto it = json.find(key);
  if (it == json.end()) throw InputError(fmt::format("{}: {}: missing field", source, key));
  if (it->is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (!it->is_number()) {
    throw InputError(fmt::format("{}: {}: expected a number, got {}", source, key, it->dump()));
  }
  return it->get<double>();
}

template <typename T>
T Field(const nlohmann::json& json, const char* key, const std::string& source) {
  auto it = json.find(key);
  if (it == json.end()) throw InputError(fmt::format("{}: {}: missing field", source, key));
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw InputError(fmt::format("{}: {}: wrong type, got {}", source, key, it->dump()));
  }
}

// Cuts a torn last line (no trailing '\n') off the file, so the next record starts on a line of
// its own. Called with the lock held.
void RepairTornTail(int fd, const std::string& path) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) FailErrno("cannot stat", path);
  off_t size = info.st_size;
  if (size == 0) return;
  char last = 0;
  if (::pread(fd, &last, 1, size - 1) != 1) FailErrno("cannot read", path);
  if (last == '\n') return;
  off_t keep = 0;  // bytes to keep: up to and including the last '\n'
  char buffer[4096];
  for (off_t end = size; end > 0 && keep == 0;) {
    off_t begin = std::max<off_t>(0, end - static_cast<off_t>(sizeof(buffer)));
    ssize_t got = ::pread(fd, buffer, static_cast<size_t>(end - begin), begin);
    if (got != end - begin) FailErrno("cannot read", path);
    for (off_t i = got - 1; i >= 0; --i) {
      if (buffer[i] == '\n') {
        keep = begin + i + 1;
        break;
      }
    }
    end = begin;
  }
  if (::ftruncate(fd, keep) != 0) FailErrno("cannot truncate torn tail of", path);
}

}  // namespace

nlohmann::json ToJson(const HistoryRecord& r) {
  return {{"schema_version", r.schema_version},
          {"recorded_utc", r.recorded_utc},
          {"created_utc", r.created_utc},
          {"case", r.case_name},
          {"pair", r.pair},
          {"source", r.source},
          {"parity_version", r.parity_version},
          {"libtorch_version", r.libtorch_version},
          {"device", r.device},
          {"pass", r.pass},
          {"runs", r.runs},
          {"diverged_runs", r.diverged_runs},
          {"rounding_runs", r.rounding_runs},
          {"real_runs", r.real_runs},
          {"earliest_divergence_step", r.earliest_divergence_step
                                           ? nlohmann::json(*r.earliest_divergence_step)
                                           : nlohmann::json(nullptr)},
          {"mean_kl", Number(r.mean_kl)},
          {"max_kl", Number(r.max_kl)},
          {"p99_kl", Number(r.p99_kl)},
          {"max_abs_logit_diff", Number(r.max_abs_logit_diff)},
          {"top1_agreement", Number(r.top1_agreement)},
          {"drift", r.drift},
          {"moved", r.moved}};
}

HistoryRecord HistoryRecordFromJson(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) throw InputError(source + ": expected a JSON object");
  HistoryRecord r;
  r.schema_version = Field<int>(json, "schema_version", source);
  r.recorded_utc = Field<std::string>(json, "recorded_utc", source);
  r.created_utc = Field<std::string>(json, "created_utc", source);
  r.case_name = Field<std::string>(json, "case", source);
  r.pair = Field<std::string>(json, "pair", source);
  r.source = Field<std::string>(json, "source", source);
  r.parity_version = Field<std::string>(json, "parity_version", source);
  r.libtorch_version = Field<std::string>(json, "libtorch_version", source);
  r.device = Field<std::string>(json, "device", source);
  r.pass = Field<bool>(json, "pass", source);
  r.runs = Field<int64_t>(json, "runs", source);
  r.diverged_runs = Field<int64_t>(json, "diverged_runs", source);
  // Records written before verdict kinds existed name rounding flips "near_tie_runs".
  r.rounding_runs = json.contains("rounding_runs") ? Field<int64_t>(json, "rounding_runs", source)
                                                   : Field<int64_t>(json, "near_tie_runs", source);
  if (json.contains("real_runs")) r.real_runs = Field<int64_t>(json, "real_runs", source);
  auto earliest = json.find("earliest_divergence_step");
  if (earliest != json.end() && !earliest->is_null()) {
    r.earliest_divergence_step = Field<int64_t>(json, "earliest_divergence_step", source);
  }
  r.mean_kl = DoubleField(json, "mean_kl", source);
  r.max_kl = DoubleField(json, "max_kl", source);
  r.p99_kl = DoubleField(json, "p99_kl", source);
  r.max_abs_logit_diff = DoubleField(json, "max_abs_logit_diff", source);
  r.top1_agreement = DoubleField(json, "top1_agreement", source);
  r.drift = Field<std::string>(json, "drift", source);
  r.moved = Field<std::vector<std::string>>(json, "moved", source);
  return r;
}

std::vector<HistoryRecord> RecordsFromSummary(const compare::Summary& summary,
                                              const std::string& source) {
  std::vector<HistoryRecord> records;
  std::string now = compare::NowUtc();
  for (const compare::PairSummary& pair : summary.pairs) {
    HistoryRecord r;
    r.recorded_utc = now;
    r.created_utc = summary.created_utc;
    r.case_name = summary.case_ref.name;
    r.pair = pair.id;
    r.source = source;
    r.parity_version = summary.parity_version;
    r.libtorch_version = summary.libtorch_version;
    r.device = summary.settings.device;
    r.pass = pair.pass;
    r.mean_kl = pair.mean_kl;
    r.max_kl = pair.max_kl;
    r.top1_agreement = pair.top1_agreement;
    for (const std::string& id : pair.runs) {
      for (const compare::Run& run : summary.runs) {
        if (run.id != id) continue;
        ++r.runs;
        r.p99_kl = compare::MaxPropagatingNan(r.p99_kl, run.metrics.p99_kl);
        r.max_abs_logit_diff =
            compare::MaxPropagatingNan(r.max_abs_logit_diff, run.metrics.max_abs_logit_diff);
        if (run.first_divergence) {
          ++r.diverged_runs;
          const std::string& kind = run.first_divergence->kind;
          if (kind == "rounding") ++r.rounding_runs;
          if (kind == "real" || kind == "precision_failure") ++r.real_runs;
          r.earliest_divergence_step =
              std::min(r.earliest_divergence_step.value_or(run.first_divergence->step),
                       run.first_divergence->step);
        }
        break;
      }
    }
    records.push_back(std::move(r));
  }
  return records;
}

void AppendHistory(const std::string& history_path, const std::string& lock_path,
                   const std::vector<HistoryRecord>& records) {
  if (records.empty()) return;
  std::string text;
  for (const HistoryRecord& record : records) text += ToJson(record).dump() + "\n";

  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(history_path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) throw InputError(fmt::format("cannot create '{}': {}", parent.string(), ec.message()));

  Fd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (lock.get() < 0) FailErrno("cannot open lock file", lock_path);
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) FailErrno("cannot lock", lock_path);
  }
  // The lock is released when `lock` closes, after the data is on disk.
  Fd file(::open(history_path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (file.get() < 0) FailErrno("cannot open", history_path);
  RepairTornTail(file.get(), history_path);
  size_t written = 0;
  while (written < text.size()) {
    ssize_t n = ::write(file.get(), text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      FailErrno("cannot append to", history_path);
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(file.get()) != 0) FailErrno("cannot fsync", history_path);
}

HistoryRead ReadHistory(const std::string& history_path) {
  HistoryRead result;
  std::ifstream in(history_path, std::ios::binary);
  if (!in) return result;
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  size_t begin = 0;
  for (int64_t number = 1; begin < text.size(); ++number) {
    size_t end = text.find('\n', begin);
    bool complete = end != std::string::npos;
    std::string line = text.substr(begin, complete ? end - begin : std::string::npos);
    begin = complete ? end + 1 : text.size();
    if (line.empty()) continue;
    if (!complete) {  // a torn tail: an append was interrupted
      ++result.skipped_lines;
      continue;
    }
    try {
      result.records.push_back(HistoryRecordFromJson(
          nlohmann::json::parse(line), fmt::format("{}:{}", history_path, number)));
    } catch (const std::exception&) {
      ++result.skipped_lines;
    }
  }
  return result;
}

}  // namespace parity::report
