// Converted checkpoints, cached by what their source is. A nightly `run` of a case that converts a
// 7B model at run time would otherwise rewrite 15 GB every night, and a fixed output directory
// (the old OUT/models/<label>) would silently reuse a conversion of a different source.
//
// An entry's key is the conversion's name and revision, Parity's version, the source directory's
// canonical path and its content fingerprint: for every regular file directly in it (sorted by
// name) the name, size, modification time (ns) and a hash of its first 64 KiB (for safetensors
// files: the header, which holds every tensor's name, dtype, shape and offsets). Change a file in
// the source and the key changes, so a stale conversion is never reused.
//
// Layout: CACHE/<conversion>-<16 hex>/ (the converted checkpoint, plus parity-cache.json saying
// where it came from), CACHE/.tmp/ (conversions in progress). An entry is written by converting
// into a fresh directory under .tmp and renaming it into place, so a reader sees a complete entry or
// none; when two processes convert the same source at once, the second rename fails and that
// process uses the first's entry and removes its own.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace parity::session {

// The cache directory: `flag` (--cache-dir) when non-empty, else $PARITY_CACHE, else
// $XDG_CACHE_HOME/parity, else $HOME/.cache/parity, else <temp dir>/parity-cache.
std::string ResolveCacheDir(const std::string& flag);

// 16 hex digits identifying the content of directory `dir` (see above), or of the one file `dir`
// when it is a regular file (a GGUF checkpoint). Throws InputError naming the
// directory when it cannot be listed or a file cannot be read.
std::string FingerprintDirectory(const std::string& dir);

class ConversionCache {
 public:
  // Writes `dst` (a fresh, empty directory) from `src`.
  using Converter = std::function<void(const std::string& src, const std::string& dst)>;

  explicit ConversionCache(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }

  // The directory holding `conversion` (a name such as "internlm2-to-llama", with its `revision`)
  // of `src` as it is now: an existing entry, or a new one made with `convert`. `reused` says which.
  // Throws InputError naming the cache directory when it cannot be written.
  std::string Get(const std::string& src, const std::string& conversion, int revision,
                  const Converter& convert, bool* reused = nullptr);

  struct Entry {
    std::string dir;         // CACHE/<conversion>-<key>
    std::string conversion;  // "internlm2-to-llama"
    std::string source;      // canonical source directory
    std::string created_utc;
    uint64_t bytes = 0;      // files directly in the entry
  };
  std::vector<Entry> List() const;
  // Removes every entry and every leftover temporary directory; returns how many were removed.
  int64_t Clear();

 private:
  std::string dir_;
};

}  // namespace parity::session
