"""Trust checks: each one passes on consistent rows and flags a planted violation; the paired
checks flag a gap only beyond sampling noise; the exact tests give the textbook values."""

from __future__ import annotations

import numpy as np
import pytest

from bench.results.names import INDICATORS
from bench.trust.exact_tests import ALPHA, Paired, binomial_tail, mcnemar_greater, paired
from bench.trust.row_checks import run_checks

ROW_CHECKS = {"steps_monotone", "pgd_le_fgsm", "transfer_ge_whitebox", "large_eps_near_zero"}


def _row(kind, accuracy, attack=None, eps=None, steps=None, **extra):
    row = {
        "model": "darts",
        "dataset": "mnist",
        "training": "pgd_at",
        "checkpoint": "c1",
        "data_slice": "test[:100]",
        "n": 100,
        "kind": kind,
        "attack": attack,
        "attack_key": f"{attack}(eps={eps},steps={steps})" if attack else None,
        "eps": eps,
        "steps": steps,
        "step_size": None if eps is None or attack == "fgsm" else eps / 4,
        "norm": "linf",
        "source": None,
        "accuracy": accuracy,
        "error": None,
    }
    row.update(extra)
    return row


def _bits(n: int, correct: list[int]) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[correct] = True
    return out


def _good_rows():
    return [
        _row("clean", 95.0),
        _row("whitebox", 70.0, "fgsm", 0.3, 1),
        _row("whitebox", 60.0, "pgd", 0.3, 20),
        _row("whitebox", 2.0, "pgd", 0.5, 10, data_slice="test[:50]", n=50),
        _row("transfer", 85.0, "pgd", 0.3, 20, source="vgg19", source_checkpoint="v"),
        _row("step_sweep", 65.0, "pgd", 0.3, 1),
        _row("step_sweep", 60.0, "pgd", 0.3, 20),
        _row("step_sweep", 60.5, "pgd", 0.3, 50),  # within tolerance: plain PGD iterates
        *[_row("eps_sweep", a, "pgd", e, 20) for e, a in [(0.1, 90.0), (0.2, 70.0), (0.3, 60.0)]],
        *[_row("eps_sweep", a, "fgsm", e, 1) for e, a in [(0.1, 91.0), (0.2, 75.0), (0.3, 70.0)]],
    ]


def _by_check(results):
    return {r.check: r for r in results}


def test_consistent_rows_pass_every_row_check():
    results = run_checks(_good_rows())
    assert set(_by_check(results)) == ROW_CHECKS  # the paired checks need bits or indicators
    assert all(r.passed for r in results), [r for r in results if not r.passed]
    assert all(r.model == "darts" and r.training == "pgd_at" for r in results)


@pytest.mark.parametrize(
    ("check", "bad_row"),
    [
        ("steps_monotone", _row("step_sweep", 63.0, "pgd", 0.3, 100)),
        ("pgd_le_fgsm", _row("whitebox", 72.0, "pgd", 0.3, 20, attack_key="pgd-other")),
        ("transfer_ge_whitebox", _row("transfer", 50.0, "pgd", 0.3, 20, source="nasnet")),
        ("large_eps_near_zero", _row("whitebox", 40.0, "pgd", 0.5, 10)),
    ],
)
def test_each_row_check_flags_its_violation(check, bad_row):
    results = _by_check(run_checks([*_good_rows(), bad_row]))
    assert not results[check].passed
    assert "%" in results[check].detail
    others = [r for name, r in results.items() if name != check]
    assert all(r.passed for r in others), others


def test_groups_and_failed_rows():
    rows = _good_rows() + [
        _row("whitebox", 60.0, "pgd", 0.5, 10, model="nasnet", checkpoint="c2"),
        _row("whitebox", None, "fgsm", 0.3, 1, error="RuntimeError: boom"),
    ]
    results = run_checks(rows)
    nasnet = [r for r in results if r.model == "nasnet"]
    assert [(r.check, r.passed) for r in nasnet] == [("large_eps_near_zero", False)]
    assert all(r.passed for r in results if r.model == "darts")


def test_cifar100_near_zero_limit_uses_ten_percent_floor():
    rows = [_row("whitebox", 10.5, "pgd", 0.5, 10, dataset="cifar100", n=100)]
    assert run_checks(rows)[0].passed  # 10% + one sample
    rows = [_row("whitebox", 12.0, "pgd", 0.5, 10, dataset="cifar100", n=100)]
    assert not run_checks(rows)[0].passed


# -- the exact paired tests -----------------------------------------------------------------


def test_exact_binomial_and_mcnemar_values():
    assert binomial_tail(0, 5) == 1.0 and binomial_tail(6, 5) == 0.0
    assert binomial_tail(7, 7) == pytest.approx(1 / 128)
    assert binomial_tail(8, 10) == pytest.approx(56 / 1024)  # C(10,8)+C(10,9)+C(10,10)
    assert mcnemar_greater(0, 0) == 1.0
    assert mcnemar_greater(7, 0) < ALPHA < mcnemar_greater(6, 0)  # 7 one-way pairs: significant
    assert mcnemar_greater(10, 5) > ALPHA  # 10 against 5 is within noise
    test = paired(_bits(10, [0, 1, 2]), _bits(10, [2, 3]))
    assert (test.n, test.b, test.c) == (10, 2, 1) and test.gap == pytest.approx(10.0)
    with pytest.raises(ValueError, match="differ in length"):
        paired(np.ones(3, bool), np.ones(4, bool))


def test_a_gap_needs_significance_and_a_point():
    assert Paired(128, 8, 0).significant()  # 6.25 points, p = 0.004
    assert not Paired(128, 6, 0).significant()  # p = 0.016: noise
    assert not Paired(10_000, 90, 30).significant()  # p tiny but 0.6 points < 1 point


# -- eps_monotone on independent per-budget runs --------------------------------------------


def _pgd(eps, correct, n=128, **extra):
    bits = _bits(n, correct)
    extra.setdefault("data_slice", f"test[:{n}]")
    return _row("whitebox", 100.0 * bits.mean(), "pgd", eps, 20, per_sample=bits, n=n, **extra)


def test_eps_monotone_fires_beyond_noise_and_reads_prefix_slices():
    rows = [_pgd(0.15, list(range(40))), _pgd(0.225, list(range(60)), n=200)]  # +20 at 0.225
    result = _by_check(run_checks(rows))["eps_monotone"]
    assert not result.passed and "at eps=0.15 on the same 128 images" in result.detail
    quiet = [_pgd(0.15, list(range(40))), _pgd(0.225, list(range(35)) + [100, 101, 102])]
    assert _by_check(run_checks(quiet))["eps_monotone"].passed  # 3 up vs 5 down: noise


def test_eps_monotone_ignores_the_eps_sweep_and_unpaired_slices():
    sweep = [dict(_pgd(0.15, [1]), kind="eps_sweep"), dict(_pgd(0.3, [1, 2]), kind="eps_sweep")]
    seeded = _pgd(0.3, list(range(90)), data_slice="test[seed=1,n=128]")
    checks = _by_check(run_checks([*sweep, _pgd(0.15, [1]), seeded]))
    assert "eps_monotone" not in checks  # nothing to pair: no result at all


# -- autoattack_gap ----------------------------------------------------------------------------


def _aa(correct, n=128, **extra):
    key = "autoattack(eps=0.3,norm=linf,after='pgd(eps=0.3,steps=20)',attacks='apgd-ce,apgd-t')"
    bits = _bits(n, correct)
    return _row("whitebox", 100.0 * bits.mean(), "autoattack", 0.3, 100, per_sample=bits, n=n,
                data_slice=f"test[:{n}]", attack_key=key, **extra)  # fmt: skip


def test_autoattack_gap_fires_when_pgd_overestimates():
    rows = [_pgd(0.3, list(range(30)), n=200), _aa(list(range(20)))]  # PGD right on 10 more
    result = _by_check(run_checks(rows))["autoattack_gap"]
    assert not result.passed
    assert "APGD-CE+APGD-T after PGD-20 eps=0.3 15.6% vs PGD-20 eps=0.3 23.4%" in result.detail
    assert "10 vs 0 discordant of 128" in result.detail


def test_autoattack_gap_is_quiet_within_noise():
    rows = [_pgd(0.3, list(range(30))), _aa(list(range(25)))]  # 5 discordant: p = 0.03
    result = _by_check(run_checks(rows))["autoattack_gap"]
    assert result.passed and "gap +3.9 points" in result.detail


# -- robust_le_clean and the indicators, from indicator rows -----------------------------------


def _indicator_row(counts, **extra):
    row = {"model": "darts", "dataset": "mnist", "training": "pgd_at", "checkpoint": "c1",
           "label": "PGD-20", "eps": 0.3, "attack": "pgd", "counts": counts}  # fmt: skip
    row.update(extra)
    return row


def _counts(**overrides):
    counts = {name: [0, 30] for name in INDICATORS}
    counts["paired"] = {"n": 32, "clean": 30, "repaired": 0, "broken": 25}
    counts.update(overrides)
    return counts


def test_robust_le_clean_compares_all_images_with_clean():
    quiet = _by_check(run_checks([], [_indicator_row(_counts())]))
    assert quiet["robust_le_clean"].passed
    repaired = _counts(paired={"n": 32, "clean": 2, "repaired": 20, "broken": 1})
    result = _by_check(run_checks([], [_indicator_row(repaired)]))["robust_le_clean"]
    assert not result.passed and "attacked 65.6% > clean 6.2% over all 32 images" in result.detail


@pytest.mark.parametrize("name", INDICATORS)
def test_each_indicator_fires_above_five_percent_and_two_images(name):
    results = _by_check(run_checks([], [_indicator_row(_counts(**{name: [2, 30]}))]))
    assert not results[f"indicator:{name}"].passed
    assert "PGD-20 eps=0.3: 2/30 images (6.7%)" in results[f"indicator:{name}"].detail
    others = [r for check, r in results.items() if check != f"indicator:{name}"]
    assert all(r.passed for r in others), others
    one = _by_check(run_checks([], [_indicator_row(_counts(**{name: [1, 10]}))]))
    assert one[f"indicator:{name}"].passed  # one image never flags
    few = _by_check(run_checks([], [_indicator_row(_counts(**{name: [2, 60]}))]))
    assert few[f"indicator:{name}"].passed  # 3.3%


def test_an_indicator_that_does_not_apply_gives_no_result():
    results = _by_check(run_checks([], [_indicator_row(_counts(incomplete_optimization=None))]))
    assert "indicator:incomplete_optimization" not in results
