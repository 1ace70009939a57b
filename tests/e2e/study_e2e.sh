#!/usr/bin/env bash
# study_e2e.sh SOURCE_DIR TUNEBENCH ARTIFACTS: ctest's test_http_e2e, the http
# front end in a real browser (study_e2e.mjs: Debian's chromium driven by
# playwright-core). A missing node, playwright-core or chromium FAILS with the
# reason (scripts/deps.sh installs all three); nothing is skipped.
set -euo pipefail
src=$1 exe=$2 artifacts=$3
fail() { echo "test_http_e2e: FAIL: $*" >&2; exit 1; }
command -v node >/dev/null || fail "node is not installed (scripts/deps.sh installs nodejs)"
[ -f "$src/node_modules/playwright-core/package.json" ] ||
  fail "$src/node_modules/playwright-core is missing: run scripts/deps.sh (npm ci)"
chromium=${TB_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || fail "no browser at $chromium (scripts/deps.sh installs Debian's chromium)"
[ -f "$(dirname "$exe")/plugins/http.so" ] || fail "$(dirname "$exe")/plugins/http.so is not built"
exec node "$src/tests/e2e/study_e2e.mjs" --tunebench "$exe" --artifacts "$artifacts" --chromium "$chromium"
