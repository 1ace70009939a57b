#!/usr/bin/env bash
# The main job: set up, build, and serve the Fashion-MNIST study in a browser.
#   scripts/run.sh                 serves configs/study_fashion_mnist.ini over HTTP (the web front end):
#                                  prints the participants' URL and the organiser's URL (with its token)
#   scripts/run.sh study [ARGS]    the same; ARGS go to `tunebench study` (e.g. --set http.port=0)
#   scripts/run.sh train [ARGS]    trains configs/quickstart.ini (the baseline CNN on real Fashion-MNIST, on the CPU)
# Ctrl-C (or SIGTERM) closes the study cleanly; running the command again continues it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
mode=study
if [ $# -gt 0 ] && { [ "$1" = train ] || [ "$1" = study ]; }; then
  mode=$1
  shift
fi
if [ "$mode" = train ]; then
  exec build/tunebench train configs/quickstart.ini "$@"
fi
exec build/tunebench study configs/study_fashion_mnist.ini --frontend http "$@"
