#!/usr/bin/env bash
# The CPU benchmark table of issue 16: every workload at 1 and 2 threads,
# tunebench against PyTorch side by side (bench/compare.sh: alternating runs,
# best of each and medians), with each step rate as a share of the sgemm peak that
# `tunebench bench` measures in the same process, and both peak RSS.
#   bench/suite.sh [--threads "1 2"] [--repeat 3] [--steps-scale 1] [--only PATTERN]
# Prints compare.sh's lines as it goes, then one markdown table. Takes about
# 15 minutes on 2 cores at the defaults; --repeat 1 --steps-scale 0.5 for a quick look.
set -euo pipefail
cd "$(dirname "$0")/.."
threads_list="1 2" repeat=3 scale=1 only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads_list=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --steps-scale) scale=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "suite.sh: unknown option $1 (see the comment at the top)" >&2; exit 2 ;;
  esac
done
# model input batch steps (steps sized for a few seconds per run at 1 thread)
workloads=(
  "small_cnn 1x28x28 64 100"
  "quickstart_cnn 1x28x28 64 100"
  "squeezenet1_1 3x64x64 64 24"
  "squeezenet1_1 3x64x64 128 12"
  "squeezenet1_0 3x64x64 64 12"
  "squeezenet1_1 3x224x224 16 8"
  "squeezenet1_0 3x224x224 16 5"
)
rows=()
for threads in $threads_list; do
  for wl in "${workloads[@]}"; do
    read -r model input batch steps <<<"$wl"
    [ -n "$only" ] && [[ "$wl" != *$only* ]] && continue
    steps=$(awk -v s="$steps" -v k="$scale" 'BEGIN { n = int(s * k + 0.5); print n < 2 ? 2 : n }')
    out=$(bash bench/compare.sh --model "$model" --input "$input" --batch "$batch" --steps "$steps" \
          --threads "$threads" --repeat "$repeat")
    printf '%s\n' "$out"
    rows+=("$(printf '%s\n' "$out" | grep '^summary:')")
  done
done
echo
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)'), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| workload | threads | tunebench img/s | PyTorch img/s | ratio (best of each) | ratio (medians) | % of sgemm peak | RSS tunebench / PyTorch MiB |"
echo "|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  printf '%s\n' "$r" | tr ' ' '\n' | awk -F= '
    NF == 2 { v[$1] = $2 }
    END { printf "| %s %s batch %s | %s | %s (median %s) | %s (median %s) | %s× | %s× | %s %% | %s / %s |\n",
          v["model"], v["input"], v["batch"], v["threads"], v["tb"], v["tb_median"], v["torch"], v["torch_median"],
          v["ratio"], v["median_ratio"], v["peak_pct"], v["tb_rss"], v["torch_rss"] }'
done
