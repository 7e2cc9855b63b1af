#!/usr/bin/env bash
# Installs everything Parity needs to build and test: Debian bookworm packages, then llama.cpp's
# prebuilt CPU libraries from the npm registry (scripts/llama_cpp/setup_npm.sh: node-llama-cpp and
# @node-llama-cpp/linux-x64 at the versions pinned in scripts/llama_cpp/package-lock.json, into
# scripts/llama_cpp/node_modules, which git ignores), the peer engine of tests/llama_cpp_peer_test.cpp.
# Idempotent: packages already present are left alone, and nothing is installed when all are there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev libopenblas0-pthread          # libtorch 1.13 (CPU); OpenBLAS makes FP32 GEMM ~25x faster
  nlohmann-json3-dev libfmt-dev libspdlog-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libsentencepiece-dev sentencepiece
  libpcre2-dev libutf8proc-dev                       # tokenizer.json: pre-tokenizer regexes, NFC
  python3-torch python3-sentencepiece python3-numpy   # fixture training and cross-checks
  python3-yaml                                        # scripts/cluster/k8s_local.py
  chromium fonts-dejavu-core                          # the HTML report is tested in a real browser
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# npm itself, from Debian when there is none (a machine with another Node.js keeps its own).
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
else
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

bash "$(dirname "$0")/llama_cpp/setup_npm.sh"
