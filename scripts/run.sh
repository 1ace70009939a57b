#!/usr/bin/env bash
# The main job: set up, build, and train
# configs/quickstart.ini: the baseline CNN on real Fashion-MNIST, on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
exec build/tunebench train configs/quickstart.ini "$@"
