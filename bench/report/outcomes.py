"""What one measured cell holds per training seed: the count, the images and the per-sample
correctness bits (:class:`SeedResult`), and the spread of a cell over its seeds (:class:`Spread`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.report.stats import wilson
from bench.results.format import unpack_per_sample


@dataclass(frozen=True, eq=False)
class SeedResult:
    """One seed's row of a cell: ``correct`` of ``n`` images on ``data_slice``; ``bits`` the
    per-sample outcomes in image order (None when the store has none or they disagree with
    ``correct``)."""

    seed: int
    correct: int
    n: int
    data_slice: str | None
    bits: np.ndarray | None = None

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.n

    def interval(self) -> tuple[float, float] | None:
        """The 95 % Wilson interval of the accuracy, in percent (None for an impossible count,
        ``correct`` outside ``[0, n]``)."""
        if not 0 <= self.correct <= self.n:
            return None
        lo, hi = wilson(self.correct, self.n)
        return 100.0 * lo, 100.0 * hi


def decode_bits(blob: object, n: int, correct: int) -> np.ndarray | None:
    """The stored per-sample vector, or None when absent, truncated or not summing to
    ``correct`` (a vector that disagrees with its count is not used for paired tests)."""
    if not isinstance(blob, (bytes, bytearray, memoryview)) or n <= 0:
        return None
    if len(blob) != (n + 7) // 8:
        return None
    bits = unpack_per_sample(bytes(blob), n)
    return bits if int(bits.sum()) == correct else None


@dataclass(frozen=True)
class Spread:
    """A cell over ``k`` seeds: mean and sample standard deviation of the accuracies (%)."""

    k: int
    mean: float
    sd: float
    low: float
    high: float

    def text(self) -> str:
        return f"{self.mean:.1f} ± {self.sd:.1f} over {self.k} seeds"


def spread(results: tuple[SeedResult, ...]) -> Spread | None:
    """The spread over seeds (None for fewer than two)."""
    if len(results) < 2:
        return None
    acc = [r.accuracy for r in results]
    mean = sum(acc) / len(acc)
    sd = math.sqrt(sum((a - mean) ** 2 for a in acc) / (len(acc) - 1))
    return Spread(len(acc), mean, sd, min(acc), max(acc))
