"""Capacity beside robustness: each cell records the evaluated model's parameters and forward
FLOPs per image; Table 1 shows them and names the rows whose size differs from RACL's."""

from __future__ import annotations

import math

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


def _put(store, run, model, params, attack, correct, eps=0.3):
    steps, step, key = ATTACKS.get(attack, (None, None, "clean"))
    bits = np.zeros(N, dtype=bool)
    bits[:correct] = True
    store.put_result({
        "run_id": run, "kind": "clean" if attack == "clean" else "whitebox", "model": model,
        "checkpoint": f"{model}-c", "dataset": "mnist", "data_slice": f"test[:{N}]", "n": N,
        "training": "pgd_at", "preset": "demo", "seed": 0,
        "attack": None if attack == "clean" else attack, "attack_key": key,
        "eps": None if attack == "clean" else eps, "steps": steps, "step_size": step,
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
    assert not [h for h in table.header if h.startswith("Capacity matched")]
    csv = (tmp_path / "out" / "tables" / "table1_with_at.csv").read_text()
    assert "row,paper_row,params,paper_params_m,flops," in csv and ",300000,11.20,900000," in csv
    tex = (tmp_path / "out" / "tables" / "table1_with_at.tex").read_text()
    assert "Params M (paper) & MFLOPs/image" in tex


def test_a_matched_store_says_its_comparisons_are_at_matched_capacity(tmp_path):
    table = _table1(tmp_path, {"racl_published": 100_000, "darts": 104_000, "resnet18": 97_000})
    assert not [h for h in table.header if h.startswith("Capacity differs")]
    (line,) = [h for h in table.header if h.startswith("Capacity matched")]
    assert "within 10%" in line and "racl_published" in line


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


def test_zoo_match_widths_come_within_five_percent(capsys):
    from bench.cli import main
    from bench.plan.capacity_match import MATCH_TOLERANCE, count, match_width

    for name in ("resnet18", "vgg19", "darts", "robnet_small"):
        m = match_width(name, "racl_published", "params", Dataset.CIFAR10)
        assert abs(m.gap) <= MATCH_TOLERANCE and m.within, (name, m)
        neighbours = [count(name, ((m.key, w),), Dataset.CIFAR10, "params") for w in
                      (m.width - 1, m.width + 1)]  # fmt: skip
        assert all(v is None or abs(v - m.target) >= abs(m.value - m.target) for v in neighbours)
    assert main(["zoo", "--match", "params", "--model", "vgg19"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[:4] == ["vgg19", "width", "64", "27"]
    assert main(["zoo", "--match", "params=darts", "--model", "darts", "--json"]) == 0
    (row,) = __import__("json").loads(capsys.readouterr().out)
    assert row["width"] == row["default_width"] == 36 and row["gap"] == 0.0


@pytest.mark.parametrize("bad", ["size", "params=nosuch", "flops=robnet_medium"])
def test_match_refuses_bad_input(bad, capsys):
    from bench.cli import main

    assert main(["zoo", "--match", bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--match" in err[0]


def test_run_match_scales_every_zoo_model_to_its_own_checkpoint():
    from bench.plan.capacity_match import count, parse_match
    from bench.plan.experiments import get_experiments
    from bench.plan.planner import plan
    from bench.plan.presets import get_preset

    preset = get_preset("demo")
    experiments = get_experiments(["table1"])
    plain = plan(experiments, preset, calibrate=False)
    matched = plan(experiments, preset, calibrate=False, match=parse_match("params"))
    target = count("racl_published", tuple(sorted(preset.overrides_for("racl_published").items())),
                   Dataset.MNIST, "params")  # fmt: skip
    refs = {r.model: r for r in matched.refs.values()}
    assert set(refs) == {r.model for r in plain.refs.values()} and len(refs) >= 3
    before = {(r.model, r.training): r for r in plain.refs.values()}
    changed = 0
    for ref in matched.refs.values():  # a changed width is its own checkpoint, else the same
        old = before[(ref.model, ref.training)]
        assert (ref.hash == old.hash) == (ref.overrides == old.overrides)
        changed += ref.overrides != old.overrides
    assert changed > 0
    for name, ref in refs.items():  # the closest whole width (demo widths are coarse)
        items = dict(ref.overrides)
        items.pop("auxiliary", None)
        key = "init_channels" if "init_channels" in items else "width"

        def gap(width: int, name=name, items=items, key=key) -> float:
            value = count(name, tuple(sorted({**items, key: width}.items())), Dataset.MNIST,
                          "params")  # fmt: skip
            return math.inf if value is None else abs(value - target)

        assert gap(items[key]) <= min(gap(items[key] - 1), gap(items[key] + 1)), name


def test_pgd_k_spends_k_backward_and_k_plus_one_forward_passes_per_attacked_image():
    """Counted by the model's hook, not by the attack: PGD-k takes k forward + backward steps
    and one more forward judges the last iterate (the clean forward belongs to the clean cell,
    whose predictions are passed in); clean mistakes are not attacked, so they cost nothing."""
    from bench.attacks.counting import PassCounter
    from bench.evaluate import step_sweep_correct, whitebox_correct
    from bench.plan.experiments import PGD20

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 28 * 28, 10)).eval()  # fmt: skip
    counter = PassCounter()
    counter.attach(model)
    x, y = torch.rand(12, 1, 28, 28), torch.randint(0, 10, (12,))
    clean = torch.ones(12, dtype=torch.bool)
    clean[:2] = False  # two clean mistakes: never attacked
    spec = PGD20.spec(Dataset.MNIST)
    start = counter.snapshot()
    whitebox_correct(model, x, y, spec, batch_size=5, clean=clean, seed=0)
    assert counter.since(start) == (10 * 21, 10 * 20)
    counter.marks.clear()
    step_sweep_correct(model, x, y, spec, (3, 7), batch_size=5, clean=clean, seed=0)
    assert counter.marks[("steps", 3)] == [10 * 4, 10 * 3]  # a prefix of the shared run
    assert counter.marks[("steps", 7)] == [10 * 8, 10 * 7]
    with torch.no_grad():
        model(x)
    assert counter.snapshot()[1] == start[1] + 10 * 20 + 10 * 7  # no gradient, no backward


def test_effort_is_shown_in_the_summary_the_report_and_the_footnote(tmp_path):
    from bench.report.labels import effort_text
    from bench.report.selection import Measure
    from bench.results.summary_table import summary_table

    base = {"model": "darts", "training": "pgd_at", "dataset": "mnist", "n": 10, "correct": 5,
            "accuracy": 50.0, "kind": "whitebox", "attack": "pgd", "eps": 0.3,
            "steps": 20}  # fmt: skip
    text = summary_table([{**base, "forward_passes": 21.0, "backward_passes": 20.0}])
    assert "passes per image (forward/backward)" in text and "21.0/20.0" in text
    assert "passes per image" not in summary_table([base])
    m = Measure(50.0, 10, 1, 0.3, 20, 0.01, "pgd", "pgd_at", forward_passes=21.0,
                backward_passes=20.0)  # fmt: skip
    assert effort_text([m]) == "21.0 forward / 20.0 backward passes per image"
    assert effort_text([Measure(50.0, 10, 1, 0.3, 20, 0.01, "pgd", "pgd_at")]) == ""


def test_figure3a_effort_view_puts_the_pgd_sweep_and_autoattack_on_one_axis(tmp_path):
    with ResultStore(tmp_path / "s.db") as store:
        run = store.begin_run({"preset": "demo", "seed": 0})
        for model in ("racl_published", "darts"):
            for kind, attack, steps, correct in [("clean", None, None, 45), *[
                    ("step_sweep", "pgd", k, 40 - k) for k in (1, 5, 10, 20)],
                    ("whitebox", "autoattack", None, 12)]:  # fmt: skip
                bits = np.zeros(N, dtype=bool)
                bits[:correct] = True
                store.put_result({
                    "run_id": run, "kind": kind, "model": model, "checkpoint": f"{model}-c",
                    "dataset": "mnist", "data_slice": f"test[:{N}]", "n": N,
                    "training": "pgd_at", "preset": "demo", "seed": 0, "attack": attack,
                    "attack_key": f"{attack}-{steps}", "eps": None if attack is None else 0.3,
                    "steps": steps, "step_size": 0.01 if attack == "pgd" else None,
                    "norm": "linf", "correct": correct, "accuracy": 100.0 * correct / N,
                    "per_sample": bits,
                    "forward_passes": None if kind == "clean" else (steps or 90) + 1.0,
                    "backward_passes": None if kind == "clean" else float(steps or 90),
                })  # fmt: skip
        store.finish_run(run, "ok", {})
    report = build_report(tmp_path / "s.db", tmp_path / "out")
    assert "figure3a_effort" not in dict(report.skipped_figures)
    png = (tmp_path / "out" / "figures" / "figure3a_effort.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_a_compiled_pass_leaves_the_cells_effort_unknown_not_undercounted():
    from types import SimpleNamespace

    from bench.attacks.counting import PassCounter, cell_effort, uncounted

    model = nn.Linear(3, 2)
    counter = PassCounter()
    counter.attach(model)
    cell = SimpleNamespace(n=4, steps=None)
    start = counter.snapshot()
    model(torch.zeros(4, 3))
    assert cell_effort(counter, "whitebox", cell, start, start) == (1.0, 0.0)
    previous = counter.snapshot()
    uncounted(model)  # what Attack.gradient_and_logits notes before a compiled forward
    model(torch.zeros(4, 3))
    assert cell_effort(counter, "whitebox", cell, start, previous) == (None, None)
    assert cell_effort(counter, "whitebox", cell, start, counter.snapshot()) == (0.0, 0.0)
    assert cell_effort(counter, "transfer", cell, start, counter.snapshot()) == (None, None)
