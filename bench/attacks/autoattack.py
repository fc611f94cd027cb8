"""AutoAttack: Croce and Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020.

The ORIGINAL standard version (APGD-CE, APGD-T, FAB-T, Square with 5000 queries), run through the
``pyautoattack`` package (the original code, MIT). Its progress messages go to the
``auto-attack`` logger (and any stray prints to this module's logger), never to stdout.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from typing import Any

from torch import Tensor, nn

from bench.attacks.base import Attack, AttackText, project
from core.enums import Norm
from core.errors import UserError

log = logging.getLogger(__name__)


class AutoAttack(Attack):
    """The original AutoAttack (``version`` from params, ``standard`` by default; seed 0)."""

    name = "autoattack"
    title = "AutoAttack"
    default_steps = 100
    norms = (Norm.LINF, Norm.L2)
    key_fields = ("eps", "norm")
    stepwise = False

    @classmethod
    def parse(cls, text: AttackText) -> dict[str, Any]:
        """``autoattack(norm=..., version=..., seed=...)``; steps and step size do not apply."""
        params = text.params
        norm = Norm.parse(params.pop("norm", "Linf"))
        allowed = {"version", "seed"}
        if set(params) - allowed:
            raise UserError(f"autoattack accepts only: norm, {', '.join(sorted(allowed))}")
        params.setdefault("version", "standard")
        params.setdefault("seed", 0)
        return {
            "name": cls.name,
            "eps": text.eps,
            "steps": cls.default_steps,
            "step_size": None,
            "norm": norm,
            "params": tuple(params.items()),
        }

    def iterate(
        self, model: nn.Module, x: Tensor, y: Tensor, init_delta: Tensor | None
    ) -> Iterator[Tensor]:
        from pyautoattack import AutoAttack as Original

        params = dict(self.spec.params)
        runner = Original(
            model,
            norm="Linf" if self.spec.norm is Norm.LINF else "L2",
            eps=self.spec.eps,
            version=str(params.get("version", "standard")),
            seed=int(params.get("seed", 0)),
            device=x.device,
        )
        stray = io.StringIO()
        with contextlib.redirect_stdout(stray), self._autocast(x.device):
            result = runner.run_standard_evaluation(x, y, batch_size=max(int(x.shape[0]), 1))
        if stray.getvalue().strip():
            log.debug("autoattack output:\n%s", stray.getvalue())
        x_adv = result[0] if isinstance(result, tuple) else result
        yield project(x_adv.float().to(x.device), x, self.spec.eps, self.spec.norm)
