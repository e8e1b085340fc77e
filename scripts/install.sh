#!/usr/bin/env bash
# Installs the build dependencies (Debian 12), builds edgellm, and generates a story with the bundled
# stories260K model. Usage: scripts/install.sh [extra cmake args]
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
# libmicrohttpd-dev: `edgellm serve` (left out of the build without it)
PKGS="build-essential cmake pkg-config libcjson-dev libpcre2-dev libutf8proc-dev libxxhash-dev xz-utils
      libmicrohttpd-dev"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j"$(nproc)"
# Optional: llama.cpp through npm node-llama-cpp (pinned, prebuilt CPU binaries) for the GGUF interop test
# and bench/run_cpu_bench.sh; without it that test is skipped. EDGELLM_SKIP_NPM=1 skips this step.
if [ "${EDGELLM_SKIP_NPM:-0}" != 1 ] && command -v npm >/dev/null 2>&1; then
  (cd bench/llamacpp && npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error) ||
    echo "note: npm ci in bench/llamacpp failed; the llama.cpp interop test will be skipped" >&2
fi
./build/edgellm generate --temperature 0 -n 64 "Once upon a time"
