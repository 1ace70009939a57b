#!/usr/bin/env bash
# The main job: set up, build, and train the built-in default
# (a small CNN on real Fashion-MNIST, on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
exec build/tunebench train "$@"
