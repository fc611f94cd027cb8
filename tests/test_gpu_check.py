"""scripts/gpu_check.sh: its CPU check (``--quick``) writes the figures' table, and without a GPU
the full run refuses in one line (issue 11, deliverable 6; the GPU run itself is issue 15's)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}  # this interpreter
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip


def test_quick_check_writes_every_row_of_the_table(tmp_path):
    out = tmp_path / "GPU.md"
    result = _run("--quick", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text()
    rows = [
        line for line in text.splitlines() if line.startswith("| fp32") or line.startswith("| bf16")
    ]
    assert len(rows) == 2 and all("eager" in r for r in rows)  # --quick: no compile on a CPU
    for row in rows:  # steps/s and images/s are positive numbers
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[2]) > 0 and float(cells[3]) > 0
    assert "One epoch of MNIST PGD-AT" in text
    assert not (ROOT / "checkpoints" / "gpu_check").exists()  # trained in a temporary folder


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for a machine without CUDA")
def test_without_cuda_the_full_run_refuses_in_one_line(tmp_path):
    result = _run("--out", str(tmp_path / "GPU.md"))
    assert result.returncode == 2 and not (tmp_path / "GPU.md").exists()
    assert result.stderr.strip().splitlines() == [
        "gpu_check: no CUDA device (use --quick to check the script on a CPU)"
    ]
