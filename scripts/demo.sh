#!/usr/bin/env bash
# The README's demo command: set up (or reuse) .venv, run the demo preset on real MNIST, offline
# (a scaled-down zoo, short PGD-AT, every evaluation kind), then write the report.
# Resumable and cached: a second run computes nothing; killed, it loses no finished result.
# Extra arguments go to `bench run` (e.g. --fresh, --no-progress, --device cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
STORE=results/demo.db
status=0
VENV="${RACL_BENCH_VENV:-.venv}"
"$VENV/bin/bench" run --preset demo --store "$STORE" "$@" || status=$?
# Failed cells (exit 1) are recorded in the store and shown in the report; bad input (2) is not.
if [[ $status -ne 2 ]]; then
    "$VENV/bin/bench" report --store "$STORE" --out reports/demo
fi
exit "$status"
