"""Trust checks: invariants any sound robustness evaluation satisfies, run over stored rows.

Following the sanity checks of Carlini et al. 2019 ("On Evaluating Adversarial Robustness",
section 5) and Athalye et al. 2018 (obfuscated gradients): accuracy does not rise (beyond noise)
with the number of PGD iterations; an iterative attack is at least as strong as a single step; a
transfer (black-box) attack is no stronger than the white-box attack of the same kind on the
target; a large budget (eps 0.5, enough to turn any image into a uniform grey one) drives
accuracy near zero. The checks on paired per-sample outcomes (robust accuracy vs clean over all
images, independent runs at increasing budgets, the AutoAttack gap) and the indicators of attack
failure live in :mod:`bench.trust.paired_checks`.

Each check over one (model, dataset, training, checkpoint) group gives a :class:`TrustResult`; a
failing one is stored in the ``trust`` table and shown in the summary, never dropped. The row
checks here tolerate one sample (100/n points), ``max(one sample, 1 point)`` for the iteration
sweep (plain PGD iterates, not a running best). Rules and numbers: docs/decisions/trust.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.trust import paired_checks
from bench.trust.randomness import randomized_forward
from core.enums import EvalKind

LARGE_EPS = 0.5
NEAR_ZERO_ACCURACY = 10.0
NUM_CLASSES = {"cifar100": 100}

Row = Mapping[str, Any]


@dataclass(frozen=True)
class TrustResult:
    """Verdict of one check for one model (checkpoint group)."""

    check: str
    model: str
    passed: bool
    detail: str
    dataset: str | None = None
    training: str | None = None


def _ok(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if r.get("error") is None and r.get("accuracy") is not None]


def _one_sample(row: Row) -> float:
    return 100.0 / max(int(row.get("n") or 1), 1)


def _name(row: Row) -> str:
    steps = f"-{row['steps']}" if row.get("steps") and row.get("attack") != "fgsm" else ""
    eps = f" eps={row['eps']:.4g}" if row.get("eps") is not None else ""
    src = f" from {row['source']}" if row.get("source") else ""
    return f"{row['kind']} {row.get('attack') or 'clean'}{steps}{eps}{src}"


def _summarise(violations: list[str], compared: int, note: str = "") -> tuple[bool, str]:
    if violations:
        more = f" (+{len(violations) - 3} more)" if len(violations) > 3 else ""
        return False, "; ".join(violations[:3]) + more
    ok = f"{compared} comparison{'s' if compared != 1 else ''} ok"
    return True, f"{ok}: {note}" if note else ok


def _monotone(rows: list[Row], axis: str, tol: Callable[[Row], float]) -> tuple[int, list[str]]:
    compared, bad = 0, []
    ordered = sorted(rows, key=lambda r: r[axis])
    for prev, cur in zip(ordered, ordered[1:], strict=False):
        compared += 1
        if cur["accuracy"] > prev["accuracy"] + tol(cur) + 1e-9:
            bad.append(
                f"{_name(cur)}: {cur['accuracy']:.2f}% > {prev['accuracy']:.2f}% at "
                f"{axis}={prev[axis]:.4g}"
            )
    return compared, bad


def steps_monotone(rows: list[Row]) -> tuple[int, list[str]]:
    """Accuracy non-increasing in PGD iterations within each step sweep (up to noise)."""
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:
        if r["kind"] == EvalKind.STEP_SWEEP:
            key = (r["attack"], round(r["eps"], 6), r.get("step_size"), r["data_slice"])
            groups[key].append(r)
    compared, bad = 0, []
    for group in groups.values():
        c, b = _monotone(group, "steps", lambda r: max(_one_sample(r), 1.0))
        compared, bad = compared + c, bad + b
    return compared, bad


def pgd_le_fgsm(rows: list[Row]) -> tuple[int, list[str]]:
    """PGD accuracy <= FGSM accuracy at the same eps, slice and kind (white-box or eps sweep)."""
    fgsm = {
        (r["kind"], round(r["eps"], 6), r["data_slice"]): r
        for r in rows
        if r["attack"] == "fgsm" and r["kind"] in (EvalKind.WHITEBOX, EvalKind.EPS_SWEEP)
    }
    compared, bad = 0, []
    for r in rows:
        if r["attack"] != "pgd" or r["kind"] not in (EvalKind.WHITEBOX, EvalKind.EPS_SWEEP):
            continue
        ref = fgsm.get((r["kind"], round(r["eps"], 6), r["data_slice"]))
        if ref is None:
            continue
        compared += 1
        if r["accuracy"] > ref["accuracy"] + _one_sample(r) + 1e-9:
            bad.append(f"{_name(r)}: {r['accuracy']:.2f}% > FGSM {ref['accuracy']:.2f}%")
    return compared, bad


def transfer_ge_whitebox(rows: list[Row]) -> tuple[int, list[str]]:
    """A transferred attack onto this model is no stronger than the same attack white-box."""
    white = {(r["attack_key"], r["data_slice"]): r for r in rows if r["kind"] == EvalKind.WHITEBOX}
    compared, bad = 0, []
    for r in rows:
        if r["kind"] != EvalKind.TRANSFER:
            continue
        ref = white.get((r["attack_key"], r["data_slice"]))
        if ref is None:
            continue
        compared += 1
        if r["accuracy"] + _one_sample(r) + 1e-9 < ref["accuracy"]:
            bad.append(f"{_name(r)}: {r['accuracy']:.2f}% < white-box {ref['accuracy']:.2f}%")
    return compared, bad


def large_eps_near_zero(rows: list[Row]) -> tuple[int, list[str]]:
    """White-box accuracy at eps >= 0.5 is near zero (<= max(10%, chance) + one sample)."""
    compared, bad = 0, []
    for r in rows:
        if r["kind"] != EvalKind.WHITEBOX or (r.get("eps") or 0.0) < LARGE_EPS - 1e-9:
            continue
        compared += 1
        chance = 100.0 / NUM_CLASSES.get(str(r.get("dataset")), 10)
        limit = max(NEAR_ZERO_ACCURACY, chance) + _one_sample(r)
        if r["accuracy"] > limit + 1e-9:
            bad.append(f"{_name(r)}: {r['accuracy']:.2f}% > {limit:.2f}% (gradient masking?)")
    return compared, bad


def _rows_only(fn: Callable[[list[Row]], tuple[int, list[str]]]) -> Check:
    def check(rows: list[Row], indicators: list[Row]) -> tuple[int, list[str], str]:
        return (*fn(rows), "")

    check.__doc__ = fn.__doc__
    return check


Check = Callable[[list[Row], list[Row]], tuple[int, list[str], str]]
CHECKS: dict[str, Check] = {
    "robust_le_clean": paired_checks.robust_le_clean,
    "eps_monotone": paired_checks.eps_monotone,
    "steps_monotone": _rows_only(steps_monotone),
    "pgd_le_fgsm": _rows_only(pgd_le_fgsm),
    "transfer_ge_whitebox": _rows_only(transfer_ge_whitebox),
    "large_eps_near_zero": _rows_only(large_eps_near_zero),
    "autoattack_gap": paired_checks.autoattack_gap,
    "randomized_forward": randomized_forward,
    **paired_checks.INDICATOR_CHECKS,
}


def _key(r: Row) -> tuple[str, str, str, str]:
    return (str(r["model"]), str(r["dataset"]), str(r["training"]), str(r.get("checkpoint")))


def run_checks(rows: Iterable[Row], indicators: Iterable[Row] = ()) -> list[TrustResult]:
    """Every check over every (model, dataset, training, checkpoint) group found in ``rows``
    and in the indicator rows (``bench.results.store.ResultStore.indicator_rows``).

    A check with nothing to compare in a group (e.g. no eps sweep was run) gives no result.
    """
    groups: dict[tuple[str, str, str, str], list[Row]] = defaultdict(list)
    found: dict[tuple[str, str, str, str], list[Row]] = defaultdict(list)
    for r in _ok(rows):
        groups[_key(r)].append(r)
    for ind in indicators:
        found[_key(ind)].append(ind)
    results = []
    for key in sorted(set(groups) | set(found)):
        model, dataset, training, _ckpt = key
        for check, fn in CHECKS.items():
            compared, bad, note = fn(groups.get(key, []), found.get(key, []))
            if compared == 0:
                continue
            passed, detail = _summarise(bad, compared, note)
            results.append(TrustResult(check, model, passed, detail, dataset, training))
    return results
