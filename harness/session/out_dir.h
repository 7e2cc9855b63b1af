// Output paths, checked before any expensive work, and run directories that never show stale
// results.
//
// A run directory (`run` / `compare` / `merge --out`) belongs to one run at a time. OUT/run.json
// says which: {"run_id", "case", "command", "state": "running" | "finished" | "interrupted",
// "started_utc", "finished_utc"}; summary.json carries the same run_id and the report prints it.
// Claiming a directory for a new run:
//   - a path that is a file, or a directory that cannot be created or written: InputError (exit 2)
//     naming the path;
//   - a non-empty directory holding files Parity does not write: refused, naming them;
//   - a directory holding a run of another case: refused unless `replace` is set;
//   - otherwise the previous run's files are cleared before the new run starts: summary.json first
//     (renamed away, then removed), so an interrupted rerun can never leave the previous summary
//     looking current; run.json then says "running" with the new run id.
#pragma once

#include <string>
#include <vector>

namespace parity::session {

// Makes sure `path` is a directory this process can write (creating it and its parents), so that a
// run fails in seconds rather than after decoding. Throws InputError naming `what` (e.g. "--out")
// and the path otherwise.
void PrepareOutputDir(const std::string& path, const std::string& what);

// The same for a file to be written: its directory must be writable and `path` must not be a
// directory.
void PrepareOutputFile(const std::string& path, const std::string& what);

// The files Parity writes into a run directory (a directory entry "models" too: the old layout's
// converted models).
const std::vector<std::string>& RunDirectoryFiles();

struct RunClaim {
  std::string out;
  std::string run_id;           // new, unique: "<UTC time>-<pid>-<random>"
  std::string previous_run_id;  // the run whose files were cleared ("" when none)
};

// Every refusal above, without changing anything in `out` (but creating it when missing): call it
// before the expensive work, and ClaimRunDirectory once the inputs are known to be good, so that bad
// input never costs the previous run its files.
void CheckRunDirectory(const std::string& out, const std::string& case_name, bool replace);
// Claims `out` for a run of `case_name` by `command` ("run", "compare", "merge"); see above.
RunClaim ClaimRunDirectory(const std::string& out, const std::string& case_name,
                           const std::string& command, bool replace);
// Records the run's end in OUT/run.json: "finished" or "interrupted".
void FinishRunDirectory(const RunClaim& claim, const std::string& case_name,
                        const std::string& command, const std::string& state);
// The run id OUT/run.json names, or "" when there is none (a directory written by `localize --out`
// alone, or by an older Parity).
std::string RunIdOf(const std::string& out);

}  // namespace parity::session
