"""Capacity beside robustness: each cell records the evaluated model's parameters and forward
FLOPs per image; Table 1 shows them and names the rows whose size differs from RACL's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bench.plan.cost import model_capacity
from bench.report import ReportOptions, build_report
from bench.results.format import row_fault
from bench.results.store import ResultStore
from core.enums import Dataset

N = 50
ATTACKS = {"fgsm": (1, 0.3, "fgsm"), "mim": (10, 0.03, "mim"), "pgd": (20, 0.01, "pgd20")}


def test_model_capacity_counts_parameters_and_multiply_adds():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 28 * 28, 10))
    params, flops = model_capacity(model, Dataset.MNIST)
    assert params == (4 * 9 + 4) + (4 * 784 * 10 + 10)
    assert flops == 2 * (4 * 784 * 9) + 2 * (10 * 4 * 784)  # 2 per multiply-add

    class Refuses(nn.Module):  # a forward that rejects the probe image: FLOPs unknown, not fatal
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(3))

        def forward(self, x):
            raise RuntimeError("no")

    assert model_capacity(Refuses(), Dataset.MNIST) == (3, None)


def test_row_check_refuses_impossible_capacity():
    row = {"key": "k", "n": 10, "kind": "clean", "correct": 5, "accuracy": 50.0}
    assert row_fault(row) is None and row_fault({**row, "params": 10, "flops": 2.5}) is None
    assert "params" in row_fault({**row, "params": -1})
    assert "params" in row_fault({**row, "params": 1.5})
    assert "flops" in row_fault({**row, "flops": -3.0})


def _put(store, run, model, params, attack, correct):
    steps, step, key = ATTACKS.get(attack, (None, None, "clean"))
    bits = np.zeros(N, dtype=bool)
    bits[:correct] = True
    store.put_result({
        "run_id": run, "kind": "clean" if attack == "clean" else "whitebox", "model": model,
        "checkpoint": f"{model}-c", "dataset": "mnist", "data_slice": f"test[:{N}]", "n": N,
        "training": "pgd_at", "preset": "demo", "seed": 0,
        "attack": None if attack == "clean" else attack, "attack_key": key,
        "eps": None if attack == "clean" else 0.3, "steps": steps, "step_size": step,
        "norm": "linf", "correct": correct, "accuracy": 100.0 * correct / N, "per_sample": bits,
        "params": params, "flops": None if params is None else 3.0 * params,
    })  # fmt: skip


def _table1(tmp_path, sizes: dict):
    with ResultStore(tmp_path / "s.db") as store:
        run = store.begin_run({"preset": "demo", "seed": 0})
        for model, params in sizes.items():
            for attack, correct in (("clean", 45), ("fgsm", 30), ("mim", 25), ("pgd", 20)):
                _put(store, run, model, params, attack, correct)
        store.finish_run(run, "ok", {})
    report = build_report(tmp_path / "s.db", tmp_path / "out", ReportOptions(figures=False))
    return next(t for t in report.tables if t.key == "table1_with_at")


def test_table1_shows_capacity_and_flags_a_size_gap(tmp_path):
    table = _table1(tmp_path, {"racl_published": 100_000, "darts": 108_000, "resnet18": 300_000})
    caps = {r.label: r.capacity for r in table.rows}
    assert caps["resnet18"].params == 300_000 and caps["resnet18"].flops == 900_000.0
    assert caps["racl_published"].paper_params_m == pytest.approx(3.6)
    (line,) = [h for h in table.header if h.startswith("Capacity differs")]
    assert "resnet18 3.00x parameters" in line and "darts" not in line  # 8 % is within 10 %
    md = (tmp_path / "out" / "tables" / "table1_with_at.md").read_text()
    assert "| Params M (paper) | MFLOPs/image |" in md and "| 0.300 (11.2) | 0.9 |" in md
    csv = (tmp_path / "out" / "tables" / "table1_with_at.csv").read_text()
    assert "row,paper_row,params,paper_params_m,flops," in csv and ",300000,11.20,900000," in csv
    tex = (tmp_path / "out" / "tables" / "table1_with_at.tex").read_text()
    assert "Params M (paper) & MFLOPs/image" in tex


def test_rows_without_capacity_show_a_dash_and_no_size_line(tmp_path):
    table = _table1(tmp_path, {"racl_published": None, "resnet18": None})
    assert all(r.capacity.params is None for r in table.rows)
    assert not [h for h in table.header if h.startswith("Capacity differs")]
    md = (tmp_path / "out" / "tables" / "table1_with_at.md").read_text()
    assert "| - (11.2) | - |" in md


def test_summary_and_results_json_carry_capacity():
    from bench.commands.results import FIELDS
    from bench.results.summary_table import summary_table

    base = {"model": "darts", "training": "pgd_at", "dataset": "mnist", "kind": "clean",
            "n": 10, "correct": 9, "accuracy": 90.0}  # fmt: skip
    text = summary_table([{**base, "params": 350_000, "flops": 5.21e7}])
    assert "params/MFLOPs" in text.splitlines()[0] and "0.35M/52.1" in text
    assert summary_table([base]).splitlines()[-1].split()[:2] == ["darts/pgd_at/mnist", "-"]
    assert {"params", "flops"} <= set(FIELDS)
