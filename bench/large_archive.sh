#!/usr/bin/env bash
# large_archive.sh: writes the analysis benchmark's archive (docs/simulate.md,
# "Generating archives") and measures it: 1,000 random-search runs x 100
# epochs x 1,000 batch losses through the real archive writer, no training.
# Not part of ctest (about 11 minutes and 3.1 GiB on 2 cores, docs/simulate.md).
#
#   bench/large_archive.sh [DIR] [RUNS] [EPOCHS] [BATCHES]   (defaults: /tmp/tb_large_archive 1000 100 1000)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
exe=${TUNEBENCH:-$here/build/tunebench}
dir=${1:-/tmp/tb_large_archive}
runs=${2:-1000}
epochs=${3:-100}
batches=${4:-1000}
[ -x "$exe" ] || { echo "large_archive.sh: $exe is missing: build first (cmake --build build)" >&2; exit 2; }
start=$(date +%s.%N)
"$exe" simulate "$dir" --synthetic-runs "$runs" --epochs "$epochs" --batches "$batches" --force --quiet
end=$(date +%s.%N)
echo "large_archive.sh: $runs runs x $epochs epochs x $batches batches in $(echo "$end - $start" | bc) s"
echo "large_archive.sh: on disk: $(du -sh "$dir" | cut -f1) ($(du -sh "$dir/runs" | cut -f1) in runs/: journals and run files)"
