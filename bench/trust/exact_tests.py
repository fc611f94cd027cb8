"""Exact tests on paired per-sample outcomes, for the trust checks that compare two attacks or two
budgets on the same images.

Two evaluations of the same images disagree on some samples (the discordant pairs); the exact
one-sided McNemar test asks whether one direction outnumbers the other beyond chance. The
thresholds and why: docs/decisions/trust.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.01  # one-sided level of every paired test
MIN_GAP_POINTS = 1.0  # a significant gap must also be at least this many points


def binomial_tail(k: int, n: int, p: float = 0.5) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)`` (exact; 1.0 for ``k <= 0``)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def mcnemar_greater(b: int, c: int) -> float:
    """Exact one-sided McNemar p-value that ``b`` discordant pairs outnumber ``c`` by more than
    chance: ``P(X >= b)``, ``X ~ Binomial(b + c, 1/2)`` (1.0 without discordant pairs)."""
    return binomial_tail(b, b + c) if b + c else 1.0


@dataclass(frozen=True)
class Paired:
    """Two correctness vectors on the same ``n`` images: ``b`` = right under A only, ``c`` =
    right under B only. ``gap`` = accuracy(A) - accuracy(B) in points."""

    n: int
    b: int
    c: int

    @property
    def gap(self) -> float:
        return 100.0 * (self.b - self.c) / self.n if self.n else 0.0

    @property
    def p_value(self) -> float:
        """One-sided p-value that A's accuracy exceeds B's."""
        return mcnemar_greater(self.b, self.c)

    def significant(self, min_points: float = MIN_GAP_POINTS) -> bool:
        """A above B beyond sampling noise (p < ALPHA) and by at least ``min_points``."""
        return self.p_value < ALPHA and self.gap >= min_points

    def text(self) -> str:
        return f"{self.b} vs {self.c} discordant of {self.n}, p={self.p_value:.2g}"


def paired(a: Sequence[bool] | np.ndarray, b: Sequence[bool] | np.ndarray) -> Paired:
    """Discordant counts of two equal-length correctness vectors."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired vectors differ in length: {a.shape} vs {b.shape}")
    return Paired(int(a.size), int((a & ~b).sum()), int((b & ~a).sum()))
