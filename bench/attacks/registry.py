"""The attack registry: spec name -> class, and :func:`build_attack`."""

from __future__ import annotations

import torch

from bench.attacks.autoattack import AutoAttack
from bench.attacks.base import Attack
from bench.attacks.external import TorchattacksAttack
from bench.attacks.fgsm import FGSM
from bench.attacks.mim import MIM
from bench.attacks.pgd import PGD
from bench.attacks.spec import TORCHATTACKS_PREFIX, AttackSpec

ATTACKS: dict[str, type[Attack]] = {
    "fgsm": FGSM,
    "pgd": PGD,
    "mim": MIM,
    "autoattack": AutoAttack,
    "torchattacks": TorchattacksAttack,
}


def build_attack(
    spec: AttackSpec, *, channels_last: bool = False, amp_dtype: torch.dtype | None = None
) -> Attack:
    """The attack object for a spec (``torchattacks:<Name>`` goes to the adapter)."""
    key = "torchattacks" if spec.name.startswith(TORCHATTACKS_PREFIX) else spec.name
    return ATTACKS[key](spec, channels_last=channels_last, amp_dtype=amp_dtype)
