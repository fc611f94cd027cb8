"""PGD: Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.

Signed-gradient ascent on the cross-entropy with step ``alpha`` from a uniform random start in the
linf ball, projected onto the ball and clamped to [0, 1] after every step.

Option ``best_iterate=True`` (``pgd20(best_iterate=True)``): a sample counts as fooled when ANY
iterate fools the model (the start included), not only the last one; it is attacked no further
once fooled and its place in the batch goes to the next sample (see
:func:`bench.attacks.budgets.correct_streamed`). Its accuracy is never above plain PGD's with
the same starts; plain PGD (the paper's tables: last iterate) is unchanged, key included.

Cost rule: with a fixed step and the same start, PGD-k is the prefix of PGD-K (k < K), so
:func:`pgd_checkpoints` records every requested iteration count from ONE run of PGD-K.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from torch import Tensor, nn

from bench.attacks import counting
from bench.attacks.base import EOT_OPTION, Attack
from core.enums import Dataset
from core.errors import UserError

if TYPE_CHECKING:
    from bench.attacks.spec import AttackSpec


class PGD(Attack):
    """Projected Gradient Descent (linf): ``x <- Proj(x + alpha * sign(grad))``."""

    name = "pgd"
    title = "PGD"
    default_steps = 20
    fixed_step_iterative = True
    starts_random = True
    key_fields = ("eps", "steps", "step_size", "norm", "random_start")
    examples = ("pgd", "pgd20", "pgd100")
    options = {"best_iterate": "fooled by any iterate, a fooled sample stops early"}
    count_options = EOT_OPTION

    @classmethod
    def label(cls, spec: AttackSpec) -> str:
        """``PGD-20``; ``PGD-20-any`` with ``best_iterate`` (fooled by any iterate)."""
        return super().label(spec) + ("-any" if best_iterate(spec) else "")

    @classmethod
    def default_step_size(cls, eps: float, steps: int, dataset: Dataset | None = None) -> float:
        """eps/4, i.e. 2/255 at eps 8/255 as in the RACL/RobNet CIFAR evaluation; on MNIST-like
        sets eps*20/76.5, i.e. the paper's 20/255 at 0.3."""
        if dataset in (Dataset.MNIST, Dataset.FASHION_MNIST):
            return eps * 20.0 / 76.5
        return eps / 4.0

    def step(self, x_adv: Tensor, grad: Tensor, state: dict[str, Tensor]) -> Tensor:
        return x_adv + self.spec.alpha * grad.sign()


def best_iterate(spec: object) -> bool:
    """Whether ``spec`` is a PGD spec with the ``best_iterate`` option on."""
    return getattr(spec, "name", None) == "pgd" and dict(getattr(spec, "params", ())).get(
        "best_iterate", False
    )


def pgd_checkpoints(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    spec: AttackSpec,
    checkpoints: list[int],
    *,
    init_delta: Tensor | None = None,
    **knobs,
) -> dict[int, Tensor]:
    """Adversarial images after ``k`` steps for every ``k`` in ``checkpoints``, from one run.

    Runs ``max(checkpoints)`` steps of the spec's PGD (its step size and random start; pass
    ``init_delta`` or seed the RNG to fix the start). ``knobs`` are :class:`PGD`'s run options
    (``channels_last``, ``amp_dtype``, ``compile``).
    """
    if spec.name != "pgd" or best_iterate(spec):
        raise UserError(f"iteration checkpoints need a plain pgd attack, got {spec.label()}")
    wanted = sorted({int(k) for k in checkpoints})
    if not wanted or wanted[0] < 1:
        raise UserError(f"iteration checkpoints must be integers >= 1, got {checkpoints}")
    attack = PGD(replace(spec, steps=wanted[-1], step_size=spec.alpha), **knobs)
    out: dict[int, Tensor] = {}
    counter = counting.of(model)
    start = counter.snapshot() if counter is not None else None
    for k, x_adv in enumerate(attack.run(model, x, y, init_delta=init_delta), start=1):
        if k in wanted:
            out[k] = x_adv
            if counter is not None:  # the passes this run spent to reach step k
                counter.mark(("steps", k), start)
    return out
