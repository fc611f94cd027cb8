"""The honest fields of a leaderboard entry (``reported``, ``unreliable``, ``external``, the
footnote's marks) and its validation against the leaderboard repository's current field set and
robustbench 1.1.1's ModelInfo: each check shown to fire and to pass."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from bench.report import SubmissionMeta, build_entry
from bench.report.submission_checks import (
    leaderboard_check,
    leaderboard_fields,
    robustbench_check,
    validate_entry,
)
from bench.report.submission_evidence import eps_note, subset_note
from bench.results.format import pack_per_sample, unpack_per_sample
from core.errors import UserError

STORE = Path(__file__).parent / "fixtures" / "report_store.sqlite"
AA_KEY = "dc51aa7de8e4fbd6d68c99f10f92f634ac3a5dde96d7b08b5d5b9ca1fca9b866"
PGD_KEY = "0d92effe78ad9812880cb717309caf9a71112882bee2a2c42a972513aeb39989"


def _copy(tmp_path: Path, *sql: tuple[str, tuple]) -> Path:
    path = tmp_path / "store.sqlite"
    shutil.copyfile(STORE, path)
    with sqlite3.connect(path) as conn:
        for statement, params in sql:
            conn.execute(statement, params)
    conn.close()
    return path


def test_a_failing_trust_check_marks_the_entry_unreliable(tmp_path):
    assert build_entry(STORE, "racl_published")["unreliable"] is False  # its check passes
    row = "3, 'indicator:silent_success', 'racl_published', 'mnist', 'pgd_at', '9 of 32', 0, 0"
    path = _copy(tmp_path, (f"INSERT INTO trust VALUES ({row})", ()))
    entry = build_entry(path, "racl_published")
    assert entry["unreliable"] is True
    assert "failing trust checks indicator:silent_success" in entry["footnote"]
    other = _copy(tmp_path, ("INSERT INTO trust VALUES (3, 'eps_monotone', 'darts', 'mnist', "
                             "'pgd_at', 'x', 0, 0)", ()))  # fmt: skip
    assert build_entry(other, "racl_published")["unreliable"] is False  # another model's check


def test_reported_is_the_papers_number_or_says_it_is_ours(tmp_path):
    entry = build_entry(STORE, "racl_published", meta=SubmissionMeta(reported="53.29"))
    assert entry["reported"] == "53.29" and "the paper's own number" in entry["footnote"]
    with pytest.raises(UserError, match="--reported must be a percentage"):
        build_entry(STORE, "racl_published", meta=SubmissionMeta(reported="about 50"))
    cifar = _copy(tmp_path, ("UPDATE results SET dataset = 'cifar10', eps = CASE WHEN eps "
                             "IS NULL THEN NULL ELSE 8.0 / 255 END", ()))  # fmt: skip
    entry = build_entry(cifar, "racl_published")  # the paper's Table 1 covers this setting
    assert entry["reported"] == "49.34" and "Table 1 (PGD-AT), PGD-20" in entry["footnote"]
    assert entry["eps"] == "8/255" and "not the cifar10" not in entry["footnote"]
    assert "our own AutoAttack" in build_entry(STORE, "racl_published")["footnote"]


def test_external_when_another_attack_fools_what_autoattack_missed(tmp_path):
    assert "external" not in build_entry(STORE, "racl_published")
    with sqlite3.connect(STORE) as conn:
        aa = conn.execute("SELECT per_sample FROM results WHERE key = ?", (AA_KEY,)).fetchone()
    conn.close()
    bits = unpack_per_sample(aa[0], 100).astype(bool)
    stronger = bits.copy()
    stronger[np.flatnonzero(bits)[:3]] = False  # PGD fools three images AutoAttack did not
    path = _copy(tmp_path, ("UPDATE results SET per_sample = ?, correct = ?, accuracy = ? "
                            "WHERE key = ?", (pack_per_sample(stronger), int(stronger.sum()),
                                              float(stronger.sum()), PGD_KEY)))  # fmt: skip
    entry = build_entry(path, "racl_published")
    assert entry["autoattack_acc"] == "86.00" and entry["external"] == "83.00"
    assert "83.00% robust accuracy is due to AutoAttack together with PGD-20" in entry["footnote"]
    validate_entry(entry)
    assert leaderboard_check(entry).startswith("matches the leaderboard's model_info fields")


def test_marks_for_a_subset_and_a_budget_that_is_not_the_leaderboards():
    entry = build_entry(STORE, "racl_published")
    assert "Evaluated on the first 100 of the 10000 test images" in entry["footnote"]
    assert subset_note("mnist", 10000, "test[:10000]") is None  # the full test set: no mark
    assert "a seeded subset of 500" in subset_note("cifar10", 500, "test[seed=3,n=500]")
    assert eps_note("cifar10", "Linf", 0.031) == (
        "eps 0.031 is not the cifar10 Linf leaderboard's 8/255."
    )
    assert eps_note("cifar10", "Linf", 8 / 255) is None
    assert eps_note("mnist", "Linf", 0.3) is None  # no MNIST leaderboard to differ from


def test_the_leaderboard_field_set_is_data_with_its_commit():
    data = leaderboard_fields()
    assert len(data["commit"]) == 40 and data["repository"].endswith("RobustBench/robustbench")
    fields = data["fields"]
    assert {"unreliable", "external"} <= set(fields) and not fields["external"]["required"]
    assert fields["reported"]["required"] and fields["reported"]["types"] == ["string"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"venue": None}, "missing \\['venue'\\]"),
        ({"robust_acc": "1.00"}, "unknown \\['robust_acc'\\]"),
        ({"unreliable": "no"}, "'unreliable' is str"),
        ({"number_forward_passes": 1.0}, "'number_forward_passes' is float"),
    ],
)
def test_the_leaderboard_field_set_rejects_what_its_entries_never_hold(change, message):
    entry = build_entry(STORE, "racl_published")
    assert leaderboard_check(entry).endswith(f"(RobustBench {leaderboard_fields()['commit'][:7]})")
    for name, value in change.items():
        if value is None:
            del entry[name]
        else:
            entry[name] = value
    with pytest.raises(UserError, match=message):
        leaderboard_check(entry)


def test_robustbench_release_checks_the_fields_it_knows(robustbench_required):
    entry = {**build_entry(STORE, "racl_published"), "unreliable": True, "external": "80.00"}
    assert robustbench_check(entry, required=True) == "validated with robustbench.utils.ModelInfo"
    with pytest.raises(UserError, match="robustbench rejects the entry"):
        robustbench_check({**entry, "robust_acc": "1.00"})  # neither release nor repository


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("reported", "62.555", "'reported'"), ("external", "90.00", "below autoattack_acc"),
     ("unreliable", 1, "boolean")],
)  # fmt: skip
def test_own_validation_of_the_new_fields(field, value, message):
    entry = build_entry(STORE, "racl_published")
    validate_entry({**entry, "reported": "62.5", "external": "80.00"})  # the control
    with pytest.raises(UserError, match=message):
        validate_entry({**entry, field: value})
