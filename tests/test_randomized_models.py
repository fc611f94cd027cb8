"""Randomized models: the randomness probe and its trust check, and EoT attacks.

A model whose eval-mode forward is random (``user_models:noisy``: fresh input noise on every
call) is flagged by ``randomized_forward`` unless an EoT attack ran on it; a deterministic model
is never flagged, and on it an EoT attack takes the plain attack's steps image for image."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bench.attacks import build_attack, parse_attack
from bench.cli import main
from bench.evaluate import whitebox_correct
from bench.plan.presets import PRESETS, PresetConfig
from bench.trust.indicators import random_forward
from bench.trust.randomness import randomized_forward
from bench.trust.row_checks import run_checks
from core.data import eval_tensors
from core.enums import Dataset

USER_MODELS = Path(__file__).parent / "fixtures" / "user_models.py"


def _load(name: str, weights: Path) -> torch.nn.Module:
    import importlib.util

    spec = importlib.util.spec_from_file_location("fixture_user_models", USER_MODELS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = getattr(module, name)()
    model.load_state_dict(load_file(str(weights)))
    return model.eval()


@pytest.fixture(scope="module")
def data():
    return eval_tensors("mnist", 128)


@pytest.mark.parametrize("text", ["pgd20", "fgsm", "pgd5(best_iterate=True)"])
def test_eot_on_a_deterministic_model_takes_the_plain_steps(data, small_weights, text):
    model, (x, y) = _load("small", small_weights), data
    plain = build_attack(parse_attack(text, eps=0.1, dataset="mnist"))
    eot_text = text.replace(")", ",eot=4)") if "(" in text else f"{text}(eot=4)"
    eot = build_attack(parse_attack(eot_text, eps=0.1, dataset="mnist"))
    assert eot.spec.key() != plain.spec.key() and "EoT4" in eot.spec.label()
    torch.manual_seed(3)
    first = plain(model, x[:32], y[:32])
    torch.manual_seed(3)
    assert torch.equal(eot(model, x[:32], y[:32]), first)  # image for image
    verdicts = [whitebox_correct(model, x, y, a.spec, seed=5) for a in (plain, eot)]
    assert torch.equal(*verdicts)


class Jittery(torch.nn.Module):
    """A randomized defence EoT defeats: a small random ripple on the logits (amplitude 0.01,
    a fresh random direction every call) barely moves the verdicts but swamps the gradient."""

    def __init__(self, base: torch.nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        direction = torch.randn(x[0].numel(), 10, device=x.device)
        return self.base(x) + 0.01 * torch.sin(40.0 * (x.flatten(1) @ direction))


def test_eot_is_stronger_on_a_randomized_model(data, small_weights):
    model, (x, y) = Jittery(_load("small", small_weights)).eval(), data
    assert random_forward(model, x[:16]).all()
    correct = {
        text: whitebox_correct(model, x, y, parse_attack(text, eps=0.1, dataset="mnist"), seed=0)
        for text in ("pgd20", "pgd20(eot=10)")
    }
    plain, eot = (int(correct[t].sum()) for t in ("pgd20", "pgd20(eot=10)"))
    assert eot <= plain - 10, (plain, eot)  # of 128 images: the averaged gradient finds more


def test_the_probe_flags_a_random_forward_only(data, small_weights):
    x = data[0][:16]
    assert random_forward(_load("noisy", small_weights), x).all()
    assert not random_forward(_load("small", small_weights), x).any()
    nn = torch.nn
    dropout = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(784, 10))
    assert not random_forward(dropout.train(), x).any()  # evaluated in eval mode: no dropout


def _indicator(random_hits: int, n: int = 16) -> dict:
    return {"model": "m", "dataset": "mnist", "training": "natural", "checkpoint": "c",
            "label": "PGD-20", "eps": 0.1, "data_slice": "test[:16]",
            "counts": {"random_forward": [random_hits, n]}}  # fmt: skip


def _row(key: str) -> dict:
    return {"model": "m", "dataset": "mnist", "training": "natural", "checkpoint": "c",
            "kind": "whitebox", "attack": key.split("(")[0], "attack_key": key, "steps": 20,
            "eps": 0.1, "accuracy": 50.0, "n": 16, "error": None,
            "data_slice": "test[:16]"}  # fmt: skip


@pytest.mark.parametrize(
    ("hits", "keys", "passed"),
    [
        (16, ["pgd(eps=0.1,steps=20)"], False),
        (16, ["pgd(eps=0.1,steps=20)", "pgd(eps=0.1,steps=20,eot=10)"], True),
        (3, ["autoattack(eps=0.1,norm=linf,seed=0,version='rand')"], True),
        (3, ["torchattacks:EOTPGD(eps=0.1,steps=10)"], True),
        (0, ["pgd(eps=0.1,steps=20)"], True),
    ],
)
def test_the_check_wants_an_eot_attack_on_a_random_model(hits, keys, passed):
    rows = [_row(k) for k in keys]
    compared, bad, _ = randomized_forward(rows, [_indicator(hits)])
    assert compared == 1 and (not bad) == passed
    (result,) = [t for t in run_checks(rows, [_indicator(hits)]) if t.check == "randomized_forward"]
    assert result.passed == passed
    if not passed:
        assert "16/16" in result.detail and "eot=10" in result.detail


CHECKS_PRESET = PresetConfig(
    name="smoke", dataset=Dataset.MNIST, experiments=(), n_eval=64, n_sweep=32, n_trust=32,
    batch_size=64, n_indicator=32, n_mono=32, n_gap=32, gap_targets=1,
)  # fmt: skip


def _run(tmp_path, capsys, weights, variant, attacks):  # noqa: ANN001, ANN202
    args = ["run", "--preset", "smoke", "--model-file", f"{USER_MODELS}:{variant}",
            "--weights", str(weights), "--dataset", "mnist", "--attacks", attacks, "--eps", "0.1",
            "--training", "natural", "--store", str(tmp_path / "s.db"), "--json",
            "--no-progress", "--strict"]  # fmt: skip
    code = main(args)
    out = json.loads(capsys.readouterr().out)
    return code, {t["check"]: t for t in out["trust"]}


@pytest.mark.parametrize(
    ("variant", "attacks", "flagged"),
    [
        ("noisy", "fgsm,pgd20", True),
        ("noisy", "fgsm,pgd20(eot=10)", False),
        ("noisy", "autoattack(version='rand')", False),
        ("small", "fgsm,pgd20", False),
    ],
)
def test_strict_fails_a_random_model_without_eot(
    tmp_path, capsys, small_weights, monkeypatch, variant, attacks, flagged
):
    monkeypatch.setitem(PRESETS, "smoke", CHECKS_PRESET)
    code, checks = _run(tmp_path, capsys, small_weights, variant, attacks)
    assert checks["randomized_forward"]["passed"] is not flagged, checks["randomized_forward"]
    if flagged:
        assert code == 3
    if variant == "small":
        assert "deterministic" in checks["randomized_forward"]["detail"]
    if "rand" in attacks:
        assert "AutoAttack (rand, EoT 20)" in checks["randomized_forward"]["detail"]
