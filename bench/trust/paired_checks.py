"""Trust checks on paired per-sample outcomes and on the indicators of attack failure.

Every check here can fail: each compares two evaluations of the same images (their stored
per-sample bits, or the counts of the indicator run) and flags a difference only beyond sampling
noise (:mod:`bench.trust.exact_tests`), or an indicator triggered on more than a stated share of
images.

- ``robust_le_clean``: the attack's accuracy over ALL images of the indicator subset (clean
  mistakes attacked too, each judged on its own adversarial point) above the clean accuracy;
- ``eps_monotone``: independent white-box runs of one attack at two budgets (the eps-check
  cells): accuracy at the larger budget above the smaller one;
- ``autoattack_gap``: an AutoAttack-family cell (the gap check's APGD-CE + APGD-T, or the
  standard AutoAttack) below the suite's PGD at the same budget on the same images;
- ``indicator:<name>``: an indicator of attack failure (:mod:`bench.trust.indicators`) on more than
  5% of the examined images (and at least 2).

Rules and numbers: docs/decisions/trust.md.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from bench.results.format import unpack_per_sample
from bench.results.names import INDICATORS, attack_name
from bench.trust.exact_tests import Paired, paired
from core.enums import EvalKind

Row = Mapping[str, Any]
INDICATOR_SHARE = 0.05  # an indicator fails a cell above this share of the examined images ...
INDICATOR_MIN = 2  # ... and on at least this many of them
_PREFIX = re.compile(r"^test\[:(\d+)\]$")
Outcome = tuple[int, list[str], str]


def bits(row: Row) -> np.ndarray | None:
    """The stored per-sample correctness of a row (packed bytes or an array), or None."""
    value = row.get("per_sample")
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return unpack_per_sample(bytes(value), int(row["n"]))
    return np.asarray(value, dtype=bool)


def common(a: Row, b: Row) -> tuple[np.ndarray, np.ndarray] | None:
    """Bits of two rows on their common images: the same slice, or the shorter of two prefix
    slices ``test[:n]`` (the first images of the test set), else None."""
    bits_a, bits_b = bits(a), bits(b)
    if bits_a is None or bits_b is None:
        return None
    if a["data_slice"] == b["data_slice"]:
        return bits_a, bits_b
    pa, pb = _PREFIX.match(str(a["data_slice"])), _PREFIX.match(str(b["data_slice"]))
    if pa is None or pb is None:
        return None
    n = min(len(bits_a), len(bits_b))
    return bits_a[:n], bits_b[:n]


def _pct(values: np.ndarray) -> float:
    return 100.0 * float(values.mean()) if len(values) else 0.0


def label(row: Row) -> str:
    """``PGD-20 eps=0.3`` for a result or indicator row."""
    return f"{attack_name(row)} eps={float(row['eps']):.4g}" if row.get("eps") is not None else ""


def _best_pair(lows: list[Row], highs: list[Row]) -> tuple[Row, Row, tuple] | None:
    best = None
    for lo in lows:
        for hi in highs:
            pair = common(lo, hi)
            if pair is not None and (best is None or len(pair[0]) > len(best[2][0])):
                best = (lo, hi, pair)
    return best


def _step_ratio(row: Row) -> float | None:
    if row.get("step_size") is None or not row.get("eps"):
        return None
    return round(row["step_size"] / row["eps"], 4)


def eps_monotone(rows: list[Row], indicators: list[Row]) -> Outcome:
    """Independent white-box runs of one attack at adjacent budgets: accuracy at the larger
    budget significantly above the smaller one on the same images."""
    groups: dict[tuple, dict[float, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["kind"] == EvalKind.WHITEBOX and r.get("eps") is not None and bits(r) is not None:
            key = (r["attack"], r.get("steps"), _step_ratio(r), r.get("norm"))
            groups[key][round(float(r["eps"]), 6)].append(r)
    compared, bad = 0, []
    for by_eps in groups.values():
        budgets = sorted(by_eps)
        for small, large in zip(budgets, budgets[1:], strict=False):
            found = _best_pair(by_eps[small], by_eps[large])
            if found is None:
                continue
            lo, hi, (lo_bits, hi_bits) = found
            compared += 1
            test = paired(hi_bits, lo_bits)
            if test.significant():
                bad.append(
                    f"{label(hi)}: {_pct(hi_bits):.1f}% > {_pct(lo_bits):.1f}% at eps={small:.4g} "
                    f"on the same {test.n} images ({test.text()})"
                )
    return compared, bad, ""


def autoattack_gap(rows: list[Row], indicators: list[Row]) -> Outcome:
    """An AutoAttack-family cell below the suite's PGD at the same budget, same images."""
    white = [r for r in rows if r["kind"] == EvalKind.WHITEBOX and bits(r) is not None]
    gaps, bad, compared = [], [], 0
    for aa in (r for r in white if r["attack"] == "autoattack"):
        for pgd in (r for r in white if r["attack"] == "pgd"):
            same = abs(float(pgd["eps"]) - float(aa["eps"])) < 1e-6 and pgd["norm"] == aa["norm"]
            pair = common(pgd, aa) if same else None
            if pair is None:
                continue
            compared += 1
            test = paired(*pair)
            text = (
                f"{label(aa)} {_pct(pair[1]):.1f}% vs {label(pgd)} {_pct(pair[0]):.1f}% "
                f"on {test.n} images: gap {test.gap:+.1f} points ({test.text()})"
            )
            gaps.append(text)
            if test.significant():
                bad.append(text)
    return compared, bad, "; ".join(gaps[:2])


def robust_le_clean(rows: list[Row], indicators: list[Row]) -> Outcome:
    """The attack's accuracy over every image of the indicator subset (clean mistakes attacked
    too) significantly above the clean accuracy on those images."""
    compared, bad = 0, []
    for ind in indicators:
        counts = ind["counts"].get("paired")
        if not counts:
            continue
        compared += 1
        test = Paired(int(counts["n"]), int(counts["repaired"]), int(counts["broken"]))
        if test.significant():
            clean = 100.0 * counts["clean"] / max(counts["n"], 1)
            bad.append(f"{label(ind)}: attacked {clean + test.gap:.1f}% > clean {clean:.1f}% "
                       f"over all {test.n} images ({test.text()})")  # fmt: skip
    return compared, bad, ""


def indicator_triggered(value: object) -> bool:
    """Whether an indicator's ``[hits, examined]`` of one cell fails it: more than
    :data:`INDICATOR_SHARE` of the examined images and at least :data:`INDICATOR_MIN`."""
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not value[1]:
        return False
    hit, seen = int(value[0]), int(value[1])
    return hit >= INDICATOR_MIN and hit > INDICATOR_SHARE * seen


def indicator_check(name: str):  # noqa: ANN201 - a check function of CHECKS
    """The check of one indicator: triggered on > 5% (and >= 2) of a cell's examined images."""

    def check(rows: list[Row], indicators: list[Row]) -> Outcome:
        compared, bad = 0, []
        for ind in indicators:
            value = ind["counts"].get(name)
            if not value or not value[1]:
                continue
            compared += 1
            hit, seen = int(value[0]), int(value[1])
            if indicator_triggered(value):
                bad.append(f"{label(ind)}: {hit}/{seen} images ({100.0 * hit / seen:.1f}%)")
        return compared, bad, ""

    check.__doc__ = f"Indicator {name}: triggered on more than 5% of the examined images."
    return check


INDICATOR_CHECKS = {f"indicator:{name}": indicator_check(name) for name in INDICATORS}


def unconstrained_counts(attacked: Row, clean_rows: Iterable[Row]) -> list[int] | None:
    """``[survivors, clean-correct]`` of the large-budget trust cell: the images it leaves
    correct among those the model classifies correctly (clean bits of a covering slice)."""
    adv = bits(attacked)
    for clean in clean_rows:
        pair = common(clean, attacked) if adv is not None else None
        if pair is not None and len(pair[0]) == len(adv):
            return [int(pair[1].sum()), int(pair[0].sum())]
    return None
