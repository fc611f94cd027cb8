"""Trust checks: each one passes on consistent rows and flags a planted violation."""

from __future__ import annotations

import pytest

from bench.trust import run_checks


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
        "source": None,
        "accuracy": accuracy,
        "error": None,
    }
    row.update(extra)
    return row


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


def test_consistent_rows_pass_every_check():
    results = run_checks(_good_rows())
    checks = _by_check(results)
    assert set(checks) == {
        "robust_le_clean",
        "eps_monotone",
        "steps_monotone",
        "pgd_le_fgsm",
        "transfer_ge_whitebox",
        "large_eps_near_zero",
    }
    assert all(r.passed for r in results), [r for r in results if not r.passed]
    assert all(r.model == "darts" and r.training == "pgd_at" for r in results)


@pytest.mark.parametrize(
    ("check", "bad_row"),
    [
        ("robust_le_clean", _row("whitebox", 96.0, "mim", 0.3, 10)),
        ("eps_monotone", _row("eps_sweep", 65.0, "pgd", 0.4, 20)),
        ("steps_monotone", _row("step_sweep", 63.0, "pgd", 0.3, 100)),
        ("pgd_le_fgsm", _row("whitebox", 72.0, "pgd", 0.3, 20, attack_key="pgd-other")),
        ("transfer_ge_whitebox", _row("transfer", 50.0, "pgd", 0.3, 20, source="nasnet")),
        ("large_eps_near_zero", _row("whitebox", 40.0, "pgd", 0.5, 10)),
    ],
)
def test_each_check_flags_its_violation(check, bad_row):
    results = _by_check(run_checks([*_good_rows(), bad_row]))
    assert not results[check].passed
    assert "%" in results[check].detail
    others = [r for name, r in results.items() if name != check]
    assert all(r.passed for r in others), others


def test_groups_and_failed_rows():
    rows = _good_rows() + [
        _row("clean", 50.0, model="nasnet", checkpoint="c2"),
        _row("whitebox", 60.0, "pgd", 0.3, 20, model="nasnet", checkpoint="c2"),
        _row("whitebox", None, "fgsm", 0.3, 1, error="RuntimeError: boom"),
    ]
    results = run_checks(rows)
    nasnet = [r for r in results if r.model == "nasnet"]
    assert [(r.check, r.passed) for r in nasnet] == [("robust_le_clean", False)]
    assert all(r.passed for r in results if r.model == "darts")


def test_cifar100_near_zero_limit_uses_ten_percent_floor():
    rows = [_row("whitebox", 10.5, "pgd", 0.5, 10, dataset="cifar100", n=100)]
    assert run_checks(rows)[0].passed  # 10% + one sample
    rows = [_row("whitebox", 12.0, "pgd", 0.5, 10, dataset="cifar100", n=100)]
    assert not run_checks(rows)[0].passed
