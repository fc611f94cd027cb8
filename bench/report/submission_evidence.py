"""What a leaderboard entry says beyond the AutoAttack number, each read from the store.

- ``reported``: the number the paper claims (RobustBench's meaning of the field). A user passes
  it (``--reported``); for a zoo model evaluated in a setting the RACL paper's Table 1 covers
  (CIFAR-10, L-inf 8/255, PGD-AT) it is that table's strongest attack (PGD-20); otherwise the
  field repeats our AutoAttack number and the footnote says so.
- ``unreliable``: any trust check or indicator of attack failure whose latest verdict for the
  model (dataset, training) fails; the footnote names them.
- ``external``: AutoAttack together with every other white-box attack the store ran on the same
  checkpoint, images and budget (an image counts as robust only if it withstood all of them),
  when that is below AutoAttack alone.
- marks: fewer images than the full test set, and an eps that is not the leaderboard's.

Reasons: docs/decisions/submission.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report.outcomes import decode_bits
from bench.report.paper import NameMap, load_paper_results
from bench.report.selection import latest_failures
from bench.report.table_model import format_eps
from bench.results.names import attack_name
from core.datasets import DATASETS
from core.errors import UserError

EPS_TOL = 1e-6
REPORTED_RE = re.compile(r"^\d{1,3}(\.\d{1,2})?$")
# the RobustBench leaderboards' budgets, per (dataset, threat model)
LEADERBOARD_EPS = {
    ("cifar10", "Linf"): 8 / 255,
    ("cifar10", "L2"): 0.5,
    ("cifar100", "Linf"): 8 / 255,
    ("imagenet", "Linf"): 4 / 255,
}


@dataclass(frozen=True)
class Reported:
    """The ``reported`` field and where it comes from (``ours``: our own AutoAttack number)."""

    value: str
    source: str
    ours: bool


@dataclass(frozen=True)
class External:
    """A stronger evaluation than AutoAttack alone on the same images."""

    accuracy: float
    attacks: tuple[str, ...]
    n: int


def check_reported(text: str) -> str:
    """``--reported`` as the paper writes it (a percentage like ``62.5``), else a UserError."""
    value = str(text).strip()
    if not REPORTED_RE.match(value) or float(value) > 100:
        raise UserError(f"--reported must be a percentage like '62.5' or '53.29', got {text!r}")
    return value


def reported_field(
    given: str | None, model: str, dataset: str, eps: float, norm: str, training: str, ours: str
) -> Reported:
    """``reported``: the user's number, else the paper's Table 1 where it applies, else ours."""
    if given is not None:
        return Reported(check_reported(given), "the paper's own number (--reported)", False)
    paper = _paper_table1(model, dataset, eps, norm, training)
    if paper is not None:
        return paper
    return Reported(ours, "our own AutoAttack measurement (no paper number for this setting)", True)


def _paper_table1(
    model: str, dataset: str, eps: float, norm: str, training: str
) -> Reported | None:
    table = load_paper_results()["table1_with_at"]
    if (dataset, norm, training) != (table["dataset"], "linf", "pgd_at"):
        return None
    if abs(eps - 8 / 255) > EPS_TOL:
        return None
    row = table["rows"].get(NameMap().paper_row(model))
    column = table["columns"].index("PGD20")
    if row is None or row[column] is None:
        return None
    source = (
        "the RACL paper's Table 1 (PGD-AT), PGD-20: its strongest attack; it reports no AutoAttack"
    )
    return Reported(f"{row[column]:g}", source, False)


def failing_checks(trust: pd.DataFrame, model: str, dataset: str, training: str) -> list[str]:
    """Names of the trust checks and indicators whose latest verdict fails for the checkpoint's
    model, dataset and training (a check stored without a scope field applies to all)."""
    failures = latest_failures(trust)
    if failures.empty:
        return []
    hit = (
        failures["model"].isin(["", model])
        & failures["dataset"].isin(["", dataset])
        & failures["training"].isin(["", training])
    )
    return sorted(set(failures.loc[hit, "check_name"].astype(str)))


def external_evaluation(results: pd.DataFrame, aa_row: pd.Series) -> External | None:
    """AutoAttack and every other white-box attack on the same checkpoint, images and budget;
    None when they fool no image AutoAttack did not (or the bits are missing)."""
    aa_bits = _bits(aa_row)
    if aa_bits is None:
        return None
    same = results[
        (results["checkpoint"] == aa_row["checkpoint"])
        & (results["kind"] == "whitebox")
        & (results["data_slice"] == aa_row["data_slice"])
        & (results["n"] == aa_row["n"])
        & ((results["eps"] - float(aa_row["eps"])).abs() <= EPS_TOL)
        & (results["norm"].fillna("linf").str.lower() == str(aa_row["norm"] or "linf").lower())
        & (results["key"] != aa_row["key"])
    ]
    robust, used = aa_bits.copy(), []
    for _, row in same.sort_values("key").iterrows():
        bits = _bits(row)
        if bits is None:
            continue
        if (robust & ~bits).any():
            used.append(attack_name(row))
        robust &= bits
    if robust.sum() >= aa_bits.sum():
        return None
    accuracy = 100.0 * float(robust.sum()) / len(robust)
    return External(accuracy, tuple(sorted(set(used))), len(robust))


def _bits(row: pd.Series) -> np.ndarray | None:
    bits = decode_bits(row["per_sample"], int(row["n"]), int(row["correct"]))
    return None if bits is None else bits.astype(bool)


def subset_note(dataset: str, n: int, data_slice: str) -> str | None:
    """A mark when the images are fewer than the dataset's full test set."""
    info = next((d for d in DATASETS.values() if d.name == dataset), None)
    if info is None or n >= info.test_size:
        return None
    which = "a seeded subset of" if "seed=" in data_slice else "the first"
    return (
        f"Evaluated on {which} {n} of the {info.test_size} test images, not the full test set "
        "the leaderboard uses."
    )


def eps_note(dataset: str, threat_model: str, eps: float) -> str | None:
    """A mark when eps is not the leaderboard's budget for the dataset and threat model."""
    standard = LEADERBOARD_EPS.get((dataset, threat_model))
    if standard is None or abs(eps - standard) <= EPS_TOL:
        return None
    return (
        f"eps {format_eps(eps)} is not the {dataset} {threat_model} leaderboard's "
        f"{format_eps(standard)}."
    )
