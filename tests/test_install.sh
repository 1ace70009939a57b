#!/usr/bin/env bash
# test_install.sh: an installed tunebench works from its own prefix, with the
# build tree out of view (issue 18, item 1).
#
#   tests/test_install.sh BUILD_DIR SOURCE_DIR [CMAKE] [CC]
#
# Installs BUILD_DIR into a temporary prefix (cmake --install --prefix), then
# runs PREFIX/bin/tunebench from another working directory with a bare
# environment (no TUNEBENCH_PLUGIN_PATH, HOME in the temporary folder):
#   - `plugins` finds the shipped plugins, every listed file and every
#     searched folder under the prefix (never the build tree), exit 0;
#   - the CUDA module, where the build made one, is looked for in the prefix;
#   - docs/examples/model_plugin and task_plugin built against the install and
#     installed into it with their own `cmake --install` (tunebench_add_plugin,
#     pkg-config's pluginsdir) are found by the installed tunebench, which
#     trains a small run with them;
#   - with its plugins folder emptied, `plugins` exits 1 and says so; a file
#     that fails to load makes it exit 1 too.
# Registered as the ctest test_install (tests/CMakeLists.txt). Last line:
# "N passed, N failed".
set -u

if [ $# -lt 2 ]; then
    echo "usage: $0 BUILD_DIR SOURCE_DIR [CMAKE] [CC]" >&2
    exit 2
fi
build=$(cd "$1" && pwd -P)
src=$(cd "$2" && pwd -P)
cmake=${3:-cmake}
cc=${4:-cc}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tunebench-install.XXXXXX")
tmp=$(cd "$tmp" && pwd -P)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
work=$tmp/work
mkdir -p "$work" "$tmp/home"
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() {
    failed=$((failed + 1))
    echo "FAIL $1"
    [ -f "${2:-/nonexistent}" ] && tail -n 30 "$2" | sed 's/^/    /'
}
# check NAME COMMAND...: runs COMMAND, its output in $tmp/NAME.log
check() {
    local name=$1
    shift
    if "$@" >"$tmp/$name.log" 2>&1; then ok "$name"; else bad "$name: $*" "$tmp/$name.log"; fi
}
# tb LOG ARGS...: the installed tunebench from $work, in a bare environment
# that names nothing of the build tree; output in $tmp/LOG.log, status in $rc
tb() {
    local log=$1
    shift
    (cd "$work" && env -i PATH=/usr/bin:/bin HOME="$tmp/home" OMP_NUM_THREADS=2 "$prefix/bin/tunebench" "$@") \
        >"$tmp/$log.log" 2>&1
    rc=$?
}

# 1. install
check install "$cmake" --install "$build" --prefix "$prefix"
check installed_exe test -x "$prefix/bin/tunebench"

# 2. the installed tunebench lists the prefix's plugins, and nothing else
tb plugins plugins
if [ "$rc" -eq 0 ]; then ok plugins_exit_0; else bad "plugins_exit_0: exit $rc" "$tmp/plugins.log"; fi
for name in cnn squeezenet fashion_mnist hdf5 cli; do
    if grep -q "^      file: $prefix/.*/tunebench/plugins/$name.so$" "$tmp/plugins.log"; then ok "listed_$name"
    else bad "listed_$name: $name.so of the prefix not listed" "$tmp/plugins.log"; fi
done
files_in_prefix() {
    local n_files n_in
    n_files=$(grep -c '^      file: ' "$tmp/plugins.log")
    n_in=$(grep -c "^      file: $prefix/" "$tmp/plugins.log")
    [ "$n_files" -gt 0 ] && [ "$n_files" -eq "$n_in" ]
}
check files_all_in_prefix files_in_prefix
# the searched folders, in order: the one next to the executable, nothing of the build tree
check searched_next_to_exe sh -c "sed -n '/^searched, in order:/,\$p' '$tmp/plugins.log' |
    grep -q '^  next to the executable  *$prefix/lib[^ ]*/tunebench/plugins\$'"
no_build_tree() { ! grep -F "$build" "$tmp/plugins.log"; }
check never_the_build_tree no_build_tree
check no_problems sh -c "! grep -q '^problems:' '$tmp/plugins.log'"

# 3. the CUDA module, where there is one, is looked for in the prefix
module=$(find "$prefix" -name libtunebench_cuda.so -print -quit)
if [ -n "$module" ]; then
    tb devices devices
    check cuda_module_found sh -c "! grep -q 'was not built' '$tmp/devices.log'"
    # without it, the message names where it was looked for: the prefix first
    moved=$tmp/cuda_module_moved
    mv "$module" "$moved"
    tb devices_no_module devices
    mv "$moved" "$module"
    check cuda_module_relative grep -q "looked for $prefix/lib[^ ]*/tunebench/libtunebench_cuda.so" "$tmp/devices_no_module.log"
else
    echo "skip cuda_module: this build has no libtunebench_cuda.so"
fi

# 4. the out-of-tree examples, built against the install and installed into it
check model_configure "$cmake" -S "$src/docs/examples/model_plugin" -B "$tmp/model" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release
check model_build "$cmake" --build "$tmp/model"
check model_install "$cmake" --install "$tmp/model"
pcdir=$(dirname "$(find "$prefix" -name tunebench.pc -print -quit)")
check task_configure env PKG_CONFIG_PATH="$pcdir" "$cmake" -S "$src/docs/examples/task_plugin" -B "$tmp/task" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release
check task_build "$cmake" --build "$tmp/task"
check task_install "$cmake" --install "$tmp/task"
tb plugins_examples plugins
if [ "$rc" -eq 0 ]; then ok plugins_examples_exit_0; else bad "plugins_examples_exit_0: exit $rc" "$tmp/plugins_examples.log"; fi
for name in tiny_mlp xor_blobs; do
    if grep -q "^      file: $prefix/.*/tunebench/plugins/$name.so$" "$tmp/plugins_examples.log"; then ok "found_$name"
    else bad "found_$name: the installed $name.so is not found" "$tmp/plugins_examples.log"; fi
done

# 5. a small run with the installed tunebench and the installed examples
cat >"$work/tiny.ini" <<'EOF'
[model]
name = tiny_mlp
[tiny_mlp]
hidden = 16
[task]
name = xor_blobs
[xor_blobs]
count = 200
[train]
epochs = 1
batch_size = 32
loss = cross_entropy
optimizer = adam
lr = 0.01
seed = 1
[output]
run = runs/tiny.h5
EOF
tb train train tiny.ini
if [ "$rc" -eq 0 ] && [ -s "$work/runs/tiny.h5" ]; then ok train_installed
else bad "train_installed: exit $rc" "$tmp/train.log"; fi

# 6. exit 1 when a file fails to load, and when nothing is found at all
plugdir=$(dirname "$(find "$prefix" -name cnn.so -print -quit)")
echo "not a plugin" >"$plugdir/broken.so"
tb plugins_broken plugins
if [ "$rc" -eq 1 ] && grep -q "broken.so: " "$tmp/plugins_broken.log"; then ok plugins_broken_exit_1
else bad "plugins_broken_exit_1: exit $rc" "$tmp/plugins_broken.log"; fi
rm -f "$plugdir/broken.so"
mv "$plugdir" "$tmp/plugins_moved"
tb plugins_none plugins
if [ "$rc" -eq 1 ] && grep -q "no plugin found" "$tmp/plugins_none.log" &&
    grep -q "^  next to the executable  *$prefix/.*/tunebench/plugins (not found)$" "$tmp/plugins_none.log"; then
    ok plugins_none_exit_1
else
    bad "plugins_none_exit_1: exit $rc" "$tmp/plugins_none.log"
fi
# TUNEBENCH_PLUGIN_PATH comes before the folder next to the executable
(cd "$work" && env -i PATH=/usr/bin:/bin HOME="$tmp/home" TUNEBENCH_PLUGIN_PATH="$tmp/plugins_moved" \
    "$prefix/bin/tunebench" plugins) >"$tmp/plugins_env.log" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && grep -q "^      file: $tmp/plugins_moved/cnn.so$" "$tmp/plugins_env.log"; then ok plugins_env
else bad "plugins_env: exit $rc" "$tmp/plugins_env.log"; fi
mv "$tmp/plugins_moved" "$plugdir"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
