#include "harness/core/atomic_file.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace parity {
namespace {

TEST(AtomicFileTest, WritesContentAndLeavesNoTemporary) {
  TempDir dir;
  std::string path = dir.path() + "/sub/out.txt";
  WriteFileAtomic(path, "hello");
  EXPECT_EQ(ReadFileText(path), "hello");
  int entries = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path() + "/sub")) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST(AtomicFileTest, UncommittedWriteLeavesOldFileIntact) {
  TempDir dir;
  std::string path = dir.path() + "/out.txt";
  WriteFileAtomic(path, "old");
  {
    AtomicFile file(path);
    file.Write("new but interrupted");
    // destroyed without Commit(), as when an exception unwinds mid-write
  }
  EXPECT_EQ(ReadFileText(path), "old");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);
}

}  // namespace
}  // namespace parity
