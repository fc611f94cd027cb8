#!/usr/bin/env bash
# Paper-size GPU throughput (PGD-7 AT steps/s, PGD-20 eval images/s; fp32/bf16; eager/compile)
# and one epoch of MNIST PGD-AT at full size; writes docs/GPU.md. Needs only the repository and
# the README's set-up (MNIST ships offline; the throughput runs on random inputs).
# Usage: scripts/gpu_check.sh [--quick] [--out FILE]   (--quick: a CPU check of the script)
set -euo pipefail
cd "$(dirname "$0")/.."
# The README's set-up: the venv scripts/setup.sh makes (or reuses); $PYTHON overrides it.
if [[ -z "${PYTHON:-}" ]]; then
    bash scripts/setup.sh
    PYTHON="${RACL_BENCH_VENV:-.venv}/bin/python"
fi
exec "$PYTHON" -m scripts.gpu_check "$@"
