"""The attack registry: spec name -> class, and :func:`build_attack`.

Adding an attack: its class (declaring what it is, see :class:`bench.attacks.base.Attack`) in its
own module, plus its entry here; :class:`bench.attacks.spec.AttackSpec` reads the rest from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.attacks.autoattack import AutoAttack
from bench.attacks.base import Attack
from bench.attacks.external import TorchattacksAttack
from bench.attacks.fgsm import FGSM
from bench.attacks.mim import MIM
from bench.attacks.pgd import PGD

if TYPE_CHECKING:
    from bench.attacks.spec import AttackSpec

ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls for cls in (FGSM, PGD, MIM, AutoAttack, TorchattacksAttack)
}


def find_attack(spec_name: str) -> type[Attack] | None:
    """The class of a spec name (``pgd``, ``torchattacks:APGD``); None if none takes it."""
    name, colon, variant = spec_name.partition(":")
    cls = ATTACKS.get(name)
    if cls is None or not cls.accepts(variant if colon else None):
        return None
    return cls


def build_attack(spec: AttackSpec, **run_options: object) -> Attack:
    """The attack object for a spec (``torchattacks:<Name>`` goes to the adapter), with its
    run options (``channels_last``, ``amp_dtype``, ``compile``, ``fold``: see
    :class:`bench.attacks.base.Attack`)."""
    return find_attack(spec.name)(spec, **run_options)
