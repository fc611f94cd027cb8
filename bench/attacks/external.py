"""Adapter for any ``torchattacks`` attack (Kim 2020, torchattacks 3.5.1, MIT licence).

``torchattacks:<Name>(key=value,...)`` builds ``torchattacks.<Name>(model, **kwargs)`` at call
time, passing eps / steps / alpha / norm / random_start only when the class's constructor takes
them. Our base still applies eval mode, frozen weights, device and the final projection onto the
threat ball (so unbounded attacks such as CW are clipped to the budget). torchattacks' own
AutoAttack is labelled as its 10-step variant: weaker than the original (use ``autoattack``).
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from bench.attacks.base import Attack, AttackText, project
from bench.attacks.kwarg_types import check_kwargs, torchattacks_types
from core.datasets import dataset_info
from core.enums import Norm
from core.errors import UserError

if TYPE_CHECKING:
    from bench.attacks.spec import AttackSpec

TORCHATTACKS_PREFIX = "torchattacks:"


# torchattacks classes built from other attack objects: no attack text can describe them
COMPOSITES = frozenset({"MultiAttack"})


class TorchattacksAttack(Attack):
    """Runs ``torchattacks.<Name>`` on the bound model; the result is projected and clamped."""

    name = "torchattacks"
    variants = True
    norms = (Norm.LINF, Norm.L2)
    usage = "torchattacks:<Name>(key=value,...)"
    examples = ("torchattacks:APGD",)
    stepwise = False

    @classmethod
    def accepts(cls, variant: str | None) -> bool:
        return variant is not None and variant.isidentifier()

    @classmethod
    def spec_key_fields(cls, spec: AttackSpec) -> tuple[str, ...]:
        """Steps are keyed (and labelled) when the torchattacks class takes them."""
        takes_steps = "steps" in torchattacks_signature(_class_name(spec.name))
        return ("eps", "steps", "step_size", "norm") if takes_steps else cls.key_fields

    @classmethod
    def label(cls, spec: AttackSpec) -> str:
        """``TA-<Name>[-<steps>][-L2]``; torchattacks' own AutoAttack says it is weaker."""
        name = _class_name(spec.name)
        suffix = "-L2" if spec.norm is Norm.L2 else ""
        if name == "AutoAttack":  # torchattacks' own: APGD with 10 steps, weaker than the original
            return f"TA-AutoAttack(10-step, weaker){suffix}"
        steps = f"-{spec.steps}" if "steps" in cls.spec_key_fields(spec) else ""
        return f"TA-{name}{steps}{suffix}"

    @classmethod
    def parse(cls, text: AttackText) -> dict[str, Any]:
        """Keyword arguments checked against the class's constructor; its defaults fill in."""
        variant, params, steps = text.variant, text.params, text.steps
        if variant in COMPOSITES:  # they take attack objects, which an attack text cannot hold
            raise UserError(
                f"torchattacks.{variant} combines other attacks; list them instead "
                "(e.g. --attacks pgd20,torchattacks:CW): each gets its own row"
            )
        sig = torchattacks_signature(variant)
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.values())
        unknown = [k for k in params if k not in sig and not accepts_any]
        if unknown or "model" in params or "eps" in params:
            bad = ", ".join(unknown) or "model/eps"
            accepted = ", ".join(k for k in sig if k not in ("self", "model", "eps"))
            raise UserError(f"torchattacks.{variant} does not take {bad}; it accepts: {accepted}")
        typed = {k: v for k, v in params.items() if k != "norm"}  # norm: Norm.parse below
        check_kwargs(f"torchattacks.{variant}", typed, torchattacks_types(variant))
        norm = Norm.parse(params.pop("norm", _signature_default(sig, "norm", "Linf")))
        if variant.endswith("L2"):
            norm = Norm.L2
        n_steps = params.pop(
            "steps", steps if steps is not None else _signature_default(sig, "steps")
        )
        alpha = params.pop(
            "alpha",
            text.step_size if text.step_size is not None else _signature_default(sig, "alpha"),
        )
        if "n_classes" in sig and "n_classes" not in params and text.dataset is not None:
            params["n_classes"] = dataset_info(text.dataset).num_classes
        random_start = bool(params.pop("random_start", _signature_default(sig, "random_start", 0)))
        return {
            "name": TORCHATTACKS_PREFIX + variant,
            "eps": text.eps,
            "steps": int(n_steps) if n_steps is not None else 1,
            "step_size": float(alpha) if alpha is not None else None,
            "norm": norm,
            "random_start": random_start,
            "params": tuple(params.items()),
        }

    @property
    def class_name(self) -> str:
        return _class_name(self.spec.name)

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


def _class_name(spec_name: str) -> str:
    return spec_name[len(TORCHATTACKS_PREFIX) :]


@functools.cache
def torchattacks_signature(cls_name: str) -> dict[str, inspect.Parameter]:
    """Constructor parameters of ``torchattacks.<cls_name>`` (UserError if no such attack)."""
    import torchattacks

    cls = getattr(torchattacks, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, torchattacks.attack.Attack)):
        names = [n for n in getattr(torchattacks, "__all__", dir(torchattacks)) if n[:1].isupper()]
        close = difflib.get_close_matches(cls_name, names, n=3, cutoff=0.4)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise UserError(f"unknown torchattacks attack {cls_name!r}{hint}")
    return dict(inspect.signature(cls.__init__).parameters)


def _signature_default(sig: dict[str, inspect.Parameter], name: str, fallback=None):
    param = sig.get(name)
    if param is None or param.default is inspect.Parameter.empty:
        return fallback
    return param.default
