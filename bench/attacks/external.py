"""Adapter for any ``torchattacks`` attack (Kim 2020, torchattacks 3.5.1, MIT licence).

``torchattacks:<Name>(key=value,...)`` builds ``torchattacks.<Name>(model, **kwargs)`` at call
time, passing eps / steps / alpha / norm / random_start only when the class's constructor takes
them. Our base still applies eval mode, frozen weights, device and the final projection onto the
threat ball (so unbounded attacks such as CW are clipped to the budget). torchattacks' own
AutoAttack is labelled as its 10-step variant: weaker than the original (use ``autoattack``).
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor, nn

from bench.attacks.base import Attack, project
from bench.attacks.spec import TORCHATTACKS_PREFIX, torchattacks_signature
from core.enums import Norm


class TorchattacksAttack(Attack):
    """Runs ``torchattacks.<Name>`` on the bound model; the result is projected and clamped."""

    stepwise = False

    @property
    def class_name(self) -> str:
        return self.spec.name[len(TORCHATTACKS_PREFIX) :]

    def build(self, model: nn.Module):
        """The configured torchattacks object for ``model``."""
        import torchattacks

        sig = torchattacks_signature(self.class_name)
        kwargs = dict(self.spec.params)
        candidates = {
            "eps": self.spec.eps,
            "steps": self.spec.steps,
            "alpha": self.spec.step_size,
            "norm": "Linf" if self.spec.norm is Norm.LINF else "L2",
            "random_start": self.spec.random_start,
        }
        for key, value in candidates.items():
            if key in sig and key not in kwargs and value is not None:
                kwargs[key] = value
        return getattr(torchattacks, self.class_name)(model, **kwargs)

    def iterate(
        self, model: nn.Module, x: Tensor, y: Tensor, init_delta: Tensor | None
    ) -> Iterator[Tensor]:
        attack = self.build(model)
        with self._autocast(x.device):
            x_adv = attack(x, y)
        yield project(x_adv.float(), x, self.spec.eps, self.spec.norm)
