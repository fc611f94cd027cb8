"""The report's budget: the newest run's most common attack budget, and the line that says when
it is not the paper's."""

from __future__ import annotations

import pandas as pd

from bench.report.labels import scope_lines
from bench.report.scope import Scope, choose_eps


def _rows(*groups: tuple[int, float, int]) -> pd.DataFrame:
    rows = [
        {"kind": "whitebox", "eps": eps, "run_id": run}
        for run, eps, count in groups
        for _ in range(count)
    ]
    rows.append({"kind": "clean", "eps": None, "run_id": 9})  # a clean row has no budget
    return pd.DataFrame(rows)


def test_the_newest_run_decides_the_budget():
    stale_and_new = _rows((1, 0.3, 40), (2, 0.1, 30), (2, 0.5, 5), (2, 0.125, 5))
    assert choose_eps(stale_and_new, "mnist") == 0.1  # not the stale standard 0.3
    tie = _rows((3, 0.1, 4), (3, 0.3, 4))
    assert choose_eps(tie, "mnist") == 0.3  # the dataset's standard budget wins a tie
    assert abs(choose_eps(_rows((1, 8 / 255, 3), (1, 4 / 255, 1)), "cifar10") - 8 / 255) < 1e-9
    assert choose_eps(_rows(), "mnist") is None


def test_the_scope_says_when_the_budget_is_not_the_papers():
    lines = scope_lines(Scope(dataset="mnist", preset="demo", eps=0.1), "cifar10")
    assert any("not the paper's 0.3" in line for line in lines)
    standard = scope_lines(Scope(dataset="mnist", preset="demo", eps=0.3), "cifar10")
    assert not any("not the paper's" in line for line in standard)
