"""The statistics behind the report: binomial intervals, McNemar's exact test, its sample size,
Kendall's tau-b vectorised over bootstrap resamples. Pure numpy/scipy, no store or table types.

Formulas and references: docs/decisions/statistics.md.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom, norm

from bench.trust.exact_tests import paired

ALPHA = 0.05  # significance level of every test in the report
CONFIDENCE = 0.95  # coverage of every interval in the report
POWER = 0.8  # power the sample sizes aim at
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 20240917  # fixed: a rebuilt report is byte-identical


def wilson(correct: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``correct / n`` (as fractions in [0, 1]).

    Wilson (1927), "Probable inference, the law of succession, and statistical inference".
    """
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n and n > 0, got {correct}/{n}")
    z = float(norm.ppf(0.5 + confidence / 2))
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class McNemar:
    """Paired outcomes of A and B on the same images: ``a_only`` = A right and B wrong,
    ``b_only`` = the reverse, ``p`` the two-sided exact p-value, ``n`` the images."""

    a_only: int
    b_only: int
    p: float
    n: int

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> McNemar:
    """McNemar's exact test on paired boolean outcomes (McNemar 1947).

    Under the null the discordant pairs split 1:1, so the test is the two-sided exact binomial
    test of ``a_only`` out of ``a_only + b_only`` with p = 1/2. No discordant pair gives p = 1.
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired outcomes need equal 1-d shapes, got {a.shape} and {b.shape}")
    d = paired(a, b)  # the discordant counts, as the trust checks count them
    return McNemar(d.b, d.c, _two_sided_half(d.b, d.c), d.n)


@functools.lru_cache(maxsize=4096)
def _two_sided_half(a_only: int, b_only: int) -> float:
    """Two-sided exact binomial p-value at p = 1/2: 2 P(X <= min), X ~ Bin(a + b, 1/2), at most
    1 (what ``scipy.stats.binomtest`` gives for a symmetric null, in one cdf call)."""
    total = a_only + b_only
    if total == 0:
        return 1.0
    return min(1.0, 2.0 * float(binom.cdf(min(a_only, b_only), total, 0.5)))


def mcnemar_sample_size(
    delta: float, discordance: float, alpha: float = ALPHA, power: float = POWER
) -> int:
    """Pairs needed for McNemar's test to detect a difference ``delta`` of two paired
    proportions (fractions) whose discordant fraction is ``discordance`` (Connor 1987,
    Biometrics 43, "Sample size for testing differences in proportions for the paired-sample
    design"): n = (z_{1-alpha/2} sqrt(psi) + z_{power} sqrt(psi - delta^2))^2 / delta^2.

    ``discordance`` below ``|delta|`` is raised to it (a gap needs at least that many
    discordant pairs); ``delta`` must not be 0.
    """
    delta = abs(delta)
    if not 0 < delta <= 1:
        raise ValueError(f"delta must lie in (0, 1], got {delta}")
    psi = min(1.0, max(discordance, delta))
    z_a, z_b = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))
    n = (z_a * math.sqrt(psi) + z_b * math.sqrt(max(psi - delta * delta, 0.0))) ** 2 / delta**2
    return int(math.ceil(n))


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row of ``x`` (shape (B, k)) against ``y`` (shape (k,)).

    Same value as ``scipy.stats.kendalltau`` (tau-b, ties in either ranking excluded from the
    matching denominator); NaN where a ranking is constant.
    """
    x, y = np.atleast_2d(np.asarray(x, dtype=float)), np.asarray(y, dtype=float)
    i, j = np.triu_indices(y.size, k=1)
    sx, sy = np.sign(x[:, i] - x[:, j]), np.sign(y[i] - y[j])
    pairs = i.size
    untied_x = pairs - np.sum(sx == 0, axis=1)
    untied_y = pairs - int(np.sum(sy == 0))
    denom = np.sqrt(untied_x * float(untied_y))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (sx * sy).sum(axis=1) / denom, np.nan)


def bootstrap_weights(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Multinomial counts (shape (resamples, n)): how often each image is drawn per resample."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)


def percentile_interval(
    values: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """The percentile interval of the finite values (None when there are none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi)
