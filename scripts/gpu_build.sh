#!/usr/bin/env bash
# Builds Parity on the GPU machine against the pip distribution of PyTorch (CUDA libtorch 2.x).
# The Debian libraries Parity needs travel as .deb files in .debs/ (made here with `apt-get download`,
# see the README) and are unpacked into a private prefix; nothing is installed system-wide.
# Usage: bash scripts/gpu_build.sh [BUILD_DIR]   (default build-gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build-gpu}
prefix=${PARITY_DEB_PREFIX:-/tmp/parity-debs}

mkdir -p "$prefix"
for deb in .debs/*.deb; do dpkg -x "$deb" "$prefix"; done
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
multiarch="$prefix/usr/lib/x86_64-linux-gnu"
export LD_LIBRARY_PATH="$multiarch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# Debian's CMake package files hard-code /usr paths; point the find_* calls at the prefix instead.
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$torch_prefix;$prefix/usr;$multiarch/cmake;$prefix/usr/share/cmake" \
  -DCMAKE_LIBRARY_PATH="$multiarch" -DCMAKE_INCLUDE_PATH="$prefix/usr/include" \
  -DPARITY_EXTRA_INCLUDE="$prefix/usr/include" "$@" 2>&1 | tail -n 5
# -k 0: build every target that can be built, so one broken test file does not hide the rest.
cmake --build "$build_dir" --parallel "$(nproc)" ${PARITY_BUILD_TARGET:+--target "$PARITY_BUILD_TARGET"} -- -k 0 || echo "gpu_build: some targets failed"
echo "export LD_LIBRARY_PATH=$LD_LIBRARY_PATH" > "$build_dir/env.sh"
