#!/usr/bin/env bash
# scripts/llama_cpp/run_gguf.mjs with the Node.js that setup_npm.sh chose (its own node@20 when the
# machine's is older than 20). Arguments as run_gguf.mjs takes them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -d "$here/node_modules/node-llama-cpp" ]; then
  echo "run_gguf: node-llama-cpp is not installed: run scripts/setup.sh (or scripts/llama_cpp/setup_npm.sh)" >&2
  exit 2
fi
node_bin=node
[ -x "$here/.node/node_modules/.bin/node" ] && node_bin="$here/.node/node_modules/.bin/node"
exec "$node_bin" "$here/run_gguf.mjs" "$@"
