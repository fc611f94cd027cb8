"""Attacks with one uniform API: ``build_attack(spec)(model, x, y) -> x_adv``.

FGSM (Goodfellow et al. 2015), PGD (Madry et al. 2018), MIM (Dong et al. 2018), the original
AutoAttack (Croce and Hein 2020) and any torchattacks attack, all described by an
:class:`AttackSpec` whose ``key()`` is the identity stored with results. Each attack class
declares what it is; :data:`ATTACKS` registers it.
"""

from bench.attacks.base import Attack, frozen_eval, model_device, project
from bench.attacks.pgd import pgd_checkpoints
from bench.attacks.registry import ATTACKS, build_attack, find_attack
from bench.attacks.spec import AttackSpec, default_step_size, parse_attack, parse_eps

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackSpec",
    "build_attack",
    "default_step_size",
    "find_attack",
    "frozen_eval",
    "model_device",
    "parse_attack",
    "parse_eps",
    "pgd_checkpoints",
    "project",
]
