#!/usr/bin/env bash
# Installs llama.cpp's prebuilt CPU libraries as npm ships them, for scripts/llama_cpp/run_gguf.sh:
# node-llama-cpp 3.22.1 and @node-llama-cpp/linux-x64 3.22.1 (the versions and hashes pinned in
# package-lock.json; the optional GPU and other-platform variants are left out), into
# scripts/llama_cpp/node_modules (ignored by git). node-llama-cpp needs Node.js >= 20; when the
# machine's node is older (Debian bookworm ships 18), npm's `node@20.20.2` package (the official
# Linux x64 binary, from the npm registry) is installed into scripts/llama_cpp/.node and used.
# (`npm install --no-save` with the lock file: `npm ci` insists on the optional variants too.)
# Install scripts are not run: node-llama-cpp's postinstall would only look for a local build.
# Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail
cd "$(dirname "$0")"
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
node_bin=node
if ! command -v node >/dev/null 2>&1 || [ "$(node_major node)" -lt 20 ]; then
  if [ ! -x .node/node_modules/.bin/node ]; then
    echo "setup: Node.js >= 20 needed by node-llama-cpp; installing npm's node@20.20.2 into scripts/llama_cpp/.node"
    npm install --prefix .node --no-save --no-audit --no-fund node@20.20.2
  fi
  node_bin="$PWD/.node/node_modules/.bin/node"
fi
installed=$("$node_bin" -p 'try { require("./node_modules/node-llama-cpp/package.json").version + " " + require("./node_modules/@node-llama-cpp/linux-x64/package.json").version } catch (e) { "" }')
if [ "$installed" = "3.22.1 3.22.1" ]; then
  echo "setup: node-llama-cpp 3.22.1 and @node-llama-cpp/linux-x64 3.22.1 already installed"
  exit 0
fi
echo "setup: installing node-llama-cpp 3.22.1 + @node-llama-cpp/linux-x64 3.22.1 (llama.cpp CPU binaries) into scripts/llama_cpp/node_modules"
PATH="$(dirname "$node_bin"):$PATH" NODE_LLAMA_CPP_SKIP_DOWNLOAD=true \
  npm install --omit=optional --ignore-scripts --no-save --no-audit --no-fund
