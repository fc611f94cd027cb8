#!/usr/bin/env bash
# The README's test command: set up (or reuse) .venv (or $RACL_BENCH_VENV), then run the tests.
# Extra arguments go to pytest, e.g. scripts/test.sh -k store
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${RACL_BENCH_VENV:-.venv}/bin/python" -m pytest -q -n 2 "$@"
