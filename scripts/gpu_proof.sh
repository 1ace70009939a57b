#!/usr/bin/env bash
# gpu_proof.sh: proves the CUDA backend on a borrowed GPU machine (see docs/gpu.md).
#
#   scripts/gpu_proof.sh pack    HERE (the build machine): build, then collect the executables, plugins,
#                                libtunebench_cuda.so, the test executables and every non-glibc, non-CUDA
#                                shared library they need into .gpu/ (one xz tarball + manifest.txt), which
#                                .git/info/exclude ignores. Carry .gpu to the GPU machine.
#   scripts/gpu_proof.sh check   HERE: unpack .gpu's bundle to a temporary folder and check that it is
#                                self-contained (ldd) and that tunebench starts from it (pack runs it too).
#   scripts/gpu_proof.sh run     ON THE GPU MACHINE, in the repo root, with .gpu carried: one command of at
#                                most ~9 minutes; everything lands in $OUT (default ./gpu-proof-out):
#                                  summary.txt  every figure and each phase's status (also printed at the end)
#                                  log.txt      the whole run, timestamped
#                                  env.txt      machine, driver, toolkit, cuDNN, library resolution (ldd)
#                                  tests.txt    test_cuda and test_device output
#                                  bench.txt    tunebench bench and bench/torch_gpu_bench.py lines + the table
#                                  epoch.txt    `tunebench train` of one Imagenette-sized epoch, timestamped
#                                  gpu-util.csv nvidia-smi samples (unix time, utilisation %, memory MiB)
#
# With the device tool: run(command="scripts/gpu_proof.sh run", carry=[".gpu"], timeout_s=600).
#
# Phases of `run` (each time-boxed with timeout; a failing phase is recorded and the next one runs):
#   setup    unpack .gpu, find the CUDA libraries (toolkit, then PyTorch's pip packages), compare the device's
#            CUDA major version and cuDNN with what the module was built against; rebuild the module with
#            the device's nvcc when the major differs, the carried module does not load or is missing, or
#            the device's cuDNN is older than the build's
#   devices  nvidia-smi -L, tunebench devices
#   tests    .gpu/tests/test_cuda, .gpu/tests/test_device
#   bench    SqueezeNet 1.1 and 1.0 at batch 64 and 128, 3x224x224: tunebench bench --device cuda:0 and
#            PyTorch (deterministic and benchmark cuDNN), FP32; a table with the ratios
#   epoch    one epoch of configs/study_squeezenet_imagenette.ini (SqueezeNet 1.1, batch 64, 224 px) on a
#            generated 14,000-JPEG Imagenette tree (13,000 train / 500 val / 500 test), nvidia-smi sampling
#   tf32     the bench again with TF32 allowed on both sides, if time is left
#
# Knobs (environment):
#   pack: GPU_PROOF_BUILD_DIR (build-gpu)   GPU_PROOF_CFLAGS (-march=x86-64-v3: runs on any H100 host CPU)
#         GPU_PROOF_NO_BUILD=1 (pack what is built)   GPU_PROOF_MAX_MIB (60)   extra args go to cmake
#   run:  OUT   GPU_PROOF_BUDGET (540 s for everything)   GPU_PROOF_DEVICE (cuda:0)   PYTHON (python3)
#         GPU_PROOF_STEPS (100)   GPU_PROOF_WARMUP (10)   GPU_PROOF_MODELS ("squeezenet1_1 squeezenet1_0")
#         GPU_PROOF_BATCHES ("64 128")   GPU_PROOF_TF32 (auto|0|1)   GPU_PROOF_REBUILD (auto|0|1)
#         GPU_PROOF_NVCC_FLAGS   GPU_PROOF_TRAIN_PER_CLASS (1000)   GPU_PROOF_VAL_PER_CLASS (400)
#         GPU_PROOF_IMAGE_SIZE (320x480)   GPU_PROOF_EPOCH_EXTRA (more train arguments, e.g. "--set k=v")
#         GPU_PROOF_SKIP ("" or phase names: tests bench epoch tf32)
#   A CPU-only rehearsal of `run` here (small and quick; test_cuda skips itself, so the tests phase fails):
#     OUT=/tmp/gp GPU_PROOF_DEVICE=cpu GPU_PROOF_STEPS=1 GPU_PROOF_WARMUP=1 GPU_PROOF_BATCHES=2 \
#     GPU_PROOF_TRAIN_PER_CLASS=20 GPU_PROOF_VAL_PER_CLASS=10 GPU_PROOF_IMAGE_SIZE=80x96 GPU_PROOF_TF32=1 \
#     GPU_PROOF_EPOCH_EXTRA="--set imagenette.val_count=50 --set imagenette.test_count=50 \
#     --set imagenette.resolution=32" scripts/gpu_proof.sh run
set -uo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BUNDLE_DIR=$ROOT/.gpu
LOADER_NAME=ld-linux-x86-64.so.2

say() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { say "gpu_proof.sh: $*" >&2; exit 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# glibc's own libraries: the GPU machine's glibc must provide them (they only work as a set)
is_glibc_lib() {
  case "$1" in
    ld-linux*|libc.so.*|libm.so.*|libmvec.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libresolv.so.*|\
    libutil.so.*|libanl.so.*|libnsl.so.*|libBrokenLocale.so.*|libthread_db.so.*|libc_malloc_debug.so.*|\
    libnss_*|libmemusage.so|libpcprofile.so|linux-vdso.so.*|linux-gate.so.*) return 0 ;;
  esac
  return 1
}
# CUDA's libraries and the driver's: found on the GPU machine, never carried
is_cuda_lib() {
  case "$1" in
    libcuda.so*|libcudart.so*|libcublas.so*|libcublasLt.so*|libcudnn*|libnvrtc*|libnvJitLink*|libcufft*|\
    libcurand*|libcusparse*|libcusolver*|libnccl*|libnvidia-*|libnvToolsExt*|libnvtx*|libcupti*|libnvblas*|\
    libnvperf*|libcufile*) return 0 ;;
  esac
  return 1
}
# "soname path" for each library ldd resolves (path "not" when not found)
ldd_pairs() { ldd "$1" 2>/dev/null | awk '$2 == "=>" { print $1, ($3 == "not" ? "not" : $3) }'; }
is_elf() { [ -f "$1" ] && [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }
manifest_get() { sed -n "s/^$1=//p" "$2" 2>/dev/null | head -1; }

git_exclude_file() {
  if [ -d "$ROOT/.git" ]; then echo "$ROOT/.git/info/exclude"; return 0; fi
  if [ -f "$ROOT/.git" ]; then
    local gd common
    gd=$(sed -n 's/^gitdir: //p' "$ROOT/.git")
    case "$gd" in /*) ;; *) gd=$ROOT/$gd ;; esac
    if [ -f "$gd/commondir" ]; then # a worktree: info/exclude is the main repository's
      common=$(cat "$gd/commondir")
      case "$common" in /*) gd=$common ;; *) gd=$gd/$common ;; esac
    fi
    echo "$gd/info/exclude"
    return 0
  fi
  return 1
}
ensure_excluded() {
  local f
  f=$(git_exclude_file) || { say "warning: no .git here; add $1 to .git/info/exclude yourself"; return 0; }
  mkdir -p "$(dirname "$f")"
  grep -qxF "$1" "$f" 2>/dev/null || { echo "$1" >>"$f"; say "added $1 to $f"; }
}

# ==== pack ==============================================================================================

find_nvcc() {
  local c
  c=$(sed -n 's/^CMAKE_CUDA_COMPILER:[A-Z]*=//p' "$1/CMakeCache.txt" 2>/dev/null | head -1)
  [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
  command -v nvcc 2>/dev/null && return 0
  [ -x /usr/local/cuda/bin/nvcc ] && { echo /usr/local/cuda/bin/nvcc; return 0; }
  return 1
}

# cuDNN version "9.19.0" from a cudnn_version.h
cudnn_header_version() {
  awk '/#define CUDNN_MAJOR /{a=$3} /#define CUDNN_MINOR /{b=$3} /#define CUDNN_PATCHLEVEL /{c=$3}
       END { if (a != "") printf "%s.%s.%s\n", a, b, c }' "$1" 2>/dev/null
}

# The cuDNN version a module links against on this machine: the resolved libcudnn's file name
# (libcudnn.so.9.19.0), else a cudnn_version.h next to it or under the toolkit.
cudnn_version_for() {
  local module=$1 bdir=$2 path real v h
  path=$(ldd_pairs "$module" | awk '$1 ~ /^libcudnn\.so/ && $2 != "not" { print $2; exit }')
  if [ -n "$path" ]; then
    real=$(readlink -f "$path")
    v=$(basename "$real" | sed -n 's/^libcudnn\.so\.\([0-9][0-9.]*\)$/\1/p')
    case "$v" in *.*) echo "$v"; return 0 ;; esac
    for h in "$(dirname "$real")/../include/cudnn_version.h" "$(dirname "$real")/../../include/cudnn_version.h"; do
      v=$(cudnn_header_version "$h"); [ -n "$v" ] && { echo "$v"; return 0; }
    done
  fi
  for h in $(sed -n 's/^[A-Za-z_]*CUDNN[A-Za-z_]*INCLUDE[A-Za-z_]*:[A-Z]*=//p' "$bdir/CMakeCache.txt" 2>/dev/null) \
           /usr/local/cuda/include /usr/include /usr/include/x86_64-linux-gnu /usr/local/cuda-*/include; do
    v=$(cudnn_header_version "$h/cudnn_version.h"); [ -n "$v" ] && { echo "$v"; return 0; }
  done
  echo unknown
}

cmd_pack() {
  local bdir=${GPU_PROOF_BUILD_DIR:-build-gpu} max_mib=${GPU_PROOF_MAX_MIB:-60}
  local cflags=${GPU_PROOF_CFLAGS--march=x86-64-v3}
  if [ "${GPU_PROOF_NO_BUILD:-0}" != 1 ]; then
    say "building into $bdir: scripts/build.sh -DTB_CUDA=ON -DTB_NATIVE=OFF -DCMAKE_C_FLAGS='$cflags' $*"
    say "(-march=native is off: the GPU machine's CPU is not this one's; TB_CUDA_ARCHITECTURES keeps its default, 90)"
    BUILD_DIR=$bdir scripts/build.sh -DTB_CUDA=ON -DTB_NATIVE=OFF "-DCMAKE_C_FLAGS=$cflags" "$@" ||
      die "the build failed (scripts/build.sh into $bdir)"
  fi
  [ -x "$bdir/tunebench" ] || die "$bdir/tunebench is not built"

  local stage
  stage=$(mktemp -d /tmp/gpu-proof-pack.XXXXXX) || die "mktemp failed"
  # shellcheck disable=SC2064
  trap "rm -rf '$stage'" EXIT
  mkdir -p "$stage"/{bin,lib,plugins,tests,glibc}
  cp "$bdir/tunebench" "$stage/bin/" || die "cannot copy $bdir/tunebench"
  (cd "$bdir/plugins" && find . -name '*.so' -type f -print0 | tar --null -cf - -T -) | tar -C "$stage/plugins" -xf - \
    || die "cannot copy $bdir/plugins"
  [ -n "$(find "$stage/plugins" -name '*.so' -type f)" ] || die "no plugins in $bdir/plugins"

  local module
  module=$(find "$bdir" -maxdepth 3 -name 'libtunebench_cuda*.so*' -type f 2>/dev/null | sort | head -1)
  if [ -n "$module" ]; then
    cp "$module" "$stage/lib/libtunebench_cuda.so"
    say "CUDA module: $module"
  else
    say "WARNING: no libtunebench_cuda.so under $bdir (is -DTB_CUDA=ON implemented, CUDA + cuDNN found?);" \
        "the run step will try to build it on the GPU machine from core/engine/cuda/ with its nvcc"
  fi

  # test executables: test_cuda and test_device always, the others if small
  local t size tests=()
  for t in "$bdir"/tests/test_*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    size=$(stat -c %s "$t")
    case "$(basename "$t")" in
      test_cuda|test_device) ;;
      *) [ "$size" -le $((4 * 1048576)) ] || { say "skipping $(basename "$t") ($(mib "$size") MiB)"; continue; } ;;
    esac
    cp "$t" "$stage/tests/" && tests+=("$(basename "$t")")
  done
  for t in test_cuda test_device; do
    [ -f "$stage/tests/$t" ] || say "WARNING: $bdir/tests/$t is not built (the run step records it as missing)"
  done
  [ -d "$bdir/test-plugins" ] && cp -a "$bdir/test-plugins" "$stage/test-plugins"

  # shared libraries: every non-glibc, non-CUDA one into lib/; glibc's into glibc/ (used only when the
  # GPU machine's glibc is older than this one's, through the carried loader)
  local f so path missing=() loader=""
  while IFS= read -r f; do
    is_elf "$f" || continue
    while read -r so path; do
      if [ "$path" = not ]; then
        is_cuda_lib "$so" || missing+=("$so (needed by ${f#"$stage"/})")
        continue
      fi
      if is_cuda_lib "$so"; then continue; fi
      if is_glibc_lib "$so"; then
        [ -e "$stage/glibc/$so" ] || cp -L "$path" "$stage/glibc/$so"
      else
        [ -e "$stage/lib/$so" ] || cp -L "$path" "$stage/lib/$so"
      fi
    done < <(ldd_pairs "$f")
    [ -n "$loader" ] || loader=$(ldd "$f" 2>/dev/null | awk '$1 ~ /ld-linux/ && $1 ~ /^\// { print $1; exit }')
  done < <(find "$stage/bin" "$stage/plugins" "$stage/lib" "$stage/tests" -type f | sort)
  [ ${#missing[@]} -eq 0 ] || die "libraries not found here: ${missing[*]}"
  if [ -n "$loader" ]; then cp -L "$loader" "$stage/glibc/$LOADER_NAME"; fi

  # what it was built with
  local nvcc cuda_ver="" cuda_major="" cudnn_ver=unknown needed="" glibc_ver
  if nvcc=$(find_nvcc "$bdir"); then
    cuda_ver=$("$nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\), V\([0-9.]*\).*/\2/p' | head -1)
    cuda_major=${cuda_ver%%.*}
  fi
  if [ -f "$stage/lib/libtunebench_cuda.so" ]; then
    needed=$(readelf -d "$stage/lib/libtunebench_cuda.so" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
    [ -n "$needed" ] || needed=$(ldd_pairs "$module" | awk '{ print $1 }' | tr '\n' ' ')
    cudnn_ver=$(cudnn_version_for "$module" "$bdir")
  fi
  glibc_ver=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{ print $2 }')
  local tbver
  tbver=$(LD_LIBRARY_PATH="$stage/lib" TUNEBENCH_PLUGIN_PATH="$stage/plugins" "$stage/bin/tunebench" version 2>&1 | head -1)
  cat >"$stage/manifest.txt" <<EOF
pack_root=$ROOT
build_dir=$bdir
build_dir_abs=$(cd "$bdir" && pwd)
packed_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)
build_os=$(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-unknown}")
build_glibc=$glibc_ver
tunebench_version=$tbver
c_flags=$cflags
cuda_version=${cuda_ver:-none}
cuda_major=${cuda_major:-none}
cudnn_version=$cudnn_ver
module=$([ -f "$stage/lib/libtunebench_cuda.so" ] && echo yes || echo no)
module_needed=$needed
tests=${tests[*]}
EOF

  # bundle: one xz tarball (the OpenMP OpenBLAS alone is 35 MiB unpacked)
  local unpacked
  unpacked=$(du -sb "$stage" | awk '{ print $1 }')
  echo "unpacked_bytes=$unpacked" >>"$stage/manifest.txt"
  rm -rf "$BUNDLE_DIR"
  mkdir -p "$BUNDLE_DIR"
  ensure_excluded /.gpu/
  ensure_excluded /gpu-proof-out/
  say "compressing $(mib "$unpacked") MiB into .gpu/bundle.tar.xz"
  tar -C "$stage" -cf - . | xz -T0 -6 >"$BUNDLE_DIR/bundle.tar.xz" || die "tar/xz failed"
  cp "$stage/manifest.txt" "$BUNDLE_DIR/manifest.txt"
  cat >"$BUNDLE_DIR/README" <<'EOF'
Made by scripts/gpu_proof.sh pack; used by scripts/gpu_proof.sh run on the GPU machine (carry .gpu).
Not tracked: .git/info/exclude ignores this folder.
EOF
  local gpu_bytes tree_kib
  gpu_bytes=$(du -sb "$BUNDLE_DIR" | awk '{ print $1 }')
  # what else travels: the tree without .git and the ignored build*/ runs/ .gpu/ gpu-proof-out/ (an estimate)
  tree_kib=$(du -sk --exclude=./.git --exclude='./build*' --exclude=./runs --exclude=./.gpu \
             --exclude=./gpu-proof-out --exclude='__pycache__' . 2>/dev/null | awk '{ print $1 }')
  say "manifest:"
  sed 's/^/    /' "$BUNDLE_DIR/manifest.txt"
  say ".gpu is $(mib "$gpu_bytes") MiB ($(mib "$unpacked") MiB unpacked: $(ls "$stage/lib" | wc -l) libraries," \
      "${#tests[@]} test executables); the tree beside it about $(mib $((tree_kib * 1024))) MiB;" \
      "the tool carries 64 MiB in all"
  [ "$gpu_bytes" -le $((max_mib * 1048576)) ] || die ".gpu is over $max_mib MiB"
  cmd_check || die "the bundle check failed"
  say "done. On the GPU machine: run(command=\"scripts/gpu_proof.sh run\", carry=[\".gpu\"], timeout_s=600)"
}

# ==== check (here) ======================================================================================

cmd_check() {
  [ -f "$BUNDLE_DIR/bundle.tar.xz" ] || die "no .gpu/bundle.tar.xz (run scripts/gpu_proof.sh pack)"
  local t bad=0 f so path
  t=$(mktemp -d /tmp/gpu-proof-check.XXXXXX) || die "mktemp failed"
  tar -C "$t" -xJf "$BUNDLE_DIR/bundle.tar.xz" || { rm -rf "$t"; die "cannot unpack the bundle"; }
  say "check: every library of the bundle's executables resolves inside it (glibc and CUDA apart)"
  while IFS= read -r f; do
    is_elf "$f" || continue
    while read -r so path; do
      is_glibc_lib "$so" && continue
      is_cuda_lib "$so" && continue
      if [ "$path" = not ]; then
        say "  MISSING $so (needed by ${f#"$t"/})"; bad=1
      else
        case "$(readlink -f "$path")" in
          "$t"/lib/*) ;;
          *) say "  OUTSIDE $so -> $path (needed by ${f#"$t"/})"; bad=1 ;;
        esac
      fi
    done < <(LD_LIBRARY_PATH="$t/lib" ldd_pairs "$f")
  done < <(find "$t/bin" "$t/plugins" "$t/lib" "$t/tests" -type f | sort)
  local env=(env LD_LIBRARY_PATH="$t/lib" TUNEBENCH_PLUGIN_PATH="$t/plugins" TUNEBENCH_CUDA_MODULE="$t/lib/libtunebench_cuda.so")
  say "check: tunebench from the bundle"
  "${env[@]}" "$t/bin/tunebench" version || bad=1
  "${env[@]}" "$t/bin/tunebench" plugins 2>&1 | grep -E '^(model|task|frontend)|squeezenet|imagenette' | head -12
  "${env[@]}" "$t/bin/tunebench" bench --model squeezenet --set squeezenet.version=1_1 --input 3x32x32 \
    --batch 2 --steps 1 --warmup 0 --threads 1 || bad=1
  "${env[@]}" "$t/bin/tunebench" devices 2>&1 | sed 's/^/    devices: /' || true
  rm -rf "$t"
  [ $bad = 0 ] && say "check: ok" || say "check: FAILED"
  return $bad
}

# ==== run (on the GPU machine) ==========================================================================

T0=$(date +%s)
now() { echo "${EPOCHREALTIME:-$(date +%s.%N)}"; }
elapsed() { echo $(($(date +%s) - T0)); }
remaining() { echo $((DEADLINE - $(date +%s))); }
# limit MAX [RESERVE]: seconds a step may run: MAX, less if only RESERVE would be left after it
limit() {
  local r=$(($(remaining) - ${2:-0}))
  [ "$r" -gt "$1" ] && r=$1
  [ "$r" -lt 1 ] && r=1
  echo "$r"
}
log() { printf '[%s +%3ds] %s\n' "$(date -u +%H:%M:%S)" "$(elapsed)" "$*"; }
stamp() { local l; while IFS= read -r l; do printf '%s %s\n' "$(now)" "$l"; done; }
skipped() { case " ${GPU_PROOF_SKIP:-} " in *" $1 "*) return 0 ;; esac; return 1; }

declare -a PHASES=()
declare -A PSTAT=() PSECS=() PSTART=()
NOTES=()
note() { NOTES+=("$*"); log "NOTE: $*"; }
phase_begin() { PHASES+=("$1"); PSTART[$1]=$(date +%s); PSTAT[$1]="running"; log "==== phase $1: $2"; }
phase_end() {
  PSTAT[$1]=$2
  PSECS[$1]=$(($(date +%s) - PSTART[$1]))
  log "==== phase $1: $2 (${PSECS[$1]} s)"
}
# rc of a timeout'ed command to words
rc_words() {
  case "$1" in
    0) echo ok ;; 124) echo "TIMEOUT" ;; 137) echo "KILLED (timeout -k)" ;; 77) echo "SKIPPED itself (exit 77)" ;;
    *) echo "FAILED (exit $1)" ;;
  esac
}

# tunebench's environment: carried libraries first, then the CUDA ones found here
tbenv() {
  env LD_LIBRARY_PATH="$TB_LD${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" TUNEBENCH_CUDA_MODULE="$MODULE" \
      TUNEBENCH_PLUGIN_PATH="$BUNDLE_DIR/plugins" XDG_CACHE_HOME="$W/cache" "$@"
}
# the executables through the carried loader when this machine's glibc is older than the build's
TB_EXEC=()
TB=""

find_python() {
  local p
  for p in "${PYTHON:-}" python3 /opt/torch/.venv/bin/python3 /usr/bin/python3; do
    [ -n "$p" ] || continue
    command -v "$p" >/dev/null 2>&1 || continue
    "$p" -c 'import torch' >/dev/null 2>&1 && { command -v "$p"; return 0; }
  done
  return 1
}

# directories that may hold CUDA's libraries, most likely first
cuda_lib_candidates() {
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib \
           /usr/local/cuda-*/lib64 /usr/local/cuda-*/targets/x86_64-linux/lib /usr/local/cuda-*/lib; do
    [ -d "$d" ] && echo "$d"
  done
  [ -n "$PY" ] && "$PY" - <<'EOF' 2>/dev/null
import glob, os, site, sys
roots = []
for p in list(getattr(site, "getsitepackages", lambda: [])()) + [site.getusersitepackages()] + sys.path:
    if p and os.path.isdir(p) and p not in roots:
        roots.append(p)
for r in roots:
    for sub in ("nvidia/cu13/lib", "nvidia/cudnn/lib", "nvidia/cublas/lib", "nvidia/cuda_runtime/lib",
                "nvidia/cu12/lib", "nvidia/*/lib", "torch/lib"):
        for d in sorted(glob.glob(os.path.join(r, sub))):
            print(d)
EOF
  for d in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$d" ] && echo "$d"
  done
}

# the first candidate directory holding soname $1
find_lib_dir() {
  local d
  while IFS= read -r d; do
    [ -e "$d/$1" ] && { echo "$d"; return 0; }
  done < <(printf '%s\n' "${CANDIDATES[@]}")
  return 1
}

cudnn_version_in() { # directory holding libcudnn.so.9
  local d=$1 v real
  real=$(readlink -f "$d/libcudnn.so.9" 2>/dev/null)
  v=$(basename "${real:-x}" | sed -n 's/^libcudnn\.so\.\([0-9][0-9.]*\)$/\1/p')
  case "$v" in *.*) echo "$v"; return 0 ;; esac
  for h in "$d/../include/cudnn_version.h" "$d/../../include/cudnn_version.h" "$d/../include/cudnn_version_v9.h"; do
    v=$(cudnn_header_version "$h"); [ -n "$v" ] && { echo "$v"; return 0; }
  done
  if [ -n "$TORCH_CUDNN_DIR" ] && [ "$(readlink -f "$TORCH_CUDNN_DIR")" = "$(readlink -f "$d")" ] && [ -n "$TORCH_CUDNN" ]; then
    # torch.backends.cudnn.version(): 91900 = 9.19.0 (cuDNN 9: major*10000 + minor*100 + patch)
    echo "$((TORCH_CUDNN / 10000)).$((TORCH_CUDNN / 100 % 100)).$((TORCH_CUDNN % 100))"
    return 0
  fi
  echo unknown
}

version_lt() { # version_lt A B: A < B (dotted numbers)
  [ "$1" = "$2" ] && return 1
  [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$1" ]
}

# the CUDA module from core/engine/cuda/ with this machine's nvcc (when the carried one cannot serve)
rebuild_module() {
  local srcs=() s lib d linkdir=$W/cuda-link inc=() out=$W/libtunebench_cuda.so
  for s in "$ROOT"/core/engine/cuda/*.cu; do [ -f "$s" ] && srcs+=("$s"); done
  [ ${#srcs[@]} -gt 0 ] || { log "rebuild: no sources in core/engine/cuda/"; return 1; }
  [ -n "$NVCC" ] || { log "rebuild: no nvcc on this machine"; return 1; }
  mkdir -p "$linkdir"
  # unversioned names for the linker (pip's packages ship only libcudnn.so.9, libcublas.so.13, ...)
  for lib in cudnn cublas cublasLt cudart; do
    local real=""
    for d in "${CUDA_DIRS[@]}" "${CANDIDATES[@]}"; do
      real=$(ls "$d/lib$lib.so".[0-9]* 2>/dev/null | head -1)
      [ -n "$real" ] && break
    done
    [ -n "$real" ] && ln -sf "$real" "$linkdir/lib$lib.so"
  done
  inc=(-I"$ROOT/core" -I"$ROOT/include" -I"$ROOT/core/engine/cuda")
  if [ -n "$CUDNN_DIR" ]; then
    for d in "$CUDNN_DIR/../include" "$CUDNN_DIR/../../include"; do [ -f "$d/cudnn.h" ] && inc+=(-I"$d"); done
  fi
  # CMakeLists.txt's flags for the tunebench_cuda target (Release; TB_CUDA_ARCHITECTURES 90): keep in step
  local flags=${GPU_PROOF_NVCC_FLAGS:--O3 -DNDEBUG -D_POSIX_C_SOURCE=200809L -std=c++17 -fmad=false --generate-code=arch=compute_90,code=[compute_90,sm_90] -Xcompiler=-fvisibility=hidden}
  log "rebuild: $NVCC $flags -shared -Xcompiler=-fPIC --cudart shared ${inc[*]} ${srcs[*]#"$ROOT"/}" \
      "-L$linkdir -lcublas -lcublasLt -lcudnn"
  # shellcheck disable=SC2086
  timeout "$(limit 150 300)" "$NVCC" $flags -shared -Xcompiler=-fPIC --cudart shared "${inc[@]}" -o "$out" \
    "${srcs[@]}" -L"$linkdir" -lcublas -lcublasLt -lcudnn >"$W/rebuild.txt" 2>&1
  local rc=$?
  sed 's/^/    nvcc: /' "$W/rebuild.txt" | tail -40
  [ $rc = 0 ] && [ -f "$out" ] || { log "rebuild: nvcc $(rc_words $rc)"; return 1; }
  MODULE=$out
  log "rebuild: built $out"
}

# the CUDA sonames the module needs and where they are, appended to TB_LD
resolve_cuda_libs() {
  local so d needed
  needed=$(manifest_get module_needed "$BUNDLE_DIR/manifest.txt")
  if [ -f "$MODULE" ] && command -v readelf >/dev/null 2>&1; then
    needed=$(readelf -d "$MODULE" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  fi
  # cuDNN loads its engine libraries by name at run time, cuBLAS its Lt: their directories too
  needed=$(printf '%s\n' $needed libcudnn.so.9 libcublasLt.so.13 | awk 'NF && !seen[$0]++')
  CUDA_DIRS=()
  echo "-- for ${MODULE:-the module}" >>"$OUT/env.txt"
  for so in $needed; do
    is_cuda_lib "$so" || continue
    [ "$so" = libcuda.so.1 ] && continue
    if d=$(find_lib_dir "$so"); then
      case " ${CUDA_DIRS[*]} " in *" $d "*) ;; *) CUDA_DIRS+=("$d") ;; esac
      echo "  $so -> $d" >>"$OUT/env.txt"
    else
      echo "  $so -> NOT FOUND" >>"$OUT/env.txt"
      case "$so" in libcublasLt.so.13) ;; *) note "the CUDA library $so (needed by the module) is not on this machine" ;; esac
    fi
  done
  CUDNN_DIR=""
  d=$(find_lib_dir libcudnn.so.9) && CUDNN_DIR=$d
  # the driver's libcuda.so.1: the loader's cache, else the usual mounts
  if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
      [ -e "$d/libcuda.so.1" ] && { CUDA_DIRS+=("$d"); echo "  libcuda.so.1 -> $d (not in ldconfig's cache)" >>"$OUT/env.txt"; break; }
    done
  fi
  TB_LD=$BUNDLE_DIR/lib
  for d in "${CUDA_DIRS[@]}"; do TB_LD+=":$d"; done
}

# ldd of a file in tunebench's environment: problems only
ldd_problems() { tbenv ldd "$1" 2>&1 | grep -E 'not found|version .* not found|not a dynamic' ; }

write_summary() {
  local f=$OUT/summary.txt p
  {
    echo "tunebench GPU proof: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(elapsed) s of a $BUDGET s budget"
    echo
    echo "== machine"
    printf '%s\n' "${SUMMARY_ENV[@]}"
    echo
    echo "== phases"
    for p in "${PHASES[@]}"; do printf '  %-8s %-40s %4s s\n' "$p" "${PSTAT[$p]}" "${PSECS[$p]:-?}"; done
    echo
    echo "== devices (tunebench devices)"
    sed 's/^/  /' "$W/devices.txt" 2>/dev/null
    echo
    echo "== tests"
    printf '%s\n' "${SUMMARY_TESTS[@]}"
    echo
    echo "== throughput (img/s, training steps: forward + cross-entropy + backward + SGD momentum 0.9;" \
         "steps $STEPS after $WARMUP warm-up, 3x224x224, 10 classes)"
    bench_table
    echo
    echo "== one epoch (configs/study_squeezenet_imagenette.ini, SqueezeNet 1.1, batch 64, 224 px, $DEVICE)"
    printf '%s\n' "${SUMMARY_EPOCH[@]}"
    echo
    echo "== notes"
    if [ ${#NOTES[@]} -eq 0 ]; then echo "  none"; else printf '  - %s\n' "${NOTES[@]}"; fi
  } >"$f"
}

declare -A IPS=() LINES=()
bench_table() {
  local m b k
  printf '  %-14s %5s | %9s %9s %9s | %7s %7s | %9s %9s %9s | %7s %7s\n' model batch ours torch-det torch-bch \
    ours/det ours/bch "ours tf32" "det tf32" "bch tf32" ours/det ours/bch
  printf '  %-14s %5s | %29s | %15s | %29s | %15s\n' "" "" "FP32" "FP32 ratios" "TF32 allowed" "TF32 ratios"
  for m in $MODELS; do
    for b in $BATCHES; do
      local v=()
      for k in ours det bench ours_tf32 det_tf32 bench_tf32; do v+=("${IPS[$m|$b|$k]:--}"); done
      printf '  %-14s %5s | %9s %9s %9s | %7s %7s | %9s %9s %9s | %7s %7s\n' "$m" "$b" "${v[0]}" "${v[1]}" "${v[2]}" \
        "$(ratio "${v[0]}" "${v[1]}")" "$(ratio "${v[0]}" "${v[2]}")" "${v[3]}" "${v[4]}" "${v[5]}" \
        "$(ratio "${v[3]}" "${v[4]}")" "$(ratio "${v[3]}" "${v[5]}")"
    done
  done
  echo "  ours: tunebench bench --device $DEVICE (deterministic cuDNN algorithms by heuristics);" \
       "torch-det: cudnn.deterministic + use_deterministic_algorithms; torch-bch: cudnn.benchmark (autotuned)"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }

# one bench run: key, label, timeout, command...
bench_one() {
  local key=$1 label=$2 secs=$3
  shift 3
  if [ "$secs" -lt 10 ]; then
    log "  $label: skipped (out of time)"
    echo "$label: skipped (out of time)" >>"$OUT/bench.txt"
    return 1
  fi
  local out rc v
  out=$(timeout -k 5 "$secs" "$@" 2>"$W/bench-err.txt")
  rc=$?
  v=$(printf '%s\n' "$out" | grep -oE '[0-9.]+ img/s' | tail -1 | cut -d' ' -f1)
  {
    echo "# $label: $*"
    printf '%s\n' "$out"
    [ $rc = 0 ] || { echo "# $(rc_words $rc)"; tail -15 "$W/bench-err.txt"; }
    grep -E '^# torch' "$W/bench-err.txt"
  } >>"$OUT/bench.txt"
  if [ $rc = 0 ] && [ -n "$v" ]; then
    IPS[$key]=$v
    log "  $label: $v img/s"
    return 0
  fi
  log "  $label: $(rc_words $rc): $(tail -3 "$W/bench-err.txt" | tr '\n' ' ' | cut -c1-300)"
  return 1
}

bench_pass() { # tf32: "" or "--tf32"
  local tf=$1 sfx="" fails=0 m b ver reserve=$2
  [ -n "$tf" ] && sfx=_tf32
  for m in $MODELS; do
    ver=${m#squeezenet}
    for b in $BATCHES; do
      if [ "$OURS_BENCH" = yes ]; then
        bench_one "$m|$b|ours$sfx" "ours $m batch $b ${tf:-fp32}" "$(limit 90 "$reserve")" \
          "${TB_ENVCMD[@]}" "${TB_EXEC[@]}" "$TB" bench --model squeezenet --set "squeezenet.version=$ver" \
          --set squeezenet.dropout=0.5 --input 3x224x224 --classes 10 --batch "$b" --steps "$STEPS" \
          --warmup "$WARMUP" --device "$DEVICE" $tf || fails=$((fails + 1))
      fi
      if [ -n "$PY" ]; then
        local mode
        for mode in deterministic benchmark; do
          local k=det
          [ $mode = benchmark ] && k=bench
          bench_one "$m|$b|$k$sfx" "torch $m batch $b $mode ${tf:-fp32}" "$(limit 90 "$reserve")" \
            env PYTHONUNBUFFERED=1 "$PY" "$ROOT/bench/torch_gpu_bench.py" --model "$m" --batch "$b" \
            --input 3x224x224 --classes 10 --steps "$STEPS" --warmup "$WARMUP" --mode $mode --device "$DEVICE" \
            --verbose $tf || fails=$((fails + 1))
        done
      fi
    done
  done
  return $fails
}

cmd_run() {
  BUDGET=${GPU_PROOF_BUDGET:-540}
  DEADLINE=$((T0 + BUDGET))
  OUT=${OUT:-$ROOT/gpu-proof-out}
  mkdir -p "$OUT" || exit 1
  DEVICE=${GPU_PROOF_DEVICE:-cuda:0}
  STEPS=${GPU_PROOF_STEPS:-100}
  WARMUP=${GPU_PROOF_WARMUP:-10}
  MODELS=${GPU_PROOF_MODELS:-squeezenet1_1 squeezenet1_0}
  BATCHES=${GPU_PROOF_BATCHES:-64 128}
  W=/tmp/gpu-proof
  rm -rf "$W" && mkdir -p "$W/cache"
  : >"$OUT/env.txt"; : >"$OUT/tests.txt"; : >"$OUT/bench.txt"
  exec 3>&1 4>&2
  exec > >(tee -a "$OUT/log.txt") 2>&1
  local tee_pid=$!
  SUMMARY_ENV=() SUMMARY_TESTS=() SUMMARY_EPOCH=()
  trap 'log "interrupted: writing the summary"; write_summary; exit 130' INT TERM

  log "tunebench GPU proof in $ROOT, output in $OUT, budget $BUDGET s, device $DEVICE"

  # ---- setup -------------------------------------------------------------------------------------------
  phase_begin setup "unpack .gpu, find CUDA, check the module"
  local setup_status=ok
  MODULE="" TB_LD="" PY="" NVCC="" CUDNN_DIR="" TORCH_CUDNN="" TORCH_CUDNN_DIR=""
  CUDA_DIRS=() CANDIDATES=() TB_ENVCMD=()
  if [ ! -f "$BUNDLE_DIR/bundle.tar.xz" ] && [ ! -x "$BUNDLE_DIR/bin/tunebench" ]; then
    note "no .gpu bundle here: run 'scripts/gpu_proof.sh pack' on the build machine and carry .gpu"
    setup_status="FAILED (no .gpu)"
  elif [ -f "$BUNDLE_DIR/bundle.tar.xz" ]; then
    tar -C "$BUNDLE_DIR" -xJf "$BUNDLE_DIR/bundle.tar.xz" 2>"$W/untar.txt" ||
      python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
        "$BUNDLE_DIR/bundle.tar.xz" "$BUNDLE_DIR" ||
      { note "cannot unpack .gpu/bundle.tar.xz: $(cat "$W/untar.txt")"; setup_status="FAILED (unpack)"; }
  fi
  local man=$BUNDLE_DIR/manifest.txt
  TB=$BUNDLE_DIR/bin/tunebench
  {
    echo "== machine"
    uname -a
    (. /etc/os-release 2>/dev/null; echo "os: ${PRETTY_NAME:-unknown}")
    echo "glibc: $(getconf GNU_LIBC_VERSION 2>/dev/null)"
    echo "cpus: $(nproc)  memory: $(free -g 2>/dev/null | awk '/^Mem:/ { print $2 " GiB" }')"
    echo "repo root: $ROOT"
    echo
    echo "== bundle manifest (.gpu/manifest.txt, written by pack)"
    cat "$man" 2>/dev/null
    echo
    echo "== nvidia-smi"
    nvidia-smi 2>&1
  } >>"$OUT/env.txt"
  local drv smi_cuda gpu_name
  drv=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
  gpu_name=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)
  smi_cuda=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -1)

  PY=$(find_python) || { PY=""; note "no python3 with torch here: the PyTorch figures are skipped"; }
  local torch_info=""
  if [ -n "$PY" ]; then
    torch_info=$(timeout 60 "$PY" - 2>&1 <<'EOF'
import os, torch
try:
    import torchvision
    tv = torchvision.__version__
except Exception:
    tv = "not installed"
d = ""
try:
    import nvidia.cudnn
    p = list(getattr(nvidia.cudnn, "__path__", []))
    d = os.path.join(p[0], "lib") if p else ""
except Exception:
    pass
print("torch=%s" % torch.__version__)
print("torch_cuda=%s" % torch.version.cuda)
print("torch_cudnn=%s" % (torch.backends.cudnn.version() or ""))
print("torch_cudnn_dir=%s" % d)
print("torchvision=%s" % tv)
print("torch_gpu=%s" % (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"))
EOF
)
    printf '\n== python (%s)\n%s\n' "$PY" "$torch_info" >>"$OUT/env.txt"
    TORCH_CUDNN=$(printf '%s\n' "$torch_info" | sed -n 's/^torch_cudnn=//p')
    TORCH_CUDNN_DIR=$(printf '%s\n' "$torch_info" | sed -n 's/^torch_cudnn_dir=//p')
    case "$TORCH_CUDNN" in ''|*[!0-9]*) TORCH_CUDNN="" ;; esac
  fi
  NVCC=$(command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc 2>/dev/null | head -1)
  local dev_cuda="" dev_major="" built_major built_cudnn
  if [ -n "$NVCC" ]; then
    dev_cuda=$("$NVCC" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\), V\([0-9.]*\).*/\2/p' | head -1)
    printf '\n== nvcc (%s)\n%s\n' "$NVCC" "$("$NVCC" --version 2>&1)" >>"$OUT/env.txt"
  fi
  [ -n "$dev_cuda" ] || dev_cuda=$(printf '%s\n' "$torch_info" | sed -n 's/^torch_cuda=//p')
  dev_major=${dev_cuda%%.*}
  built_major=$(manifest_get cuda_major "$man")
  built_cudnn=$(manifest_get cudnn_version "$man")

  mapfile -t CANDIDATES < <(cuda_lib_candidates | awk '!seen[$0]++')
  MODULE=$BUNDLE_DIR/lib/libtunebench_cuda.so
  [ -f "$MODULE" ] || MODULE=""
  printf '\n== CUDA libraries for the module (first match in: %s)\n' "${CANDIDATES[*]}" >>"$OUT/env.txt"
  resolve_cuda_libs
  local dev_cudnn=unknown
  [ -n "$CUDNN_DIR" ] && dev_cudnn=$(cudnn_version_in "$CUDNN_DIR")

  # the carried loader when this glibc is older than the build machine's
  local host_glibc build_glibc why=""
  host_glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{ print $2 }')
  build_glibc=$(manifest_get build_glibc "$man")
  if { [ "${GPU_PROOF_FORCE_LOADER:-0}" = 1 ] ||
       { [ -n "$host_glibc" ] && [ -n "$build_glibc" ] && version_lt "$host_glibc" "$build_glibc"; }; } &&
     [ -x "$BUNDLE_DIR/glibc/$LOADER_NAME" ]; then
    TB_EXEC=("$BUNDLE_DIR/glibc/$LOADER_NAME" --library-path "$BUNDLE_DIR/glibc:$TB_LD")
    if [ "${GPU_PROOF_FORCE_LOADER:-0}" = 1 ]; then why="GPU_PROOF_FORCE_LOADER=1"
    else why="this machine's glibc $host_glibc is older than the build machine's $build_glibc"; fi
    note "$why: tunebench runs through the carried loader and glibc (.gpu/glibc)"
  fi

  # the module: carried, or rebuilt here
  local rebuild=${GPU_PROOF_REBUILD:-auto}
  why=""
  if [ "$rebuild" = 1 ]; then why="GPU_PROOF_REBUILD=1"
  elif [ "$rebuild" = auto ]; then
    if [ -z "$MODULE" ]; then why="the bundle has no libtunebench_cuda.so"
    elif [ -n "$dev_major" ] && [ -n "$built_major" ] && [ "$built_major" != none ] && [ "$dev_major" != "$built_major" ]; then
      why="CUDA MAJOR VERSION MISMATCH: the module was built with CUDA $built_major ($(manifest_get cuda_version "$man")), this machine has CUDA $dev_cuda"
    elif [ ${#TB_EXEC[@]} -eq 0 ] && ldd_problems "$MODULE" | grep -q .; then
      why="the carried module does not load here: $(ldd_problems "$MODULE" | tr -s ' \t\n' ' ' | cut -c1-300)"
    elif [ "$dev_cudnn" != unknown ] && [ "$built_cudnn" != unknown ] && [ -n "$built_cudnn" ] &&
         version_lt "$dev_cudnn" "$built_cudnn"; then
      why="this machine's cuDNN $dev_cudnn is older than the $built_cudnn the module was built against"
    fi
  fi
  local module_how="carried (built with CUDA $(manifest_get cuda_version "$man"), cuDNN $built_cudnn)"
  if [ -n "$why" ]; then
    note "rebuilding the CUDA module here: $why"
    if rebuild_module; then
      module_how="REBUILT here with $NVCC (CUDA $dev_cuda, cuDNN $dev_cudnn): $why"
      resolve_cuda_libs
    else
      module_how="rebuild FAILED ($why); $([ -n "$MODULE" ] && echo "trying the carried one" || echo "no module")"
      setup_status="FAILED (module rebuild)"
    fi
  fi
  [ -n "$MODULE" ] || MODULE=$BUNDLE_DIR/lib/libtunebench_cuda.so
  if [ ${#TB_EXEC[@]} -gt 0 ]; then TB_EXEC=("$BUNDLE_DIR/glibc/$LOADER_NAME" --library-path "$BUNDLE_DIR/glibc:$TB_LD"); fi
  TB_ENVCMD=(env LD_LIBRARY_PATH="$TB_LD${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" TUNEBENCH_CUDA_MODULE="$MODULE"
             TUNEBENCH_PLUGIN_PATH="$BUNDLE_DIR/plugins" XDG_CACHE_HOME="$W/cache")

  # a libstdc++/libgcc_s older than a CUDA library wants: use this machine's instead of the carried one
  local f lib moved=0
  for f in "$TB" "$MODULE"; do
    [ -f "$f" ] || continue
    for lib in libstdc++.so.6 libgcc_s.so.1; do
      if [ -f "$BUNDLE_DIR/lib/$lib" ] && ldd_problems "$f" | grep -qE "(GLIBCXX|CXXABI|GCC)_[0-9.]+' not found"; then
        mkdir -p "$BUNDLE_DIR/lib-unused" && mv "$BUNDLE_DIR/lib/$lib" "$BUNDLE_DIR/lib-unused/" && moved=1
      fi
    done
  done
  [ $moved = 1 ] && note "the carried libstdc++/libgcc_s were too old for this machine's CUDA libraries: using the system's"

  # the build tree's paths compiled into the test executables: point them at the bundle
  local pack_root bdir_abs
  pack_root=$(manifest_get pack_root "$man")
  bdir_abs=$(manifest_get build_dir_abs "$man")
  if [ -n "$pack_root" ] && [ "$pack_root" != "$ROOT" ] && [ ! -e "$pack_root" ]; then
    mkdir -p "$(dirname "$pack_root")" && ln -s "$ROOT" "$pack_root" &&
      log "linked $pack_root -> $ROOT (the tests' compiled-in source and fixture paths)"
  fi
  if [ -n "$bdir_abs" ] && { [ ! -e "$bdir_abs" ] || [ -f "$bdir_abs/.gpu-proof-links" ]; }; then
    if mkdir -p "$bdir_abs/tests" 2>/dev/null; then
      touch "$bdir_abs/.gpu-proof-links"
      ln -sfn "$BUNDLE_DIR/plugins" "$bdir_abs/plugins"
      ln -sfn "$BUNDLE_DIR/test-plugins" "$bdir_abs/test-plugins"
      ln -sfn "$MODULE" "$bdir_abs/libtunebench_cuda.so"
      for f in "$BUNDLE_DIR"/tests/*; do ln -sfn "$f" "$bdir_abs/tests/$(basename "$f")"; done
      rm -f "$bdir_abs/tunebench"
      if [ ${#TB_EXEC[@]} -gt 0 ]; then # the tests run tunebench: through the carried loader too
        printf '#!/bin/sh\nexec %q --library-path %q %q "$@"\n' "${TB_EXEC[0]}" "${TB_EXEC[2]}" "$TB" >"$bdir_abs/tunebench"
        chmod +x "$bdir_abs/tunebench"
      else
        ln -s "$TB" "$bdir_abs/tunebench"
      fi
      log "linked the build tree $bdir_abs -> .gpu (tests' compiled-in TB_TUNEBENCH_EXE, plugin dirs)"
    fi
  fi

  {
    echo
    echo "== tunebench's environment"
    echo "LD_LIBRARY_PATH=$TB_LD"
    echo "TUNEBENCH_CUDA_MODULE=$MODULE"
    echo "TUNEBENCH_PLUGIN_PATH=$BUNDLE_DIR/plugins"
    [ ${#TB_EXEC[@]} -gt 0 ] && echo "loader: ${TB_EXEC[*]}"
    for f in "$TB" "$MODULE"; do
      [ -f "$f" ] || continue
      echo "-- ldd ${f#"$ROOT"/}"
      tbenv ldd "$f" 2>&1
    done
  } >>"$OUT/env.txt"
  for f in "$TB" "$MODULE"; do
    [ -f "$f" ] && [ ${#TB_EXEC[@]} -eq 0 ] && ldd_problems "$f" | grep -q . && {
      note "unresolved libraries for ${f#"$ROOT"/}: $(ldd_problems "$f" | tr -s ' \t\n' ' ' | cut -c1-300)"
      setup_status="FAILED (libraries)"
    }
  done
  [ -f "$MODULE" ] || { note "no CUDA module to load"; setup_status="FAILED (no module)"; }

  SUMMARY_ENV=(
    "  GPU:             ${gpu_name:-none found by nvidia-smi}"
    "  driver:          ${drv:-?} (supports CUDA ${smi_cuda:-?})"
    "  toolkit here:    CUDA ${dev_cuda:-?}${NVCC:+ ($NVCC)}"
    "  cuDNN here:      $dev_cudnn${CUDNN_DIR:+ ($CUDNN_DIR)}"
    "  PyTorch:         $(printf '%s\n' "$torch_info" | sed -n 's/^torch=//p') (CUDA $(printf '%s\n' "$torch_info" | sed -n 's/^torch_cuda=//p'), cuDNN ${TORCH_CUDNN:-?}, torchvision $(printf '%s\n' "$torch_info" | sed -n 's/^torchvision=//p'))"
    "  module:          $module_how"
    "  bundle:          $(manifest_get tunebench_version "$man"); packed $(manifest_get packed_utc "$man") on $(manifest_get build_os "$man"), glibc $(manifest_get build_glibc "$man") (here $host_glibc)"
    "  CPU:             $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')"
  )
  printf '%s\n' "${SUMMARY_ENV[@]}"
  phase_end setup "$setup_status"

  # the epoch's images are generated in the background meanwhile (CPU only; done before the bench)
  local gen_pid=""
  if ! skipped epoch; then
    start_generation &
    gen_pid=$!
  fi

  # ---- devices -----------------------------------------------------------------------------------------
  phase_begin devices "nvidia-smi -L, tunebench devices"
  nvidia-smi -L 2>&1 | tee "$W/smi-L.txt"
  local rc st=ok
  timeout -k 5 "$(limit 30 30)" "${TB_ENVCMD[@]}" "${TB_EXEC[@]}" "$TB" devices >"$W/devices.txt" 2>&1
  rc=$?
  cat "$W/devices.txt"
  { echo; echo "== nvidia-smi -L"; cat "$W/smi-L.txt"; echo; echo "== tunebench devices (exit $rc)"; cat "$W/devices.txt"; } >>"$OUT/env.txt"
  [ $rc = 0 ] || st="FAILED: tunebench devices $(rc_words $rc)"
  if [ $rc = 0 ] && [[ "$DEVICE" == cuda* ]] && ! grep -q '^cuda:' "$W/devices.txt"; then st="FAILED: tunebench sees no GPU"; fi
  phase_end devices "$st"

  # ---- tests -------------------------------------------------------------------------------------------
  if skipped tests; then phase_begin tests "skipped"; phase_end tests "skipped (GPU_PROOF_SKIP)"
  else
    phase_begin tests "test_cuda, test_device"
    local t failed=0
    for t in test_cuda test_device; do
      local exe=$BUNDLE_DIR/tests/$t secs
      if [ ! -x "$exe" ]; then
        SUMMARY_TESTS+=("  $t: MISSING (not in the bundle: not built when packing)")
        failed=1; continue
      fi
      secs=$(limit "$([ $t = test_cuda ] && echo 150 || echo 60)" 240)
      if [ "$secs" -lt 10 ]; then SUMMARY_TESTS+=("  $t: not run (out of time)"); failed=1; continue; fi
      log "  $t (timeout $secs s)"
      local t0 t1
      t0=$(date +%s)
      (cd "$W" && timeout -k 5 "$secs" "${TB_ENVCMD[@]}" CK_DEFAULT_TIMEOUT=600 CK_VERBOSITY=normal \
         OMP_NUM_THREADS="$(nproc)" "${TB_EXEC[@]}" "$exe") >"$W/$t.txt" 2>&1
      rc=$?
      t1=$(date +%s)
      { echo "==== $t: $(rc_words $rc) in $((t1 - t0)) s"; cat "$W/$t.txt"; echo; } >>"$OUT/tests.txt"
      local checks
      checks=$(grep -E '^[0-9]+%: Checks:' "$W/$t.txt" | tail -1)
      SUMMARY_TESTS+=("  $t: $(rc_words $rc) in $((t1 - t0)) s${checks:+: $checks}")
      grep -E ':[EF]:' "$W/$t.txt" | head -20 | sed 's/^/      /' >"$W/$t-fails.txt"
      while IFS= read -r l; do SUMMARY_TESTS+=("$l"); done <"$W/$t-fails.txt"
      tail -5 "$W/$t.txt"
      [ $rc = 0 ] || failed=1
    done
    phase_end tests "$([ $failed = 0 ] && echo ok || echo "FAILED (see tests.txt)")"
  fi

  # the images must be done before anything is timed
  if [ -n "$gen_pid" ]; then
    local w_end=$(($(date +%s) + $(limit 120 200)))
    while kill -0 "$gen_pid" 2>/dev/null && [ "$(date +%s)" -lt "$w_end" ]; do sleep 1; done
    if kill -0 "$gen_pid" 2>/dev/null; then
      local gp
      kill "$gen_pid" 2>/dev/null
      for gp in $(cat "$W/gen.pids" 2>/dev/null); do kill "$gp" 2>/dev/null; done
      note "generating the epoch's images took too long; stopped"
    fi
    wait "$gen_pid" 2>/dev/null
    GEN_RC=$(cat "$W/gen.rc" 2>/dev/null || echo 1)
    log "image generation: $(tail -1 "$W/gen.log" 2>/dev/null)"
  fi

  # ---- bench -------------------------------------------------------------------------------------------
  OURS_BENCH=no
  if skipped bench; then phase_begin bench "skipped"; phase_end bench "skipped (GPU_PROOF_SKIP)"
  else
    phase_begin bench "SqueezeNet $MODELS, batch $BATCHES, FP32: ours, torch deterministic, torch benchmark"
    if "${TB_ENVCMD[@]}" "${TB_EXEC[@]}" "$TB" bench --help 2>&1 | grep -q -- '--device'; then
      OURS_BENCH=yes
    else
      note "tunebench bench has no --device in this build: only PyTorch's figures"
    fi
    bench_pass "" 160
    local fails=$?
    { echo; echo "== table (FP32)"; bench_table; } >>"$OUT/bench.txt"
    bench_table
    phase_end bench "$([ $fails = 0 ] && [ $OURS_BENCH = yes ] && echo ok || echo "FAILED ($fails runs failed; ours: $OURS_BENCH)")"
  fi

  # ---- epoch -------------------------------------------------------------------------------------------
  if skipped epoch; then phase_begin epoch "skipped"; phase_end epoch "skipped (GPU_PROOF_SKIP)"
  else
    phase_begin epoch "one epoch of SqueezeNet 1.1 on a generated Imagenette-sized tree"
    run_epoch
    phase_end epoch "$EPOCH_STATUS"
  fi

  # ---- tf32 (if time is left) --------------------------------------------------------------------------
  local want_tf32=${GPU_PROOF_TF32:-auto}
  if skipped tf32 || skipped bench || [ "$want_tf32" = 0 ]; then :
  elif [ "$want_tf32" = 1 ] || [ "$(remaining)" -gt 150 ]; then
    phase_begin tf32 "the bench with TF32 allowed (ours --tf32; torch allow_tf32)"
    bench_pass --tf32 15
    local fails=$?
    { echo; echo "== table (FP32 and TF32)"; bench_table; } >>"$OUT/bench.txt"
    phase_end tf32 "$([ $fails = 0 ] && echo ok || echo "FAILED or cut short ($fails runs)")"
  else
    note "TF32 pair not run: $(remaining) s left"
  fi

  # ---- summary -----------------------------------------------------------------------------------------
  write_summary
  log "summary: $OUT/summary.txt"
  echo
  cat "$OUT/summary.txt"
  local p all=0
  for p in "${PHASES[@]}"; do case "${PSTAT[$p]}" in ok|skipped*) ;; *) all=1 ;; esac; done
  exec 1>&3 2>&4
  local i # the log's tee ends when nothing writes to it any more; never wait long for it
  for i in $(seq 50); do kill -0 "$tee_pid" 2>/dev/null || break; sleep 0.1; done
  return $all
}

# the Imagenette-sized tree: TRAIN + VAL images per class, 10 classes, in $W/imagenette, generated by
# several scripts/make_imagenette_tree.py at once (it is single-threaded), then merged
start_generation() {
  local per_train=${GPU_PROOF_TRAIN_PER_CLASS:-1000} per_val=${GPU_PROOF_VAL_PER_CLASS:-400}
  local size=${GPU_PROOF_IMAGE_SIZE:-320x480} procs i pids=() rc=0 gpy=""
  procs=$(nproc); [ "$procs" -gt 16 ] && procs=16
  for p in "$PY" python3 /usr/bin/python3; do
    [ -n "$p" ] && "$p" -c 'import PIL' >/dev/null 2>&1 && { gpy=$p; break; }
  done
  {
    if [ -z "$gpy" ]; then echo "no python3 with Pillow"; echo 1 >"$W/gen.rc"; exit 1; fi
    echo "generating $((10 * (per_train + per_val))) JPEGs ($size) with $procs processes of $gpy"
    rm -rf "$W/gen" "$W/imagenette"
    mkdir -p "$W/gen"
    local t0=$SECONDS
    for ((i = 0; i < procs; i++)); do
      local tr=$((per_train * (i + 1) / procs - per_train * i / procs))
      local va=$((per_val * (i + 1) / procs - per_val * i / procs))
      nice -n 10 "$gpy" "$ROOT/scripts/make_imagenette_tree.py" "$W/gen/p$i" --train "$tr" --val "$va" \
        --size "$size" --seed "$((i + 1))" >"$W/gen/p$i.log" 2>&1 &
      pids+=($!)
      echo $! >>"$W/gen.pids"
    done
    for i in "${pids[@]}"; do wait "$i" || rc=1; done
    if [ $rc != 0 ]; then cat "$W"/gen/p*.log | tail -5; echo 1 >"$W/gen.rc"; exit 1; fi
    "$gpy" - "$W/gen" "$W/imagenette" "$procs" <<'EOF' || { echo 1 >"$W/gen.rc"; exit 1; }
import os, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
count = 0
for i in range(n):
    for split in ("train", "val"):
        sd = os.path.join(src, "p%d" % i, split)
        if not os.path.isdir(sd):
            continue
        for wnid in sorted(os.listdir(sd)):
            od = os.path.join(dst, split, wnid)
            os.makedirs(od, exist_ok=True)
            for f in os.listdir(os.path.join(sd, wnid)):
                os.rename(os.path.join(sd, wnid, f), os.path.join(od, "p%02d_%s" % (i, f)))
                count += 1
print("merged %d images into %s" % (count, dst))
EOF
    echo "generated in $((SECONDS - t0)) s, $(du -sh "$W/imagenette" | cut -f1)"
    echo 0 >"$W/gen.rc"
  } >"$W/gen.log" 2>&1
}

# util_stats FROM TO FILE: mean and median utilisation of the samples stamped in [FROM, TO]
util_stats() {
  awk -v lo="$1" -v hi="$2" '
    !/^#/ { t = $1; u = $2; sub(/,$/, "", u); m = $3
            if (t >= lo + 0 && t <= hi + 0 && u ~ /^[0-9.]+$/) { n++; s += u; v[n] = u + 0; if (m + 0 > mm) mm = m + 0 } }
    END {
      if (n == 0) { print "no samples"; exit }
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
      med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
      printf "mean %.1f%%, median %.1f%% over %d samples (every 0.5 s); memory used at most %d MiB", s / n, med, n, mm
    }' "$3"
}

run_epoch() {
  EPOCH_STATUS=ok
  SUMMARY_EPOCH=()
  if [ "${GEN_RC:-1}" != 0 ]; then
    EPOCH_STATUS="FAILED (no images: $(tail -1 "$W/gen.log" 2>/dev/null))"
    SUMMARY_EPOCH+=("  not run: the image tree could not be generated ($(tail -2 "$W/gen.log" 2>/dev/null | tr '\n' ' '))")
    return
  fi
  SUMMARY_EPOCH+=("  images: $(grep -E '^(generat|merged)' "$W/gen.log" | tr '\n' ';' | sed 's/;$//; s/;/; /g')")
  local secs
  secs=$(limit 240 20)
  if [ "$secs" -lt 30 ]; then EPOCH_STATUS="skipped (out of time)"; SUMMARY_EPOCH+=("  not run: out of time"); return; fi
  local smi_pid=""
  echo "# unix_time utilization.gpu[%], memory.used[MiB]" >"$OUT/gpu-util.csv"
  if [[ "$DEVICE" == cuda* ]] && command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 \
      > >(stamp >>"$OUT/gpu-util.csv") 2>/dev/null &
    smi_pid=$!
  fi
  local cfg=$ROOT/configs/study_squeezenet_imagenette.ini
  local args=(train "$cfg" --set "imagenette.path=$W/imagenette" --set imagenette.resolution=224
              --set imagenette.cache=false --set train.epochs=1 --set train.batch_size=64
              --set "train.device=$DEVICE" --out "$W/epoch-run.h5")
  # shellcheck disable=SC2206
  [ -n "${GPU_PROOF_EPOCH_EXTRA:-}" ] && args+=($GPU_PROOF_EPOCH_EXTRA)
  log "  tunebench ${args[*]} (timeout $secs s)"
  local t_start t_end rc buf=()
  command -v stdbuf >/dev/null && buf=(stdbuf -oL -eL)
  t_start=$(now)
  # all of it to epoch.txt, the progress to the log
  timeout -k 5 "$secs" "${TB_ENVCMD[@]}" "${buf[@]}" "${TB_EXEC[@]}" "$TB" "${args[@]}" 2>&1 | stamp |
    tee "$OUT/epoch.txt" | grep --line-buffered -E '^[0-9.]+ (epoch |data: |training: |tunebench|test: |run file|\[)|rror|arning'
  rc=${PIPESTATUS[0]}
  t_end=$(now)
  sleep 1
  [ -n "$smi_pid" ] && kill "$smi_pid" 2>/dev/null
  wait "$smi_pid" 2>/dev/null
  local wall line e_s e_ips t_e t_train
  wall=$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.1f", b - a }')
  line=$(grep -E 'epoch 1/1: ' "$OUT/epoch.txt" | tail -1)
  e_s=$(printf '%s\n' "$line" | sed -nE 's/.*, ([0-9.]+) s, ([0-9.]+) img\/s.*/\1/p')
  e_ips=$(printf '%s\n' "$line" | sed -nE 's/.*, ([0-9.]+) s, ([0-9.]+) img\/s.*/\2/p')
  t_e=$(printf '%s\n' "$line" | awk '{ print $1 }')
  t_train=$(grep -m1 -E '^[0-9.]+ training: ' "$OUT/epoch.txt" | awk '{ print $1 }')
  SUMMARY_EPOCH+=("  command: tunebench ${args[*]}")
  SUMMARY_EPOCH+=("  exit: $(rc_words "$rc"); wall time of the whole command: $wall s")
  local l
  for l in "data: " "training: "; do
    l=$(grep -m1 -E "^[0-9.]+ $l" "$OUT/epoch.txt" | cut -d' ' -f2-)
    [ -n "$l" ] && SUMMARY_EPOCH+=("  $l")
  done
  [ -n "$t_train" ] && SUMMARY_EPOCH+=("  start-up until training began (configure; read, decode and resize every JPEG): $(awk -v a="$t_start" -v b="$t_train" 'BEGIN { printf "%.1f", b - a }') s")
  if [ -n "$e_s" ]; then
    SUMMARY_EPOCH+=("  epoch: $e_s s, $e_ips img/s (the run's own line: $(printf '%s\n' "$line" | cut -d' ' -f2-))")
    SUMMARY_EPOCH+=("  after the epoch (test set, run file) until exit: $(awk -v a="$t_e" -v b="$t_end" 'BEGIN { printf "%.1f", b - a }') s")
    if [ -n "$smi_pid" ]; then
      SUMMARY_EPOCH+=("  GPU utilisation during the epoch: $(util_stats "$(awk -v a="$t_e" -v s="$e_s" \
        'BEGIN { printf "%.3f", a - s }')" "$t_e" "$OUT/gpu-util.csv")")
    fi
  fi
  [ -n "$smi_pid" ] && SUMMARY_EPOCH+=("  GPU utilisation over the whole command: $(util_stats "$t_start" "$t_end" "$OUT/gpu-util.csv")")
  if [ -z "$e_s" ]; then
    SUMMARY_EPOCH+=("  no epoch line in the output; its last lines:")
    while IFS= read -r l; do SUMMARY_EPOCH+=("    $l"); done < <(tail -8 "$OUT/epoch.txt" | cut -d' ' -f2-)
  fi
  # the run file's record of the GPU: versions, math, peak memory, the cuDNN algorithm per convolution shape
  if [ -n "$PY" ] && [ -f "$W/epoch-run.h5" ]; then
    timeout 60 "$PY" - "$W/epoch-run.h5" >"$W/backend-details.txt" 2>&1 <<'EOF2'
import sys
try:
    import h5py
except ImportError:
    sys.exit("no h5py for this python: the run file's /environment is not read")
with h5py.File(sys.argv[1], "r") as f:
    a = f["environment"].attrs
    for k in ("device", "backend", "backend_details"):
        v = a.get(k, "")
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        print("%s: %s" % (k, str(v).rstrip()))
EOF2
    { echo; echo "== the run file's /environment (device, backend, backend_details)"; cat "$W/backend-details.txt"; } >>"$OUT/epoch.txt"
    SUMMARY_EPOCH+=("  the run file's /environment:")
    while IFS= read -r l; do SUMMARY_EPOCH+=("    $l"); done < <(head -45 "$W/backend-details.txt")
  fi
  if [ "$rc" != 0 ]; then EPOCH_STATUS="$(rc_words "$rc") (see epoch.txt)"
  elif [ -z "$e_s" ]; then EPOCH_STATUS="FAILED (no epoch line; see epoch.txt)"; fi
}

case "${1:-}" in
  pack) shift; cmd_pack "$@" ;;
  check) cmd_check ;;
  run) cmd_run ;;
  -h|--help|help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) echo "usage: scripts/gpu_proof.sh pack|check|run (see --help)" >&2; exit 2 ;;
esac
