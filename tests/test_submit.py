"""bench submit: RobustBench model_info fields and rounding, refusal without AutoAttack."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from bench.cli import main
from bench.report import SubmissionMeta, build_entry, validate_entry
from bench.report.submission import FIELDS, robustbench_check
from core.errors import UserError

STORE = Path(__file__).parent / "fixtures" / "report_store.sqlite"


def test_entry_fields_types_and_two_decimal_strings(validate_entry_with_robustbench):
    meta = SubmissionMeta(name="RACL", authors="A, B", link="https://x", venue="NeurIPS 2021")
    entry = build_entry(STORE, "racl_published", meta=meta)
    validate_entry_with_robustbench(entry)
    assert tuple(entry) == tuple(f for f in FIELDS if f in entry)  # RobustBench's order
    assert entry["unreliable"] is False and "external" not in entry  # its checks pass
    assert entry["autoattack_acc"] == "86.00" and entry["reported"] == "86.00"
    assert "'reported' is our own AutoAttack measurement" in entry["footnote"]  # never silently
    assert entry["clean_acc"] == "98.00"  # clean row of the same checkpoint (PGD-AT)
    assert entry["eps"] == "0.3" and entry["dataset"] == "mnist"
    assert entry["additional_data"] is False and entry["number_forward_passes"] == 1
    assert entry["name"] == "RACL" and entry["architecture"] == "racl_published"
    assert "100 mnist test images" in entry["footnote"]


def test_rounding_of_pooled_accuracy(tmp_path):
    path = tmp_path / "odd.sqlite"
    shutil.copyfile(STORE, path)
    with sqlite3.connect(path) as conn:  # 2/3 -> 66.666...% must read "66.67"
        conn.execute(
            "UPDATE results SET n = 3, correct = 2, accuracy = 66.6666667, per_sample = ? "
            "WHERE attack = 'autoattack'",
            (bytes([0b11000000]),),  # two of three images correct, as the row says
        )
    assert build_entry(path, "racl_published")["autoattack_acc"] == "66.67"


def test_refuses_without_autoattack(tmp_path, capsys):
    with pytest.raises(UserError, match="no standard AutoAttack"):
        build_entry(STORE, "darts")
    out = tmp_path / "entry.json"
    code = main(["submit", "darts", "--store", str(STORE), "--out", str(out)])
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: no standard AutoAttack")


def _with_autoattack_key(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the fixture store whose AutoAttack keys have ``old`` replaced by ``new``."""
    path = tmp_path / "edited.sqlite"
    shutil.copyfile(STORE, path)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE results SET attack_key = replace(attack_key, ?, ?) WHERE attack = 'autoattack'",
            (old, new),
        )
    return path


def test_refuses_a_non_standard_autoattack_version(tmp_path):
    path = _with_autoattack_key(tmp_path, "standard", "rand")
    with pytest.raises(UserError, match="no standard AutoAttack"):
        build_entry(path, "racl_published")


def test_cli_writes_json(tmp_path, capsys, validate_entry_with_robustbench):
    out = tmp_path / "entry.json"
    args = ["submit", "racl_published", "--store", str(STORE), "--out", str(out)]
    assert main([*args, "--name", "RACL", "--venue", "NeurIPS 2021"]) == 0
    entry = json.loads(out.read_text())
    validate_entry_with_robustbench(entry)
    assert entry["venue"] == "NeurIPS 2021" and entry["autoattack_acc"] == "86.00"
    printed = capsys.readouterr().out
    assert "AutoAttack 86.00%" in printed and "no mnist leaderboard" in printed


def test_unknown_threat_model_and_dataset_are_user_errors():
    with pytest.raises(UserError, match="Linf or L2"):
        build_entry(STORE, "racl_published", threat_model="L1")
    with pytest.raises(UserError, match="no standard AutoAttack .*L2|no standard AutoAttack"):
        build_entry(STORE, "racl_published", threat_model="L2")
    with pytest.raises(UserError, match="on cifar10"):
        build_entry(STORE, "racl_published", dataset="cifar10")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("clean_acc", "84.4", "percentage"),
        ("clean_acc", 84.36, "string"),
        ("eps", "8 over 255", "eps"),
        ("additional_data", "no", "boolean"),
        ("number_forward_passes", 0, "positive"),
        ("autoattack_acc", "99.00", "exceeds"),
    ],
)
def test_own_validation_rejects_bad_fields(field, value, message):
    entry = build_entry(STORE, "racl_published")
    entry[field] = value
    with pytest.raises(UserError, match=message):
        validate_entry(entry)
    entry = build_entry(STORE, "racl_published")
    entry["extra"] = "x"
    with pytest.raises(UserError, match="unexpected"):
        validate_entry(entry)


def test_robustbench_accepts_our_entries_and_rejects_a_bad_one(robustbench_required):
    entry = build_entry(STORE, "racl_published")
    assert robustbench_check(entry, required=True) == "validated with robustbench.utils.ModelInfo"
    with pytest.raises(UserError, match="robustbench rejects the entry"):
        robustbench_check({**entry, "robust_acc": "1.00"})  # no such ModelInfo field


def test_without_robustbench_the_check_notes_it_or_refuses(monkeypatch):
    import core.robustbench_guard as guard

    def missing():  # noqa: ANN202
        raise ImportError("No module named 'robustbench'")

    monkeypatch.setattr(guard, "import_robustbench", missing)
    entry = build_entry(STORE, "racl_published")
    assert robustbench_check(entry).startswith("robustbench not importable (ImportError)")
    with pytest.raises(UserError, match="robustbench is needed"):
        robustbench_check(entry, required=True)


def test_run_autoattack_computes_the_missing_cell_into_the_store(
    tmp_path, capsys, validate_entry_with_robustbench
):
    store = tmp_path / "store.sqlite"  # a copy: the committed fixture is never written
    shutil.copyfile(STORE, store)
    out = tmp_path / "entry.json"
    base = ["submit", "darts", "--store", str(store), "--out", str(out), "--dataset", "mnist"]
    assert main(base) == 2 and not out.exists()  # refused: no AutoAttack row for darts yet
    assert main([*base, "--run-autoattack", "--preset", "smoke"]) == 0
    entry = json.loads(out.read_text())
    validate_entry_with_robustbench(entry)
    with sqlite3.connect(store) as conn:
        rows = conn.execute(
            "SELECT accuracy, preset, error FROM results WHERE model = 'darts' "
            "AND attack = 'autoattack' AND preset = 'smoke'"
        ).fetchall()
    assert len(rows) == 1 and rows[0][2] is None
    assert entry["autoattack_acc"] == f"{rows[0][0]:.2f}"
    assert float(entry["autoattack_acc"]) <= float(entry["clean_acc"])


def test_a_capped_autoattack_is_never_a_standard_one(tmp_path):
    path = _with_autoattack_key(tmp_path, "version=", "iters=2,version=")  # the rehearsal's run
    with pytest.raises(UserError, match="no standard AutoAttack"):
        build_entry(path, "racl_published")  # the capped row is not AutoAttack
    entry = build_entry(path, "racl_published", rehearsal=True)
    assert entry["name"].startswith("REHEARSAL (not a result)")
    assert entry["footnote"].startswith(
        "REHEARSAL, NOT A RESULT: AutoAttack(capped at 2 iterations)"
    )
    with pytest.raises(UserError, match="no rehearsal"):  # and the rehearsal never takes a real one
        build_entry(STORE, "racl_published", rehearsal=True)


def test_capped_autoattack_parses_labels_and_refuses_bad_caps():
    from bench.attacks import parse_attack

    spec = parse_attack("autoattack(iters=2)", eps=0.3, dataset="mnist")
    assert "iters=2" in spec.key() and spec.label() == "AutoAttack(capped at 2 iterations)"
    assert parse_attack("autoattack", eps=0.3, dataset="mnist").label() == "AutoAttack"
    for bad in ("autoattack(iters=0)", "autoattack(iters=1.5)", "autoattack(iters=True)"):
        with pytest.raises(UserError, match="iters"):
            parse_attack(bad, eps=0.3, dataset="mnist")


def test_the_cap_reaches_every_member_of_the_original_code():
    """On a model no member can fool (each runs to its end): the capped run calls it about a
    hundred times, the standard one thousands (APGD-T 9 x 100, FAB-T, Square's 5,000 queries)."""
    import torch
    from torch import nn

    from bench.attacks import build_attack, parse_attack

    calls = {"n": 0}

    class Robust(nn.Module):  # class 0 by a margin of 10 whatever the input
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(
                1e-3 * torch.randn(10, 16, generator=torch.Generator().manual_seed(0))
            )

        def forward(self, x):  # noqa: ANN001, ANN202
            calls["n"] += 1
            margin = torch.zeros(len(x), 10)
            margin[:, 0] = 10.0
            return margin + x.flatten(1) @ self.w.T

    x, y = torch.rand(2, 1, 4, 4), torch.zeros(2, dtype=torch.long)
    counts = {}
    for text in ("autoattack(iters=2)", "autoattack"):
        calls["n"] = 0
        x_adv = build_attack(parse_attack(text, eps=0.3, dataset="mnist"))(Robust().eval(), x, y)
        assert (x_adv - x).abs().max() <= 0.3 + 1e-6
        counts[text] = calls["n"]
    assert 0 < counts["autoattack(iters=2)"] <= 300 < 3000 < counts["autoattack"], counts
