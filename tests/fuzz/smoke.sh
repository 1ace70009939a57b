#!/usr/bin/env bash
# tests/fuzz/smoke.sh [SECONDS]: CI's short fuzzing run. Builds the libFuzzer
# targets in build-fuzz/ (clang, -DTB_FUZZ=ON) and runs each for SECONDS
# (default 10) on its seed corpus and its regression inputs (inputs that once
# crashed; they are replayed first). Fails with the reason when clang or
# libFuzzer is missing (scripts/deps.sh installs both). Prints one closing
# line: "N passed, N failed". New inputs go to a temporary folder, never into
# tests/fuzz/corpus/; a crash is saved as build-fuzz/smoke-artifacts/<target>-*.
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
cc=${TB_FUZZ_CC:-clang}
targets=(config study_journal run_journal hdf5_task)

die() {
  echo "fuzz smoke: $*" >&2
  echo "0 passed, ${#targets[@]} failed"
  exit 1
}
command -v "$cc" >/dev/null || die "$cc not found (Debian: apt-get install clang libclang-rt-14-dev libomp-dev, or scripts/deps.sh)"
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }\n' > "$probe/p.c"
"$cc" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" 2> "$probe/err" ||
  die "$cc cannot link libFuzzer (libclang_rt.fuzzer; Debian 12: apt-get install libclang-rt-14-dev): $(head -n 3 "$probe/err")"

t0=$(date +%s)
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER="$cc" -DTB_FUZZ=ON -DBUILD_TESTING=OFF -DTB_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$probe/cmake.log" 2>&1 || { cat "$probe/cmake.log"; die "cmake failed"; }
cmake --build build-fuzz -j"$(nproc)" > "$probe/build.log" 2>&1 || { tail -n 40 "$probe/build.log"; die "build failed"; }
echo "fuzz smoke: built in $(( $(date +%s) - t0 )) s"

mkdir -p build-fuzz/smoke-artifacts
pass=0 fail=0
for t in "${targets[@]}"; do
  work="$probe/$t"
  mkdir -p "$work"
  dirs=("$work" "tests/fuzz/corpus/$t")
  [ -d "tests/fuzz/regressions/$t" ] && dirs+=("tests/fuzz/regressions/$t")
  extra=()
  [ -f "tests/fuzz/$t.dict" ] && extra+=("-dict=tests/fuzz/$t.dict")
  if TMPDIR="$probe" "build-fuzz/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="build-fuzz/smoke-artifacts/$t-" "${extra[@]}" "${dirs[@]}" \
       > "$probe/$t.log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$probe/$t.log")
    echo "fuzz smoke: fuzz_$t passed (${runs:-?} inputs in ${secs} s)"
    pass=$((pass + 1))
  else
    echo "fuzz smoke: fuzz_$t FAILED; the end of its log:"
    grep -v '^#' "$probe/$t.log" | tail -n 40
    fail=$((fail + 1))
  fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
