"""Indicators of attack failure computed on real models and attacks: each fires on a case built
for it and stays at zero on the normally trained model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bench.attacks import build_attack, parse_attack
from bench.attacks.pgd import PGD
from bench.results.names import INDICATORS
from bench.trust.indicators import cell_indicators, still_rising
from core.data import eval_tensors

FIXTURES = Path(__file__).parent / "fixtures"


def _models():  # noqa: ANN202 - the fixture module, imported from its file
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "fixture_user_models", FIXTURES / "user_models.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data():
    return eval_tensors("mnist", 32)


def _load(factory: str, weights: Path) -> torch.nn.Module:
    model = getattr(_models(), factory)()
    model.load_state_dict(load_file(str(weights)))
    return model.eval()


def _pgd(eps: float = 0.3, steps: int = 20):  # noqa: ANN202
    return build_attack(parse_attack(f"pgd{steps}", eps=eps, dataset="mnist"))


def test_the_normal_model_triggers_nothing(data, small_weights):
    counts = cell_indicators(_load("small", small_weights), *data, _pgd(), seed=1)
    examined = counts["unavailable_gradients"][1]
    assert examined >= 30  # the clean-correct images among 32
    for name in ("silent_success", "incomplete_optimization", "transfer_failure",
                 "unavailable_gradients", "unstable_predictions"):  # fmt: skip
        assert counts[name] == [0, examined], name
    assert counts["paired"] == {"n": 32, "clean": examined, "repaired": 0, "broken": examined}
    assert counts["unconstrained_failure"] is None  # the runner fills it from the trust cell


def test_black_boxes_get_no_indicator_only_the_randomness_probe(data, small_weights):
    attack = build_attack(parse_attack("torchattacks:FGSM", eps=0.3, dataset="mnist"))
    counts = cell_indicators(_load("small", small_weights), *data, attack, seed=1)
    assert all(counts[name] is None for name in INDICATORS) and counts["paired"] is None
    assert counts["random_forward"] == [0, 32]
    noisy = cell_indicators(_load("noisy", small_weights), *data, attack, seed=1)
    assert noisy["random_forward"] == [32, 32]


class BackAndForth(PGD):
    """Steps onto an FGSM point, then straight back: every fooled iterate is undone."""

    def step(self, x_adv, grad, state):  # noqa: ANN001, ANN201
        if "origin" in state:
            return state.pop("origin")
        state["origin"] = x_adv
        return x_adv + self.spec.eps * grad.sign()


def test_silent_success_fires_when_the_output_undoes_a_fooling_iterate(data, small_weights):
    spec = dataclasses.replace(parse_attack("pgd2", eps=0.3, dataset="mnist"), random_start=False)
    counts = cell_indicators(_load("small", small_weights), *data, BackAndForth(spec), seed=1)
    hit, seen = counts["silent_success"]
    assert hit > seen // 2  # FGSM at 0.3 fools nearly all, and the output is the clean image
    assert counts["paired"]["broken"] == 0  # the returned points are the clean images


class AutocastSensitive(torch.nn.Module):
    """Right in float32, wrong under autocast: the attack's view and the verdict disagree."""

    def __init__(self, base: torch.nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.base(x).float()
        return logits.roll(1, dims=1) if torch.is_autocast_enabled("cpu") else logits


def test_transfer_failure_fires_when_the_verdict_differs_from_the_attacks_view(data, small_weights):
    model = AutocastSensitive(_load("small", small_weights))
    attack = build_attack(
        parse_attack("pgd10", eps=0.01, dataset="mnist"), amp_dtype=torch.bfloat16
    )
    counts = cell_indicators(model, *data, attack, seed=1)
    hit, seen = counts["transfer_failure"]
    assert seen > 0 and hit > seen // 2  # the returned points "fool" the bf16 view, not the verdict
    plain = cell_indicators(model, *data, _pgd(0.01, 10), seed=1)
    assert plain["transfer_failure"][0] == 0  # without autocast the views agree


def test_still_rising_reads_the_running_best_over_the_last_points():
    steps = torch.arange(21, dtype=torch.float32)
    rising = steps[:, None]  # the loss grows linearly to the last step
    plateau = torch.minimum(steps, torch.tensor(10.0))[:, None]  # flat over the second half
    late_jump = torch.cat([torch.zeros(19), torch.tensor([0.2, 1.0])])[:, None]
    assert still_rising(torch.cat([rising, plateau, late_jump], dim=1)).tolist() == [
        True,
        False,
        True,
    ]
    assert still_rising(torch.zeros(11, 1)).tolist() == [False]  # a flat loss is not rising
