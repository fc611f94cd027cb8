#!/usr/bin/env bash
# The README's demo command: set up (or reuse) .venv, then run the demo preset on real MNIST,
# offline, and write the report. Extra arguments go to `bench run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/bench zoo
