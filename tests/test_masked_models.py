"""Every trust check fires through the CLI on a model built to fool it, and none on the normally
trained model: ``bench run --model-file tests/fixtures/user_models.py:<variant> --strict``.

All variants share one naturally trained SmallNet's weights (``small_weights``); the preset is
the smoke preset with subsets big enough for the paired tests (128 images).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.plan.presets import PRESETS, PresetConfig
from core.enums import Dataset

USER_MODELS = Path(__file__).parent / "fixtures" / "user_models.py"

CHECKS_PRESET = PresetConfig(
    name="smoke",
    dataset=Dataset.MNIST,
    experiments=(),
    n_eval=128,
    n_sweep=32,
    n_trust=64,
    batch_size=128,
    n_indicator=32,
    n_mono=128,
    n_gap=128,
)


@pytest.fixture
def checks_preset(monkeypatch):
    monkeypatch.setitem(PRESETS, "smoke", CHECKS_PRESET)


def _run(tmp_path, capsys, weights, variant, *extra):  # noqa: ANN001, ANN202
    args = ["run", "--preset", "smoke", "--model-file", f"{USER_MODELS}:{variant}",
            "--weights", str(weights), "--dataset", "mnist", "--attacks", "fgsm,pgd20",
            "--training", "natural", "--store", str(tmp_path / "s.db"), "--json",
            "--no-progress", "--strict", *extra]  # fmt: skip
    code = main(args)
    out = json.loads(capsys.readouterr().out)
    failed = {t["check"] for t in out["trust"] if not t["passed"]}
    return code, failed, out


def test_the_normally_trained_model_passes_every_check(tmp_path, capsys, small_weights,
                                                       checks_preset):  # fmt: skip
    code, failed, out = _run(tmp_path, capsys, small_weights, "small")
    assert code == 0 and failed == set() and out["trust_failed"] == 0
    ran = {t["check"] for t in out["trust"]}
    assert {"robust_le_clean", "eps_monotone", "pgd_le_fgsm", "large_eps_near_zero"} <= ran
    assert {f"indicator:{n}" for n in ("silent_success", "unavailable_gradients")} <= ran
    assert len(out["indicators"]) == 2  # FGSM and PGD-20, each with its counts
    assert out["trust_failed_by_model"] == {}


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("scaled", {"indicator:unavailable_gradients", "large_eps_near_zero"}),
        ("quantised", {"indicator:unavailable_gradients", "large_eps_near_zero"}),
        ("noisy", {"randomized_forward"}),
        ("shattered", {"eps_monotone", "pgd_le_fgsm"}),
    ],
)
def test_each_masked_model_is_flagged(tmp_path, capsys, small_weights, checks_preset, variant,
                                      expected):  # fmt: skip
    code, failed, out = _run(tmp_path, capsys, small_weights, variant)
    assert code == 3 and expected <= failed, failed
    assert list(out["trust_failed_by_model"]) == [f"user_models:{variant}/natural/mnist"]


def test_without_strict_a_failed_check_keeps_exit_0(tmp_path, capsys, small_weights,
                                                    checks_preset):  # fmt: skip
    args = ["run", "--preset", "smoke", "--model-file", f"{USER_MODELS}:quantised", "--weights",
            str(small_weights), "--dataset", "mnist", "--attacks", "pgd10", "--training",
            "natural", "--store", str(tmp_path / "s.db"), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "FAIL(" in printed and "indicator:unavailable_gradients" in printed
    assert "no-grad" in printed  # the indicator table under the summary


def test_an_attack_that_repairs_clean_mistakes_fails_robust_le_clean(
    tmp_path, capsys, small_weights, checks_preset
):
    # wrong_on_clean misclassifies the unperturbed images only: every attacked point is off
    # their 1/256 grid, so the attack "repairs" them; clean AND attacked would hide it
    code, failed, _ = _run(tmp_path, capsys, small_weights, "wrong_on_clean", "--eps", "0.02")
    assert code == 3 and "robust_le_clean" in failed


def test_the_gap_check_fires_on_saturated_logits_and_not_on_the_normal_model(
    tmp_path, capsys, small_weights, checks_preset
):
    # claimed adversarially trained, so the APGD-CE + APGD-T gap cell is planned; APGD-T's DLR
    # loss is scale invariant, so it fools what PGD on the saturated cross-entropy cannot
    code, failed, out = _run(tmp_path, capsys, small_weights, "scaled", "--training", "pgd_at")
    assert code == 3 and "autoattack_gap" in failed
    gap = next(t for t in out["trust"] if t["check"] == "autoattack_gap")
    assert "APGD-CE+APGD-T after PGD-20" in gap["detail"] and "p=" in gap["detail"]
    code, failed, out = _run(tmp_path, capsys, small_weights, "small", "--training", "pgd_at")
    assert code == 0 and "autoattack_gap" not in failed
    assert any(t["check"] == "autoattack_gap" and t["passed"] for t in out["trust"])


def test_indicators_that_cannot_be_computed_are_a_failed_check_not_a_crash(
    tmp_path, capsys, small_weights, checks_preset, monkeypatch
):
    import bench.run.indicator_phase as phase

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("out of memory\nsecond line")

    monkeypatch.setattr(phase, "cell_indicators", broken)
    code, failed, out = _run(tmp_path, capsys, small_weights, "small")
    assert code == 3 and failed == {"indicators"} and out["failed"] == 0
    details = [t["detail"] for t in out["trust"] if t["check"] == "indicators"]
    assert len(details) == 2 and all(d.endswith("RuntimeError: out of memory") for d in details)
    assert "FGSM" in details[0] and "PGD-20" in details[1]  # one per white-box cell
    assert out["indicators"] == []  # no row stored: the next run tries again
