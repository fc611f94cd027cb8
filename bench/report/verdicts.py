"""Verdicts of the paper's claims: each claim is a set of comparisons "A is more accurate than B"
on the same test images, judged with McNemar's exact test per training seed; the images an
inconclusive claim would need. The rules and their reasons: docs/decisions/statistics.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.report.outcomes import SeedResult
from bench.report.stats import ALPHA, McNemar, mcnemar_exact, mcnemar_sample_size
from bench.report.table_model import Cell

HELD, NOT_HELD, INCONCLUSIVE, NOT_RUN = "held", "not held", "inconclusive", "not run"
_RANK = {NOT_HELD: 0, INCONCLUSIVE: 1, HELD: 2}


@dataclass(frozen=True)
class Comparison:
    """``a`` should be more accurate than ``b`` in ``where`` (the paper's reading: strictly, or
    ties allowed when ``strict`` is false)."""

    where: str
    b_name: str
    a: Cell
    b: Cell
    strict: bool = True


@dataclass(frozen=True)
class Tested:
    """A comparison with its McNemar test per paired seed and its verdict."""

    comparison: Comparison
    tests: tuple[tuple[int, McNemar], ...]
    verdict: str

    def seeds_text(self) -> str:
        """``held in 1/3 seeds, reversed in 1/3`` (significant at alpha, either direction)."""
        held = sum(t.a_only > t.b_only and t.p < ALPHA for _, t in self.tests)
        against = sum(t.b_only > t.a_only and t.p < ALPHA for _, t in self.tests)
        k = len(self.tests)
        return f"held in {held}/{k} seeds, reversed in {against}/{k}"


@dataclass(frozen=True)
class Judged:
    verdict: str
    tested: tuple[Tested, ...]


def paired_seeds(a: Cell, b: Cell) -> list[tuple[int, SeedResult, SeedResult]]:
    """Seeds where both cells have per-sample outcomes on the same images."""
    theirs = {r.seed: r for r in b.seeds}
    out = []
    for mine in a.seeds:
        other = theirs.get(mine.seed)
        if other is None or mine.bits is None or other.bits is None:
            continue
        if mine.data_slice == other.data_slice and mine.n == other.n:
            out.append((mine.seed, mine, other))
    return out


def _test(comp: Comparison, alpha: float, against_alpha: float) -> Tested:
    """Held: significant for ``a`` in every seed; not held: significant for ``b`` in any seed
    at ``against_alpha``; otherwise (or without paired outcomes) inconclusive."""
    tests = tuple((s, mcnemar_exact(x.bits, y.bits)) for s, x, y in paired_seeds(comp.a, comp.b))
    if any(t.b_only > t.a_only and t.p < against_alpha for _, t in tests):
        verdict = NOT_HELD
    elif tests and all(t.a_only > t.b_only and t.p < alpha for _, t in tests):
        verdict = HELD
    else:
        verdict = INCONCLUSIVE
    return Tested(comp, tests, verdict)


def judge(comparisons: list[Comparison], alpha: float = ALPHA) -> Judged:
    """The claim's verdict on our numbers: held when every comparison is held, not held when any
    is significantly reversed (Bonferroni over the claim's tests), else inconclusive."""
    usable = [c for c in comparisons if c.a.ours is not None and c.b.ours is not None]
    if not usable:
        return Judged(NOT_RUN, ())
    tests = sum(max(1, len(paired_seeds(c.a, c.b))) for c in usable)
    tested = tuple(_test(c, alpha, alpha / tests) for c in usable)
    verdicts = {t.verdict for t in tested}
    if NOT_HELD in verdicts:
        return Judged(NOT_HELD, tested)
    return Judged(HELD if verdicts == {HELD} else INCONCLUSIVE, tested)


def paper_verdict(comparisons: list[Comparison]) -> str:
    """The same claim read on the paper's own numbers (a point comparison: no samples)."""
    pairs = [c for c in comparisons if c.a.paper is not None and c.b.paper is not None]
    if not pairs:
        return NOT_RUN
    ok = all(c.a.paper > c.b.paper if c.strict else c.a.paper >= c.b.paper for c in pairs)
    return HELD if ok else NOT_HELD


def _p_text(tested: Tested) -> str:
    if not tested.tests:
        return "no paired per-sample outcomes"
    ps = ["<0.001" if t.p < 0.001 else f"{t.p:.3f}" for _, t in tested.tests]
    if len(ps) == 1:
        return f"p{ps[0]}" if ps[0].startswith("<") else f"p={ps[0]}"
    return f"p by seed {'/'.join(ps)}, {tested.seeds_text()}"


def detail(judged: Judged) -> str:
    """Per place (column, source, budget), the weakest comparison: values and p-value(s)."""
    worst: dict[str, Tested] = {}
    for t in judged.tested:
        key = t.comparison.where
        known = worst.get(key)
        if known is None or _weakness(t) < _weakness(known):
            worst[key] = t
    parts = []
    for where, t in worst.items():
        c = t.comparison
        values = f"{c.a.ours:.1f} vs {c.b_name} {c.b.ours:.1f}"
        parts.append(f"{where}: {values} ({_p_text(t)})")
    return "; ".join(parts)


def _weakness(t: Tested) -> tuple[int, float]:
    p = max((test.p for _, test in t.tests), default=1.0)
    return _RANK[t.verdict], -p


def images_needed(judged: Judged) -> str:
    """For an inconclusive claim: test images per seed to detect the paper's gaps (80 % power,
    two-sided alpha), at our discordance; the comparison that needs the most decides."""
    if judged.verdict != INCONCLUSIVE:
        return "-"
    needs = [_need(t) for t in judged.tested if t.verdict == INCONCLUSIVE]
    needs = [n for n in needs if n is not None]
    if not needs:
        return "n/a (the paper gives no gap to detect)"
    hopeless = [text for n, text in needs if n is None]
    if hopeless:
        return hopeless[0]
    n, text = max(needs, key=lambda t: t[0])
    return f"~{n:,} ({text})"


def _need(t: Tested) -> tuple[int | None, str] | None:
    """(images, why) for one comparison; images None when no number of images can do it."""
    c = t.comparison
    if c.a.paper is None or c.b.paper is None:
        return None
    where = f"{c.where} vs {c.b_name}"
    gap = (c.a.paper - c.b.paper) / 100
    if gap <= 0:
        return None, f"none: the paper shows no gap at {where}"
    if not t.tests:
        return None, f"unknown: no paired outcomes at {where}"
    psi = sum(test.discordant / test.n for _, test in t.tests) / len(t.tests)
    if psi == 0 and all(v in (0.0, 100.0) for v in (c.a.ours, c.b.ours)):
        return None, f"none at this attack strength: both at {c.a.ours:.0f} % at {where}"
    n = mcnemar_sample_size(gap, psi)
    return n, f"{where}: paper gap {100 * gap:.1f} pts, discordance {100 * psi:.0f} %"
