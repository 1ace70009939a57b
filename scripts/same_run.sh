#!/usr/bin/env bash
# same_run.sh A.h5 B.h5: are two run files the same training, to the bit?
# Compares what training computed (weights, buffers and optimizer state under
# /checkpoint, the loss and accuracy curves, the test metrics and confusion
# matrix) and ignores what differs between two runs of the same thing
# (timings, dates, host, paths). Exit 0 identical, 1 different, 2 usage.
# Used to show that a refactoring left results unchanged, e.g.
#   old/tunebench train configs/quickstart.ini --set train.epochs=1 --out a.h5
#   build/tunebench train configs/quickstart.ini --set train.epochs=1 --out b.h5
#   scripts/same_run.sh a.h5 b.h5
set -u
if [ $# -ne 2 ]; then echo "usage: $0 A.h5 B.h5" >&2; exit 2; fi
a=$1 b=$2
status=0
compare() { # OBJECT: h5diff exits 0 when identical (exact: no tolerance given)
    if h5diff -q "$a" "$b" "$1" "$1" >/dev/null 2>&1; then
        echo "same       $1"
    else
        echo "DIFFERENT  $1"
        h5diff -r "$a" "$b" "$1" "$1" 2>&1 | grep -v "^0 differences\|^dataset:" | head -n 5 | sed 's/^/    /'
        status=1
    fi
}
compare /checkpoint/params
compare /checkpoint/optimizer   # its state and attributes (step, hyperparameters)
for d in loss; do compare /curves/batch/$d; done
for d in train_loss val_loss val_accuracy; do compare /curves/epoch/$d; done
compare /test/confusion
for attr in loss accuracy macro_f1; do
    va=$(h5dump -m %.17g -a "/test/$attr" "$a" 2>/dev/null | grep -A1 "DATA {" | tail -1)
    vb=$(h5dump -m %.17g -a "/test/$attr" "$b" 2>/dev/null | grep -A1 "DATA {" | tail -1)
    if [ "$va" = "$vb" ]; then echo "same       /test@$attr"; else echo "DIFFERENT  /test@$attr: $va vs $vb"; status=1; fi
done
[ $status -eq 0 ] && echo "the two runs trained the same, to the bit" || echo "the two runs differ"
exit $status
