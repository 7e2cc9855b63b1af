// Atomic output: write to a temporary file in the destination directory, fsync, then rename, so that
// an interrupted run (SIGINT, SIGKILL, power loss) leaves either the old file or the new one, never a
// truncated one.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace parity {

// Writes `content` to `path` atomically. Creates missing parent directories. Throws InputError naming
// the path when the directory cannot be created or written.
void WriteFileAtomic(const std::string& path, std::string_view content);

// Streaming variant for large outputs (safetensors shards): Write() appends, Commit() fsyncs and
// renames into place. Destroying an uncommitted AtomicFile removes the temporary file.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void Write(const void* data, size_t size);
  void Write(std::string_view text) { Write(text.data(), text.size()); }
  void Commit();

  const std::string& path() const { return path_; }

 private:
  std::string path_;       // final destination
  std::string temp_path_;  // "<dir>/.<name>.tmp.<pid>.<counter>"
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

}  // namespace parity
