import os
from pathlib import Path

import pytest
import torch

# Deterministic, small thread count: CI has 2 cores and pytest-xdist runs 2 workers.
torch.set_num_threads(1)
os.environ.setdefault("RACL_BENCH_TESTING", "1")

USER_MODELS = Path(__file__).parent / "fixtures" / "user_models.py"


@pytest.fixture(scope="session")
def small_weights(tmp_path_factory) -> Path:
    """A naturally trained SmallNet (tests/fixtures/user_models.py), trained by ``bench train``
    on 8000 MNIST images (about a second)."""
    from bench.cli import main

    folder = tmp_path_factory.mktemp("small_net")
    args = ["train", "--model-file", f"{USER_MODELS}:small", "--dataset", "mnist",
            "--training", "natural", "--epochs", "2", "--n-train", "8000", "--batch-size", "64",
            "--lr", "0.1", "--no-augment", "--no-progress",
            "--checkpoint-dir", str(folder)]  # fmt: skip
    assert main(args) == 0
    (weights,) = folder.glob("*.safetensors")
    return weights


def _robustbench_missing() -> str | None:
    from core.robustbench_guard import import_robustbench

    try:
        import_robustbench()
    except ImportError as err:
        return str(err)
    return None


@pytest.fixture
def robustbench_required() -> None:
    """robustbench (the ``leaderboard`` extra, which scripts/setup.sh installs): the test fails
    when it is missing in CI (``CI`` set) and is skipped only elsewhere."""
    missing = _robustbench_missing()
    if missing and os.environ.get("CI"):
        pytest.fail(f"robustbench must be installed in CI (the leaderboard extra): {missing}")
    if missing:
        pytest.skip(f"robustbench not installed (pip install -e '.[leaderboard]'): {missing}")


@pytest.fixture
def validate_entry_with_robustbench():
    """``check(entry)``: robustbench's ModelInfo must accept a leaderboard entry a test wrote.

    In CI robustbench must be there (the test fails otherwise); elsewhere, without it, the check
    returns False and the rest of the test still runs."""
    from bench.report.submission import robustbench_check

    missing = _robustbench_missing()
    if missing and os.environ.get("CI"):
        pytest.fail(f"robustbench must be installed in CI (the leaderboard extra): {missing}")

    def check(entry: dict) -> bool:
        if missing:
            return False
        assert (
            robustbench_check(entry, required=True) == "validated with robustbench.utils.ModelInfo"
        )
        return True

    return check
