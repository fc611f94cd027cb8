"""The report's statistics against values computed independently (by hand or by enumeration)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom, binomtest, kendalltau

from bench.report.outcomes import SeedResult, decode_bits, spread
from bench.report.stats import (
    bootstrap_weights,
    kendall_tau_b,
    mcnemar_exact,
    mcnemar_sample_size,
    percentile_interval,
    wilson,
)
from bench.results.format import pack_per_sample


def test_wilson_matches_hand_computed_values():
    # 84/100, z = 1.959964: centre (0.84 + z^2/200) / (1 + z^2/100) = 0.827422,
    # half-width z/(1 + z^2/100) * sqrt(0.84*0.16/100 + z^2/40000) = 0.071625
    lo, hi = wilson(84, 100)
    assert lo == pytest.approx(0.755797, abs=1e-5) and hi == pytest.approx(0.899047, abs=1e-5)
    # 0 successes: the upper end is z^2 / (n + z^2)
    z2 = 1.959964**2
    assert wilson(0, 200) == pytest.approx((0.0, z2 / (200 + z2)), abs=1e-6)
    assert wilson(200, 200)[1] == pytest.approx(1.0)
    ci = binomtest(84, 100).proportion_ci(method="wilson")
    assert (lo, hi) == pytest.approx((ci.low, ci.high))
    with pytest.raises(ValueError):
        wilson(101, 100)


def test_mcnemar_exact_matches_the_binomial_sum():
    a = np.array([True] * 10 + [False] * 2 + [True] * 50 + [False] * 38)
    b = np.array([False] * 10 + [True] * 2 + [True] * 50 + [False] * 38)
    test = mcnemar_exact(a, b)
    assert (test.a_only, test.b_only, test.n) == (10, 2, 100)
    # two-sided: 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    assert test.p == pytest.approx(2 * 79 / 4096)
    assert mcnemar_exact(b, a).p == pytest.approx(test.p)
    for x, y in [(0, 1), (3, 3), (7, 20), (40, 61), (0, 30)]:
        pair = mcnemar_exact(np.r_[[True] * x, [False] * y], np.r_[[False] * x, [True] * y])
        assert pair.p == pytest.approx(binomtest(x, x + y, 0.5).pvalue)
    same = mcnemar_exact(a, a)
    assert same.p == 1.0 and same.discordant == 0
    with pytest.raises(ValueError):
        mcnemar_exact(a, b[:10])


def _exact_power(n: int, delta: float, psi: float, alpha: float = 0.05) -> float:
    """Power of the exact McNemar test by enumeration over the discordant count."""
    q = (1 + delta / psi) / 2
    total = 0.0
    for d in range(1, n + 1):
        k = np.arange(d + 1)
        p = np.minimum(1.0, 2 * np.minimum(binom.cdf(k, d, 0.5), binom.sf(k - 1, d, 0.5)))
        total += binom.pmf(d, n, psi) * binom.pmf(k[p < alpha], d, q).sum()
    return total


@pytest.mark.parametrize(("delta", "psi"), [(0.05, 0.15), (0.1, 0.3), (0.035, 0.04)])
def test_sample_size_reaches_about_80_percent_power(delta, psi):
    n = mcnemar_sample_size(delta, psi)
    assert 0.74 <= _exact_power(n, delta, psi) <= 0.86  # the approximation, checked exactly
    assert _exact_power(n // 2, delta, psi) < 0.6


def test_sample_size_raises_discordance_to_the_gap_and_rejects_zero():
    assert mcnemar_sample_size(0.05, 0.0) == mcnemar_sample_size(0.05, 0.05)
    assert mcnemar_sample_size(-0.05, 0.2) == mcnemar_sample_size(0.05, 0.2)
    with pytest.raises(ValueError):
        mcnemar_sample_size(0.0, 0.2)


def test_vectorised_kendall_tau_b_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=(50, 6)).astype(float)
    y = np.array([3.0, 1.0, 1.0, 2.0, 5.0, 0.5])
    ours = kendall_tau_b(x, y)
    for row, value in zip(x, ours, strict=True):
        expected = kendalltau(row, y).statistic
        assert (np.isnan(value) and np.isnan(expected)) or value == pytest.approx(expected)
    assert np.isnan(kendall_tau_b(np.ones((1, 6)), y)[0])  # a constant ranking


def test_bootstrap_weights_and_percentile_interval():
    w = bootstrap_weights(20, 300, np.random.default_rng(1))
    assert w.shape == (300, 20) and (w.sum(axis=1) == 20).all()
    values = np.concatenate([np.arange(101.0), [np.nan]])
    assert percentile_interval(values) == pytest.approx((2.5, 97.5))
    assert percentile_interval(np.array([np.nan])) is None


def test_bits_are_used_only_when_they_agree_with_the_count():
    bits = np.array([True, False, True, True, False, False, True, False, True])
    blob = pack_per_sample(bits)
    assert decode_bits(blob, 9, 5).tolist() == bits.tolist()
    assert decode_bits(blob, 9, 4) is None  # count and bits disagree
    assert decode_bits(blob[:1], 9, 5) is None  # truncated
    assert decode_bits(None, 9, 5) is None
    assert SeedResult(0, 103, 100, "test[:100]").interval() is None  # impossible count


def test_spread_over_seeds():
    runs = tuple(SeedResult(s, c, 200, "test[:200]") for s, c in enumerate((20, 26, 32)))
    s = spread(runs)
    assert (s.k, s.mean, s.low, s.high) == (3, pytest.approx(13.0), 10.0, 16.0)
    assert s.sd == pytest.approx(3.0)  # sample SD of 10, 13, 16
    assert s.text() == "13.0 ± 3.0 over 3 seeds"
    assert spread(runs[:1]) is None
