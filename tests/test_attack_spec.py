"""Attack specs: store keys and labels pinned, and what an attack's declaration buys.

``tests/fixtures/attack_keys.json`` holds ``key()``, ``label()``, the full spec, its step size
and its rescaled spec at eps 0.1 for a broad set of specs, as the code gave them before attacks
declared their own facts (``AttackSpec.key()`` is the identity stored with every result).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.attacks import ATTACKS, Attack, AttackSpec, build_attack, parse_attack
from bench.evaluate import as_attack
from core.enums import Dataset
from core.errors import UserError

PINS = json.loads((Path(__file__).parent / "fixtures" / "attack_keys.json").read_text())


def _facts(spec: AttackSpec) -> dict[str, object]:
    moved = spec.at_eps(0.1)
    return {
        "key": spec.key(),
        "label": spec.label(),
        "repr": repr(spec),
        "alpha": repr(spec.alpha),
        "at_eps": repr(moved),
        "at_eps_key": moved.key(),
        "prefix": spec.fixed_step_iterative,
    }


def _expected(pin: dict[str, object]) -> dict[str, object]:
    return {k: pin[k] for k in ("key", "label", "repr", "alpha", "at_eps", "at_eps_key", "prefix")}


@pytest.mark.parametrize(
    "pin", PINS["parsed"], ids=lambda p: f"{p['text']}-{p['dataset']}-{p['eps']}-{p['step_size']}"
)
def test_parsed_specs_keep_their_keys_and_labels(pin):
    kwargs = {"eps": pin["eps"], "dataset": pin["dataset"], "step_size": pin["step_size"]}
    if pin.get("steps") is not None:
        kwargs["steps"] = pin["steps"]
    assert _facts(parse_attack(pin["text"], **kwargs)) == _expected(pin)


@pytest.mark.parametrize("pin", PINS["built"], ids=lambda p: p["key"])
def test_built_specs_keep_their_keys_and_labels(pin):
    kwargs = dict(pin["kwargs"])
    if "params" in kwargs:
        kwargs["params"] = tuple(tuple(p) for p in kwargs["params"])
    assert _facts(AttackSpec(*pin["args"], **kwargs)) == _expected(pin)


class Nudge(Attack):
    """A tiny attack declared in one class: signed steps of eps/2 from the clean image."""

    name = "nudge"
    title = "Nudge"
    default_steps = 3
    fixed_step_iterative = True
    key_fields = ("eps", "steps", "step_size", "norm")

    @classmethod
    def default_step_size(cls, eps: float, steps: int, dataset: Dataset | None = None) -> float:
        return eps / 2

    def step(self, x_adv: torch.Tensor, grad: torch.Tensor, state: dict) -> torch.Tensor:
        return x_adv + self.spec.alpha * grad.sign()


def test_a_new_attack_is_one_class_and_one_registry_entry(monkeypatch):
    monkeypatch.setitem(ATTACKS, Nudge.name, Nudge)
    spec = parse_attack("nudge5", eps="8/255", dataset="cifar10")
    assert spec == AttackSpec("nudge", 8 / 255, 5, 4 / 255)
    assert spec.key() == "nudge(eps=0.031373,steps=5,step_size=0.015686,norm=linf)"
    assert spec.label() == "Nudge-5" and spec.fixed_step_iterative
    assert parse_attack("nudge", eps=0.3).steps == 3
    assert spec.at_eps(0.1).key() == "nudge(eps=0.1,steps=5,step_size=0.05,norm=linf)"
    with pytest.raises(UserError, match="closest: nudge"):
        parse_attack("nudg", eps=0.1)
    with pytest.raises(UserError, match="takes no keyword arguments"):
        parse_attack("nudge(x=1)", eps=0.1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.rand(4, 3, 2, 2), torch.tensor([0, 1, 2, 0])
    attack = build_attack(spec)
    assert isinstance(attack, Nudge)
    x_adv = attack(model, x, y)
    assert 0 < (x_adv - x).abs().max().item() <= spec.eps + 1e-6


def test_options_reach_only_the_attacks_that_declare_them():
    spec = parse_attack("pgd3", eps=0.1)
    attack = as_attack(spec, {"channels_last": True, "amp_dtype": torch.bfloat16, "spec": None})
    assert attack.channels_last and attack.amp_dtype is torch.bfloat16 and attack.spec == spec

    def plain(model, x, y):
        return x

    plain.channels_last = False
    assert as_attack(plain, {"channels_last": True}) is plain and not plain.channels_last


def test_autoattack_custom_members_are_checked_and_labelled():
    spec = parse_attack("autoattack(version='custom',attacks='APGD-CE, apgd-t',targets=3)",
                        eps=0.3)  # fmt: skip
    assert dict(spec.params)["attacks"] == "apgd-ce,apgd-t" and dict(spec.params)["targets"] == 3
    assert spec.label() == "AutoAttack(APGD-CE+APGD-T)"
    assert parse_attack("autoattack", eps=0.3).label() == "AutoAttack"
    for text, message in [
        ("autoattack(version='custom')", "goes with attacks="),
        ("autoattack(attacks='apgd-ce')", "goes with attacks="),
        ("autoattack(version='custom',attacks='apgd-x')", "must be among"),
        ("autoattack(version='custom',attacks='apgd-t',targets=12)", "targets=N"),
        ("autoattack(targets=3)", "targets=N"),
    ]:
        with pytest.raises(UserError, match=message):
            parse_attack(text, eps=0.3)
