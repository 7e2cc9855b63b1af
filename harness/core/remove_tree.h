// Removing a directory tree. Not std::filesystem::remove_all: linked against pip's libtorch 2.x that
// call resolves to a broken copy inside libtorch.so and crashes (seen on the GPU machine).
#pragma once

#include <string>

namespace parity {

// Removes `path` and everything under it (symbolic links are removed, not followed). A missing path is
// not an error. Returns false when something could not be removed.
bool RemoveTree(const std::string& path);

}  // namespace parity
