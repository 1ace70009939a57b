#!/usr/bin/env bash
# Installs the Debian packages tunebench needs to build, test and run.
# Uses sudo when not root; does nothing when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libopenblas-dev libopenblas-openmp-dev   # BLAS; the OpenMP build shares our thread pool
  libhdf5-dev hdf5-tools                    # checkpoints, run files, archives
  zlib1g-dev                                # gzip'd IDX files
  check libsubunit-dev                      # unit tests
  libiniparser-dev                          # configuration files
  libjpeg-dev                               # Imagenette JPEGs (libjpeg-turbo)
  dataset-fashion-mnist                     # real data for the default job and tests
  clang libclang-rt-14-dev libomp-dev       # fuzzing (tests/fuzz/): clang, its libFuzzer runtime, clang's OpenMP
  libmicrohttpd-dev libjansson-dev nettle-dev  # the http front end: server, JSON, HMAC-SHA256 session tokens
  libgsl-dev libplplot-dev                  # tunebench analyze: statistics (GSL), figures (PLplot's svg device)
  nodejs chromium                           # web assets (uPlot) and the browser test (playwright-core drives chromium)
  slurm-wlm munge                           # cluster tests: a one-node Slurm cluster (scripts/slurm_cluster.sh)
  python3-h5py python3-pandas               # the docs' Python snippets, run by the ctest test_docs (tests/test_docs.py)
)

# The npm packages (package.json, pinned by package-lock.json): uPlot, embedded
# into the http front end at build time, and playwright-core for the browser test.
npm_install() {
  [ -f package-lock.json ] || return 0
  # npm ci leaves node_modules/.package-lock.json; newer than the lockfile: nothing to do
  [ node_modules/.package-lock.json -nt package-lock.json ] && return 0
  echo "deps.sh: npm ci (package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian's nodejs comes without npm (NodeSource's includes it)
command -v npm >/dev/null || missing+=(npm)
cd "$(dirname "$0")/.."
if [ ${#missing[@]} -eq 0 ]; then
  npm_install
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "deps.sh: not root and sudo is missing; install as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
npm_install
