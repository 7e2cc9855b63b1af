#!/usr/bin/env bash
# Configures and builds Parity into build/ (the CLI ends up at build/parity). Extra arguments go to
# CMake's configure step, e.g. -DPARITY_SANITIZE=ON. Against a CUDA PyTorch's libtorch where one is
# installed (the CUDA variant), else Debian's.
set -euo pipefail
cd "$(dirname "$0")/.."
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
source scripts/ccache_env.sh
# The CUDA variant where a CUDA build of PyTorch is installed (pip): its libtorch (GPU decoding, CUDA
# graphs) with the Debian packages setup.sh installed for everything else; otherwise Debian's
# libtorch (CPU). PARITY_TORCH=debian keeps Debian's even then. Decided when build/ is configured.
torch=()
if [ "${PARITY_TORCH:-auto}" != debian ]; then
  cuda_torch=$(python3 -c 'import torch
if torch.version.cuda: print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
  if [ -n "$cuda_torch" ] && [ -d "$cuda_torch/Torch" ]; then
    torch=(-DCMAKE_PREFIX_PATH="$cuda_torch")
  fi
fi
if [ ! -f build/CMakeCache.txt ]; then
  [ ${#torch[@]} -gt 0 ] && echo "build.sh: CUDA libtorch from PyTorch at $cuda_torch (PARITY_TORCH=debian for Debian's)"
  cmake -S . -B build "${generator[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release "${torch[@]}" "$@"
elif [ $# -gt 0 ]; then
  cmake -S . -B build "$@"
fi
cmake --build build --parallel "$(nproc)"
