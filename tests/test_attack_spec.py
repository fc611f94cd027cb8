"""Attack specs: store keys and labels pinned, and what a new attack's declaration buys.

``tests/fixtures/attack_keys.json`` holds ``key()``, ``label()``, the full spec, its step size
and its rescaled spec at eps 0.1 for a broad set of specs, as the code gave them before attacks
declared their own facts (``AttackSpec.key()`` is the identity stored with every result).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.attacks import AttackSpec, parse_attack
from bench.evaluate import spec_at_eps

PINS = json.loads((Path(__file__).parent / "fixtures" / "attack_keys.json").read_text())


def _facts(spec: AttackSpec) -> dict[str, object]:
    moved = spec_at_eps(spec, 0.1)
    return {
        "key": spec.key(),
        "label": spec.label(),
        "repr": repr(spec),
        "alpha": repr(spec.alpha),
        "at_eps": repr(moved),
        "at_eps_key": moved.key(),
        "prefix": spec.name in ("pgd", "mim"),
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
