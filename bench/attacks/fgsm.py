"""FGSM: Goodfellow, Shlens and Szegedy, "Explaining and Harnessing Adversarial Examples",
ICLR 2015.

One signed-gradient step of size eps: ``x_adv = clip(x + eps * sign(grad_x CE))``.
"""

from __future__ import annotations

from torch import Tensor

from bench.attacks.base import EOT_OPTION, Attack
from core.enums import Dataset


class FGSM(Attack):
    """Fast Gradient Sign Method (linf, one step of size ``spec.alpha``, eps by default)."""

    name = "fgsm"
    title = "FGSM"
    count_options = EOT_OPTION

    @classmethod
    def default_step_size(cls, eps: float, steps: int, dataset: Dataset | None = None) -> float:
        return eps

    def step(self, x_adv: Tensor, grad: Tensor, state: dict[str, Tensor]) -> Tensor:
        return x_adv + self.spec.alpha * grad.sign()
