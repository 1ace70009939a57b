#!/usr/bin/env bash
# test_layering.sh: the include rule (cmake/check_layers.cmake) holds for the
# tree, and fails when an upward or unnamed include is planted in a copy.
#   tests/test_layering.sh SOURCE_DIR [CMAKE]
# Last line: "N passed, N failed".
set -u
src=$(cd "$1" && pwd)
cmake=${2:-cmake}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tunebench-layers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; sed 's/^/    /' "$tmp/out.log" | tail -n 20; }

# expect NAME pass|fail [PATTERN]: runs the checker on $tmp/tree
expect() {
    local name=$1 want=$2 pattern=${3:-}
    if "$cmake" -DTB_ROOT="$tmp/tree" -P "$src/cmake/check_layers.cmake" >"$tmp/out.log" 2>&1; then got=pass; else got=fail; fi
    if [ "$got" != "$want" ]; then bad "$name: the checker said $got, expected $want"; return; fi
    if [ -n "$pattern" ] && ! grep -q -- "$pattern" "$tmp/out.log"; then bad "$name: no \"$pattern\" in its message"; return; fi
    ok "$name"
}
fresh() { rm -rf "$tmp/tree"; mkdir -p "$tmp/tree"; cp -a "$src/core" "$src/include" "$tmp/tree/"; }

fresh
expect "the tree as it is" pass "all pointing down"

fresh
echo '#include "study/study.h"' >>"$tmp/tree/core/base/common.c"
expect "base includes study" fail 'core/base/common.c: #include "study/study.h" points up'

fresh
echo '#include "run/run.h"' >>"$tmp/tree/core/store/archive.h"
expect "store includes run" fail "points up: store"

fresh
echo '#include "../study/hparam_space.h"' >>"$tmp/tree/core/engine/net.c"
expect "a relative path" fail "name the wing instead"

fresh
echo '#include "hparam_space.h"' >>"$tmp/tree/core/engine/net.c"
expect "a bare name of another wing" fail "a bare name must be in the same folder"

fresh
echo '#include "base/common.h"' >>"$tmp/tree/include/tunebench/tunebench_plugin.h"
expect "the public ABI includes the core" fail "the public headers include nothing of the core"

fresh
echo 'int x;' >"$tmp/tree/core/loose.c"
expect "a file outside the wings" fail "put it in a wing"

fresh
echo '#include "engine/net.h"' >>"$tmp/tree/core/cmd/main.c"
expect "cmd includes engine (down)" pass

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
