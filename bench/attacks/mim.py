"""MIM: Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018.

Momentum iterative FGSM: the input gradient is normalised by its mean absolute value per image
(as torchattacks' MIFGSM does; the paper's L1 norm differs by the constant factor C*H*W, which
scales the whole momentum sum and so leaves its sign unchanged), accumulated with momentum
``decay`` (1.0), and a signed step of size ``alpha`` (eps/steps by default) is taken.
"""

from __future__ import annotations

from torch import Tensor

from bench.attacks.base import EOT_OPTION, Attack
from core.enums import Dataset


class MIM(Attack):
    """Momentum Iterative Method (linf, no random start, ``spec.decay`` momentum)."""

    name = "mim"
    title = "MIM"
    default_steps = 10
    fixed_step_iterative = True
    key_fields = ("eps", "steps", "step_size", "norm", "decay")
    examples = ("mim", "mim10")
    count_options = EOT_OPTION

    @classmethod
    def default_step_size(cls, eps: float, steps: int, dataset: Dataset | None = None) -> float:
        """eps/steps (Dong et al. 2018)."""
        return eps / max(int(steps), 1)

    def step(self, x_adv: Tensor, grad: Tensor, state: dict[str, Tensor]) -> Tensor:
        scale = grad.abs().mean(dim=tuple(range(1, grad.dim())), keepdim=True)
        grad = grad / scale.clamp_min(1e-12)  # identical to a plain division unless grad == 0
        if "momentum" in state:
            grad = grad + self.spec.decay * state["momentum"]
        state["momentum"] = grad
        return x_adv + self.spec.alpha * grad.sign()
