"""FGSM: Goodfellow, Shlens and Szegedy, "Explaining and Harnessing Adversarial Examples",
ICLR 2015.

One signed-gradient step of size eps: ``x_adv = clip(x + eps * sign(grad_x CE))``.
"""

from __future__ import annotations

from torch import Tensor

from bench.attacks.base import Attack


class FGSM(Attack):
    """Fast Gradient Sign Method (linf, one step of size ``spec.alpha``, eps by default)."""

    def step(self, x_adv: Tensor, grad: Tensor, state: dict[str, Tensor]) -> Tensor:
        return x_adv + self.spec.alpha * grad.sign()
