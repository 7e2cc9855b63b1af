#include "harness/core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "harness/core/error.h"

namespace parity {
namespace {

std::string TempPathFor(const std::string& path) {
  static std::atomic<int> counter{0};
  std::filesystem::path p(path);
  std::string name = fmt::format(".{}.tmp.{}.{}", p.filename().string(), ::getpid(), counter++);
  return (p.parent_path() / name).string();
}

void EnsureParentDirectory(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) {
    throw InputError(fmt::format("cannot create directory '{}': {}", parent.string(), ec.message()));
  }
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  EnsureParentDirectory(path_);
  temp_path_ = TempPathFor(path_);
  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (file_ == nullptr) {
    throw InputError(fmt::format("cannot write '{}': {}", temp_path_, std::strerror(errno)));
  }
}

AtomicFile::~AtomicFile() {
  if (file_ != nullptr) std::fclose(file_);
  if (!committed_) std::remove(temp_path_.c_str());
}

void AtomicFile::Write(const void* data, size_t size) {
  if (size == 0) return;
  if (std::fwrite(data, 1, size, file_) != size) {
    throw InputError(fmt::format("cannot write '{}': {}", temp_path_, std::strerror(errno)));
  }
}

void AtomicFile::Commit() {
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0) {
    throw InputError(fmt::format("cannot flush '{}': {}", temp_path_, std::strerror(errno)));
  }
  std::fclose(file_);
  file_ = nullptr;
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    throw InputError(fmt::format("cannot rename '{}' to '{}': {}", temp_path_, path_,
                                 std::strerror(errno)));
  }
  committed_ = true;
}

void WriteFileAtomic(const std::string& path, std::string_view content) {
  AtomicFile file(path);
  file.Write(content);
  file.Commit();
}

}  // namespace parity
