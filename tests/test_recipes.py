"""Recipes: the paper preset trains by the published recipes, smoke and demo keep their configs."""

from __future__ import annotations

import pytest

from bench.experiments import get_experiments
from bench.planner import plan
from bench.presets import PRESETS

# The checkpoint config hashes of the smoke and demo plans before the recipes (issue 11): their
# results and cached checkpoints must not change.
PINNED = {
    "smoke": [
        "2c54e7beb473a474", "630ac9e93be3e7f1", "d34bfdbab7b200fd", "e1db33439e853920",
    ],
    "demo": [
        "1368fd615f5f3965", "2afc09a326559e07", "7f21761e50962759", "82b3d5acda2db3fe",
        "838eda634b95504d", "919845332ad2b01c", "d9605e95cb84060b", "ea967484918e1b98",
        "ec0ec7e4c61046aa", "f811174e906bf9e8",
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", ["smoke", "demo"])
def test_smoke_and_demo_checkpoints_keep_their_config_hashes(name):
    preset = PRESETS[name]
    p = plan(get_experiments(list(preset.experiments)), preset, calibrate=False)
    assert sorted(p.refs) == PINNED[name]


def test_paper_dry_run_is_instant_and_shows_the_recipes(tmp_path):
    import json
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "bench.cli", "run", "--preset", "paper", "--dataset", "cifar10",
           "--dry-run", "--json", "--threads", "1", "--store", str(tmp_path / "s.db")]  # fmt: skip
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)
    assert time.perf_counter() - start < 15
    rows = json.loads(out.stdout)["training_plan"]["checkpoints"]
    darts = {r["training"]: r for r in rows if r["model"] == "darts"}
    assert darts["natural"]["epochs"] == 600 and darts["natural"]["adversary"] is None
    assert darts["pgd_at"]["epochs"] == 200
    assert darts["pgd_at"]["adversary"] == "PGD-7 8/255 step 2/255"
    assert all(r["gpu_hours"] > 0 and r["recipe"] for r in rows)
