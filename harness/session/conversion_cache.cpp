#include "harness/session/conversion_cache.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "harness/compare/run_result.h"
#include "harness/core/atomic_file.h"
#include "harness/core/error.h"
#include "harness/core/remove_tree.h"
#include "harness/core/version.h"

namespace parity::session {
namespace fs = std::filesystem;
namespace {

constexpr const char* kMarker = "parity-cache.json";
constexpr size_t kHeadBytes = 64 * 1024;

// FNV-1a, 64 bit: deterministic across runs and machines (std::hash is not).
struct Fnv64 {
  uint64_t state = 1469598103934665603ull;
  void Add(const void* data, size_t size) {
    const unsigned char* bytes = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) {
      state ^= bytes[i];
      state *= 1099511628211ull;
    }
  }
  void Add(const std::string& text) {
    Add(text.data(), text.size());
    Add("\0", 1);
  }
  std::string Hex() const { return fmt::format("{:016x}", state); }
};

std::string Canonical(const std::string& dir) {
  std::error_code ec;
  fs::path path = fs::weakly_canonical(fs::absolute(dir), ec);
  return ec ? fs::absolute(dir).lexically_normal().string() : path.string();
}

}  // namespace

std::string ResolveCacheDir(const std::string& flag) {
  if (!flag.empty()) return flag;
  auto env = [](const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr ? std::string(value) : std::string();
  };
  if (std::string dir = env("PARITY_CACHE"); !dir.empty()) return dir;
  if (std::string dir = env("XDG_CACHE_HOME"); !dir.empty()) return dir + "/parity";
  if (std::string dir = env("HOME"); !dir.empty()) return dir + "/.cache/parity";
  return (fs::temp_directory_path() / "parity-cache").string();
}

std::string FingerprintDirectory(const std::string& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_regular_file(dir, ec)) {
    files.push_back(dir);  // a single-file checkpoint (GGUF)
  } else {
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_regular_file(ec)) files.push_back(it->path());
    }
  }
  if (ec) throw InputError(fmt::format("cannot list '{}': {}", dir, ec.message()));
  std::sort(files.begin(), files.end());
  Fnv64 hash;
  std::vector<char> head(kHeadBytes);
  for (const fs::path& file : files) {
    const uint64_t size = fs::file_size(file, ec);
    const auto mtime = fs::last_write_time(file, ec).time_since_epoch().count();
    if (ec) throw InputError(fmt::format("cannot stat '{}': {}", file.string(), ec.message()));
    std::ifstream in(file, std::ios::binary);
    if (!in) throw InputError(fmt::format("cannot read '{}'", file.string()));
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    hash.Add(file.filename().string());
    hash.Add(fmt::format("{} {}", size, static_cast<int64_t>(mtime)));
    hash.Add(head.data(), static_cast<size_t>(in.gcount()));
  }
  return hash.Hex();
}

std::string ConversionCache::Get(const std::string& src, const std::string& conversion,
                                 int revision, const Converter& convert, bool* reused) {
  const std::string source = Canonical(src);
  Fnv64 key;
  key.Add(conversion);
  key.Add(std::to_string(revision));
  key.Add(ParityVersion());
  key.Add(source);
  key.Add(FingerprintDirectory(src));
  const fs::path entry = fs::path(dir_) / (conversion + "-" + key.Hex());
  std::error_code ec;
  if (fs::exists(entry / kMarker, ec)) {
    spdlog::info("reusing the cached {} conversion of {} ({})", conversion, source, entry.string());
    if (reused != nullptr) *reused = true;
    return entry.string();
  }
  const fs::path temp_root = fs::path(dir_) / ".tmp";
  fs::create_directories(temp_root, ec);
  if (ec) {
    throw InputError(fmt::format("cannot create the conversion cache '{}': {} (set --cache-dir or "
                                 "PARITY_CACHE)", temp_root.string(), ec.message()));
  }
  std::random_device random;
  const fs::path temp =
      temp_root / fmt::format("{}-{}.{}.{:08x}", conversion, key.Hex(), ::getpid(), random());
  // Whatever happens below (a bad source, SIGINT, a full disk), the temporary directory goes.
  struct TempGuard {
    std::string path;
    ~TempGuard() {
      if (!path.empty()) RemoveTree(path);
    }
  } guard{temp.string()};
  spdlog::info("converting {} ({}) into the cache {}", source, conversion, entry.string());
  convert(src, temp.string());
  nlohmann::ordered_json marker = {{"conversion", conversion},
                                   {"revision", revision},
                                   {"parity_version", ParityVersion()},
                                   {"source", source},
                                   {"created_utc", compare::NowUtc()}};
  WriteFileAtomic((temp / kMarker).string(), marker.dump(2) + "\n");
  if (::rename(temp.c_str(), entry.c_str()) != 0) {
    if ((errno == ENOTEMPTY || errno == EEXIST) && fs::exists(entry / kMarker, ec)) {
      spdlog::info("another process cached the same conversion first; using {}", entry.string());
    } else {
      throw InputError(fmt::format("cannot rename '{}' to '{}': {}", temp.string(), entry.string(),
                                   std::strerror(errno)));
    }
  } else {
    guard.path.clear();
  }
  if (reused != nullptr) *reused = false;
  return entry.string();
}

std::vector<ConversionCache::Entry> ConversionCache::List() const {
  std::vector<Entry> entries;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path marker = it->path() / kMarker;
    if (!fs::exists(marker)) continue;
    Entry entry;
    entry.dir = it->path().string();
    try {
      std::ifstream in(marker);
      nlohmann::json json = nlohmann::json::parse(in);
      entry.conversion = json.value("conversion", "");
      entry.source = json.value("source", "");
      entry.created_utc = json.value("created_utc", "");
    } catch (const std::exception&) {
      entry.conversion = "?";
    }
    std::error_code size_ec;
    for (fs::directory_iterator file(it->path(), size_ec), last; !size_ec && file != last;
         file.increment(size_ec)) {
      if (file->is_regular_file(size_ec)) entry.bytes += file->file_size(size_ec);
    }
    entries.push_back(entry);
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.dir < b.dir; });
  return entries;
}

int64_t ConversionCache::Clear() {
  int64_t removed = 0;
  for (const Entry& entry : List()) {
    // Remove the marker first: a half-removed entry is then never taken for a complete one.
    std::remove((fs::path(entry.dir) / kMarker).c_str());
    if (!RemoveTree(entry.dir)) {
      throw InputError(fmt::format("cannot remove '{}'", entry.dir));
    }
    ++removed;
  }
  RemoveTree((fs::path(dir_) / ".tmp").string());
  return removed;
}

}  // namespace parity::session
