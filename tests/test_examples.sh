#!/usr/bin/env bash
# test_examples.sh: the plugin examples of docs/examples build out of tree
# against an INSTALLED tunebench and load.
#
#   tests/test_examples.sh BUILD_DIR SOURCE_DIR [CMAKE] [CC]
#
# Installs BUILD_DIR into a temporary prefix (cmake --install --prefix), builds
# docs/examples/model_plugin with the CMake package (find_package(tunebench))
# and docs/examples/task_plugin with pkg-config, also with a bare cc line, then
# runs BUILD_DIR/tunebench plugins --plugin-path on the results and checks
# the plugins are listed with no problems. docs/examples/lenet5 (CMake
# package) is built too, trains a short run, and its checkpoint's
# state_dict keys must equal a torch.nn.Sequential LeNet-5's. Registered as the ctest
# test_examples (tests/plugins/CMakeLists.txt). Last line: "N passed, N failed".
set -u

if [ $# -lt 2 ]; then
    echo "usage: $0 BUILD_DIR SOURCE_DIR [CMAKE] [CC]" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
cmake=${3:-cmake}
cc=${4:-cc}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tunebench-examples.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
passed=0
failed=0

# check NAME COMMAND...: runs COMMAND, its output in $tmp/NAME.log
check() {
    local name=$1
    shift
    if "$@" >"$tmp/$name.log" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name: $*"
        tail -n 30 "$tmp/$name.log" | sed 's/^/    /'
    fi
}

# 1. install the build
check install "$cmake" --install "$build" --prefix "$prefix"
check header test -f "$prefix/include/tunebench/tunebench_plugin.h"
config=$(find "$prefix" -name tunebenchConfig.cmake -print -quit)
pc=$(find "$prefix" -name tunebench.pc -print -quit)
check cmake_package test -n "$config"
check pkg_config_file test -n "$pc"

# 2. the model example with the CMake package
check model_configure "$cmake" -S "$src/docs/examples/model_plugin" -B "$tmp/model" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS=-Werror -DCMAKE_BUILD_TYPE=Release
check model_build "$cmake" --build "$tmp/model"
check model_file test -f "$tmp/model/tiny_mlp.so"

# 2b. LeNet-5, written with the PyTorch-style builder, with the CMake package
check lenet5_configure "$cmake" -S "$src/docs/examples/lenet5" -B "$tmp/lenet5" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS=-Werror -DCMAKE_BUILD_TYPE=Release
check lenet5_build "$cmake" --build "$tmp/lenet5"
check lenet5_file test -f "$tmp/lenet5/lenet5.so"

# 3. the task example with pkg-config (from CMake, then from a bare cc line)
pcdir=$(dirname "${pc:-/nonexistent/x}")
check task_configure env PKG_CONFIG_PATH="$pcdir" "$cmake" -S "$src/docs/examples/task_plugin" -B "$tmp/task" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS=-Werror -DCMAKE_BUILD_TYPE=Release
check task_build "$cmake" --build "$tmp/task"
check task_file test -f "$tmp/task/xor_blobs.so"
if command -v pkg-config >/dev/null 2>&1; then
    mkdir -p "$tmp/plain"
    plain_build() {
        local cflags
        cflags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags tunebench) || return 1
        # shellcheck disable=SC2086
        "$cc" -shared -fPIC -fvisibility=hidden -Wall -Wextra -Werror $cflags \
            "$src/docs/examples/task_plugin/xor_blobs.c" -o "$tmp/plain/xor_blobs.so" -Wl,--no-undefined
    }
    check task_bare_cc plain_build
    plugins_dir_ok() { # pluginsdir resolves inside the prefix it was installed to
        local dir
        dir=$(PKG_CONFIG_PATH="$pcdir" pkg-config --variable=pluginsdir tunebench) || return 1
        case $(readlink -m "$dir") in
            "$(readlink -m "$prefix")"/*/tunebench/plugins) return 0 ;;
            *) echo "pluginsdir $dir is not under $prefix"; return 1 ;;
        esac
    }
    check pkg_config_pluginsdir plugins_dir_ok
fi

# 4. load them with the built tunebench
list=$tmp/plugins.txt
check list "$build/tunebench" plugins --plugin-path "$tmp/model:$tmp/task:$tmp/lenet5"
cp "$tmp/list.log" "$list" 2>/dev/null || : >"$list"
listed() { grep -q "^  $1  ($2 plugin, version 1.0.0, licence MIT)" "$list" && grep -q "file: $3" "$list"; }
check listed_tiny_mlp listed tiny_mlp model "$tmp/model/tiny_mlp.so"
check listed_xor_blobs listed xor_blobs task "$tmp/task/xor_blobs.so"
check listed_lenet5 listed lenet5 model "$tmp/lenet5/lenet5.so"
check listed_options grep -q "^        hidden  *int  *64  *\[1, 65536\]" "$list"
no_problems() { ! grep -A100 '^problems:' "$list" | grep -E "tiny_mlp|xor_blobs|lenet5"; }
check no_problems no_problems
if [ -d "$tmp/plain" ]; then
    check list_bare_cc sh -c "'$build/tunebench' plugins --plugin-path '$tmp/plain' | grep -q 'file: $tmp/plain/xor_blobs.so'"
fi

# 5. LeNet-5 trains a short run (xor_blobs' 8x8 images resized to Fashion-MNIST's
# 28x28), and its checkpoint's state_dict keys are a torch.nn.Sequential
# LeNet-5's, as gen_activations.py wrote them from torch into the fixture.
mkdir -p "$tmp/lenet5_run"
cat >"$tmp/lenet5_run/lenet5.ini" <<'EOF'
[model]
name = lenet5
[task]
name = xor_blobs
resolution = 28
[xor_blobs]
count = 160
[train]
epochs = 1
batch_size = 32
optimizer = sgd
lr = 0.05
seed = 1
threads = 1
[output]
run = lenet5_run.h5
EOF
lenet5_train() {
    (cd "$tmp/lenet5_run" && "$build/tunebench" train lenet5.ini --plugin-path "$tmp/lenet5:$tmp/task") &&
        test -s "$tmp/lenet5_run/lenet5_run.h5"
}
check lenet5_train lenet5_train
lenet5_keys() { # the run file's keys, sorted, equal torch's (the fixture's attribute), sorted
    local want got
    command -v h5ls >/dev/null && command -v h5dump >/dev/null || { echo "h5ls/h5dump missing (hdf5-tools)"; return 1; }
    want=$(h5dump -a /lenet5/state_dict_keys "$src/tests/fixtures/activations.h5" | sed -n 's/^ *(0): "\(.*\)"$/\1/p' |
        tr ',' '\n' | sort)
    got=$(h5ls "$tmp/lenet5_run/lenet5_run.h5/checkpoint/params" | awk '{print $1}' | sort)
    echo "torch: $(echo $want)"
    echo "run:   $(echo $got)"
    [ -n "$want" ] && [ "$want" = "$got" ]
}
check lenet5_state_dict_keys lenet5_keys

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
