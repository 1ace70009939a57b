#!/usr/bin/env bash
# Configures and builds tunebench into BUILD_DIR (default build/).
# Extra arguments go to cmake's configure step (e.g. -DTB_SANITIZE=ON).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DTB_WERROR=ON "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
