"""The paper's claims at matched capacity (``bench report --matched-store``): the checklist judged
on a `bench run --match` store beside the report's own verdicts, the matched store's capacity
said, and a store of another budget, or the report's own store, refused."""

from __future__ import annotations

import pytest
from test_capacity import _put

from bench.report import ReportOptions, build_report
from bench.results.store import ResultStore
from core.errors import UserError

BEATS = "With AT, RACL beats its baseline PC-DARTS under FGSM and PGD"


def _store(path, sizes: dict, robust: dict, eps: float = 0.3):
    """A demo store: per model its parameter count and its FGSM/PGD-20 robust images of 50
    (the first ones: a model more robust than another is so on a superset of images)."""
    with ResultStore(path) as store:
        run = store.begin_run({"preset": "demo", "seed": 0})
        for model, params in sizes.items():
            for attack, correct in (("clean", 45), ("fgsm", robust[model]), ("pgd", robust[model])):
                _put(store, run, model, params, attack, correct, eps)
        store.finish_run(run, "ok", {})
    return path


def _report(tmp_path, matched_sizes: dict, matched_robust: dict):
    native = _store(tmp_path / "native.db", {"racl_published": 100_000, "pc_darts": 300_000},
                    {"racl_published": 20, "pc_darts": 35})  # fmt: skip
    matched = _store(tmp_path / "matched.db", matched_sizes, matched_robust)
    options = ReportOptions(figures=False, matched_store=matched)
    return build_report(native, tmp_path / "out", options)


def test_claims_at_matched_capacity_sit_beside_the_native_verdicts(tmp_path):
    report = _report(tmp_path, {"racl_published": 100_000, "pc_darts": 103_000},
                     {"racl_published": 40, "pc_darts": 10})  # fmt: skip
    native = {c.text: c for c in report.claims}
    theirs = {c.text: c for c in report.matched.claims}
    assert native[BEATS].ours == "not held" and theirs[BEATS].ours == "held"
    assert report.matched.matched and "Capacity matched" in report.matched.capacity
    md = (tmp_path / "out" / "agreement.md").read_text()
    section = md.split("### Claims at matched capacity", 1)[1]
    (row,) = [line for line in section.splitlines() if line.startswith(f"| {BEATS}")]
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[2:5] == ["not held", "held", "changed"]
    assert "its models are matched" in section and "matched.db" in section
    assert "Claims at matched capacity" in (tmp_path / "out" / "index.md").read_text()
    html = (tmp_path / "out" / "index.html").read_text()
    assert 'id="claims-matched"' in html and "changed" in html
    same = [c.strip() for c in section.splitlines() if "| same |" in c]
    assert same, "claims judged alike in both stores read 'same'"


def test_a_second_store_whose_sizes_differ_is_said_not_to_be_matched(tmp_path):
    report = _report(tmp_path, {"racl_published": 100_000, "pc_darts": 300_000},
                     {"racl_published": 20, "pc_darts": 35})  # fmt: skip
    assert not report.matched.matched and "Capacity differs" in report.matched.capacity
    md = (tmp_path / "out" / "agreement.md").read_text()
    assert "NOT all matched" in md and "| changed |" not in md
    plain = build_report(tmp_path / "native.db", tmp_path / "plain", ReportOptions(figures=False))
    assert plain.matched is None
    assert "matched capacity" not in (tmp_path / "plain" / "agreement.md").read_text()


def test_another_budget_or_the_same_store_is_refused(tmp_path, capsys):
    from bench.cli import main

    native = _store(tmp_path / "native.db", {"racl_published": 1, "pc_darts": 1},
                    {"racl_published": 20, "pc_darts": 35})  # fmt: skip
    other = _store(tmp_path / "other.db", {"racl_published": 1, "pc_darts": 1},
                   {"racl_published": 20, "pc_darts": 35}, eps=0.1)  # fmt: skip
    with pytest.raises(UserError, match="eps=0.1 differs from the report's eps=0.3"):
        build_report(native, tmp_path / "o", ReportOptions(figures=False, matched_store=other))
    argv = ["report", "--store", str(native), "--out", str(tmp_path / "o2")]
    assert main([*argv, "--matched-store", str(native)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the --store itself" in err[0]
    assert main([*argv, "--matched-store", str(tmp_path / "missing.db")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main([*argv, "--matched-store", str(other)]) == 2
    assert main(argv) == 0


def test_an_indicator_marks_only_the_cell_whose_attack_it_read(tmp_path):
    """Issue 28: MIM-10's incomplete optimisation marks the MIM cell, not the model's PGD-20,
    FGSM or clean cells; a model-level check (here pgd_le_fgsm) still marks every cell."""
    from test_capacity import ATTACKS

    path = tmp_path / "s.db"
    with ResultStore(path) as store:
        run = store.begin_run({"preset": "demo", "seed": 0})
        for attack, correct in (("clean", 45), ("fgsm", 30), ("mim", 25), ("pgd", 20)):
            _put(store, run, "racl_published", 1000, attack, correct)
        for attack, hits in (("fgsm", None), ("mim", [40, 45]), ("pgd", [0, 45])):
            store.put_indicators({
                "key": f"ind-{attack}", "run_id": run, "model": "racl_published",
                "checkpoint": "racl_published-c", "dataset": "mnist", "training": "pgd_at",
                "attack": attack, "attack_key": ATTACKS[attack][2], "label": attack,
                "eps": 0.3, "data_slice": "test[:50]", "n": 50, "revision": 1,
                "counts": {"incomplete_optimization": hits},
            })  # fmt: skip
        store.add_trust(run, "indicator:incomplete_optimization", model="racl_published",
                        dataset="mnist", training="pgd_at", detail="MIM-10: 40/45",
                        passed=False)  # fmt: skip
        store.finish_run(run, "ok", {})
    report = build_report(path, tmp_path / "out", ReportOptions(figures=False))
    table = next(t for t in report.tables if t.key == "table1_with_at")
    (row,) = table.rows
    marks = dict(zip(table.columns, (c.marks for c in row.cells), strict=True))
    assert marks["MIM"] and not marks["PGD20"] and not marks["FGSM"] and not marks["Clean"]
    with ResultStore(path) as store:  # a model-level check marks the model's every cell
        store.add_trust(None, "pgd_le_fgsm", model="racl_published", dataset="mnist",
                        training="pgd_at", detail="pgd-10 above FGSM", passed=False)  # fmt: skip
    report = build_report(path, tmp_path / "out2", ReportOptions(figures=False))
    table = next(t for t in report.tables if t.key == "table1_with_at")
    (row,) = table.rows
    marks = dict(zip(table.columns, (c.marks for c in row.cells), strict=True))
    assert all(marks[c] for c in ("Clean", "FGSM", "PGD20")) and len(marks["MIM"]) == 2
