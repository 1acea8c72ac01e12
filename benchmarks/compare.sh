#!/usr/bin/env bash
# Runs one benchmark against two builds, alternating them run by run (A B A B …), and prints each
# run's summary lines, so a before/after comparison sees the same machine noise on both sides.
#   benchmarks/compare.sh BEFORE_BIN AFTER_BIN api.sh [runs per side, default 3] [args for the benchmark…]
# BEFORE_BIN and AFTER_BIN are release bin directories (e.g. from `swift build -c release
# --scratch-path .build-before` in a worktree of the older commit).
set -euo pipefail
cd "$(dirname "$0")/.."
before=$1 after=$2 bench=$3 runs=${4:-3}
shift 4 || shift $#
for side in "$before" "$after"; do
    [[ -x $side/drydock-server ]] || { echo "no drydock-server in $side" >&2; exit 1; }
done
for run in $(seq 1 "$runs"); do
    for side in before after; do
        bin=$before
        [[ $side == after ]] && bin=$after
        echo "==> run $run, $side ($bin)"
        DRYDOCK_BIN=$bin "benchmarks/$bench" "$@" 2>&1 | sed -n '/^medians\|^| \|^ratio\|^server RSS\|^pull\|^push\|^first\|^rebuild\|^cached/p'
    done
done
