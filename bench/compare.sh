#!/usr/bin/env bash
# Runs `tunebench bench` and the same network in PyTorch (bench/torch_bench.py)
# back to back on this machine and prints both lines and the ratio.
#   bench/compare.sh [--model small_cnn|quickstart_cnn|squeezenet1_0|squeezenet1_1] [--input 1x28x28] [--batch 64]
#                    [--steps 100] [--threads N] [--repeat K]
# PyTorch is Debian's python3-torch (/usr/bin/python3); without it only tunebench runs.
# Each side runs K times (default 3), alternating, and the best run of each is compared.
set -euo pipefail
cd "$(dirname "$0")/.."
model=small_cnn input=1x28x28 batch=64 steps=100 threads=$(nproc) repeat=3
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --input) input=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
tb=${TUNEBENCH:-build/tunebench}
[ -x "$tb" ] || { echo "compare.sh: $tb not built (run scripts/build.sh)" >&2; exit 1; }
common=(--input "$input" --batch "$batch" --steps "$steps" --threads "$threads")
# torchvision's names map onto the squeezenet plugin's version option
case "$model" in
  squeezenet1_0) tb_model=(--model squeezenet --set squeezenet.version=1_0 --set squeezenet.dropout=0.5) ;;
  squeezenet1_1) tb_model=(--model squeezenet --set squeezenet.version=1_1 --set squeezenet.dropout=0.5) ;;
  # configs/quickstart.ini's network: conv3x3-BN-ReLU-maxpool2 twice, linear 128, dropout 0.25
  quickstart_cnn) tb_model=(--model cnn --set cnn.filters=32,64 --set cnn.batch_norm=true --set cnn.units=128
                            --set cnn.dropout=0.25) ;;
  *) tb_model=(--model "$model") ;;
esac
have_torch=0
/usr/bin/python3 -c 'import torch' 2>/dev/null && have_torch=1

# the line with the most img/s, and fields of it
best_line() { awk '{ for (i = 1; i < NF; i++) if ($(i + 1) == "img/s,") print $i, $0 }' | sort -g | tail -1 | cut -d' ' -f2-; }
field() { sed -E "s|.*$1.*|\\1|"; }
# the median img/s of the lines (the best can be one lucky run; both are printed)
median_ips() { awk '{ for (i = 1; i < NF; i++) if ($(i + 1) == "img/s,") print $i }' | sort -g |
               awk '{ v[NR] = $1 } END { if (NR) printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
tb_lines="" torch_lines=""
for _ in $(seq "$repeat"); do
  tb_lines+="$("$tb" bench "${tb_model[@]}" "${common[@]}")"$'\n'
  if [ $have_torch = 1 ]; then
    # OPENBLAS_NUM_THREADS=1: Debian's torch uses the pthread OpenBLAS for its linear layers, whose
    # spinning threads fight torch's OpenMP pool; one BLAS thread is its fastest setting here.
    torch_lines+="$(OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_bench.py --model "$model" "${common[@]}")"$'\n'
  fi
done
printf '%s' "$tb_lines"
tb_best=$(printf '%s' "$tb_lines" | best_line)
tb_ips=$(printf '%s' "$tb_best" | field ': ([0-9.]+) img/s')
tb_peak=$(printf '%s' "$tb_best" | field '\(([0-9]+)% of sgemm peak')
tb_rss=$(printf '%s' "$tb_best" | field 'peak RSS ([0-9.]+) MiB')
tb_median=$(printf '%s' "$tb_lines" | median_ips)
if [ $have_torch = 0 ]; then
  echo "compare.sh: python3-torch not installed; tunebench best $tb_ips img/s, no ratio"
  echo "summary: model=$model input=$input batch=$batch threads=$threads tb=$tb_ips torch=- ratio=- peak_pct=$tb_peak tb_rss=$tb_rss torch_rss=- tb_median=$tb_median torch_median=- median_ratio=-"
  exit 0
fi
printf '%s' "$torch_lines"
torch_best=$(printf '%s' "$torch_lines" | best_line)
torch_ips=$(printf '%s' "$torch_best" | field ': ([0-9.]+) img/s')
torch_rss=$(printf '%s' "$torch_best" | field 'peak RSS ([0-9.]+) MiB')
torch_median=$(printf '%s' "$torch_lines" | median_ips)
awk -v a="$tb_ips" -v b="$torch_ips" -v m="$model" -v i="$input" -v n="$batch" \
  'BEGIN { printf "best of each: tunebench %.0f img/s, PyTorch %.0f img/s, ratio %.2fx (%s %s batch %s)\n", a, b, a / b, m, i, n }'
# one line for bench/suite.sh
awk -v a="$tb_ips" -v b="$torch_ips" -v m="$model" -v i="$input" -v n="$batch" -v t="$threads" -v p="$tb_peak" \
    -v ra="$tb_rss" -v rb="$torch_rss" -v ma="$tb_median" -v mb="$torch_median" \
  'BEGIN { printf "summary: model=%s input=%s batch=%s threads=%s tb=%.1f torch=%.1f ratio=%.2f peak_pct=%s tb_rss=%s torch_rss=%s tb_median=%.1f torch_median=%.1f median_ratio=%.2f\n", m, i, n, t, a, b, a / b, p, ra, rb, ma, mb, ma / mb }'
