"""Attack specifications: a frozen, validated value naming an attack and its budget.

An :class:`AttackSpec` is independent of any model, so one spec serves every model of a sweep; its
:meth:`AttackSpec.key` is the canonical text identity stored with each result. Text such as
``pgd20``, ``mim``, ``autoattack`` or ``torchattacks:APGD(steps=10,n_restarts=1)`` becomes a spec
through :func:`parse_attack`; keyword values are read with :func:`ast.literal_eval` (never eval).
What each attack is (steps, step rule, key fields, label) is declared by its class in the
registry (:mod:`bench.attacks.registry`); this module only reads it.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field

from bench.attacks.base import Attack, AttackText
from bench.attacks.registry import ATTACKS, find_attack
from bench.inputs import MAX_STEPS
from core.enums import Dataset, Norm
from core.errors import UserError

# The order of the fields in a key; each attack declares which of them its key shows.
_KEY_ORDER = ("eps", "steps", "step_size", "norm", "random_start", "decay")


def _fmt(value: object) -> str:
    """Canonical text of a value: floats rounded to 6 decimals, trailing zeros dropped."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        text = f"{round(value, 6):.6f}".rstrip("0").rstrip(".")
        return text if text not in ("", "-0") else "0"
    if isinstance(value, Norm):
        return value.value
    return repr(value)


@dataclass(frozen=True)
class AttackSpec:
    """One attack and its budget, bound to a model only when called.

    ``name``: a registered attack (``fgsm | pgd | mim | autoattack | torchattacks:<Name>``);
    ``eps`` the radius of the threat ball (images in [0, 1]); ``steps``/``step_size`` for
    iterative attacks (``step_size`` None = the attack's default); ``decay`` the MIM momentum;
    ``params`` extra keyword arguments (sorted pairs) for ``torchattacks`` classes and AutoAttack.
    """

    name: str
    eps: float
    steps: int = 1
    step_size: float | None = None
    norm: Norm = Norm.LINF
    random_start: bool = False
    decay: float = 1.0
    params: tuple[tuple[str, object], ...] = field(default=())

    def __post_init__(self) -> None:
        norm = Norm.parse(self.norm)
        object.__setattr__(self, "norm", norm)
        object.__setattr__(self, "eps", float(self.eps))
        object.__setattr__(self, "params", tuple(sorted(dict(self.params).items())))
        cls = find_attack(self.name)
        if cls is None:
            raise _unknown(self.name)
        _check_budget(self.eps, self.steps, self.step_size)
        if norm not in cls.norms:
            raise UserError(f"{self.name} supports only the linf norm here, got {norm.value}")

    @property
    def attack_class(self) -> type[Attack]:
        """The registered class that runs this spec (and declares its key and label)."""
        return find_attack(self.name)

    @property
    def alpha(self) -> float | None:
        """The step size in use: ``step_size`` or the attack's default."""
        if self.step_size is not None:
            return float(self.step_size)
        return self.attack_class.default_step_size(self.eps, self.steps)

    @property
    def fixed_step_iterative(self) -> bool:
        """Whether the k-step run is the first k steps of the K-step run (PGD, MIM)."""
        return self.attack_class.fixed_step_iterative

    def key(self) -> str:
        """Canonical stable identity: ``pgd(eps=0.031373,steps=20,step_size=0.007843,...)``."""
        shown = self.attack_class.spec_key_fields(self)
        values = {
            "eps": self.eps,
            "steps": int(self.steps),
            "step_size": self.alpha,
            "norm": self.norm,
            "random_start": bool(self.random_start),
            "decay": float(self.decay),
        }
        fields: list[tuple[str, object]] = [
            (name, values[name])
            for name in _KEY_ORDER
            if (name in shown or (name == "random_start" and self.random_start))
            and values[name] is not None
        ]
        fields.extend(self.params)
        return f"{self.name}({','.join(f'{k}={_fmt(v)}' for k, v in fields)})"

    def label(self) -> str:
        """Short human label: ``FGSM``, ``PGD-20``, ``MIM-10``, ``AutoAttack``, ``TA-APGD``."""
        return self.attack_class.label(self)

    def at_eps(self, eps: float) -> AttackSpec:
        """This spec at another budget, its step size scaled in proportion (step/eps kept)."""
        step = None if self.step_size is None else self.step_size * eps / self.eps
        return dataclasses.replace(self, eps=float(eps), step_size=step)

    def __str__(self) -> str:
        return self.key()


def default_step_size(
    name: str, eps: float, steps: int, dataset: Dataset | None = None
) -> float | None:
    """Default step size of attack ``name`` (its class's rule; None if it has none)."""
    cls = find_attack(name)
    return None if cls is None else cls.default_step_size(eps, steps, dataset)


def parse_eps(value: str | float | int) -> float:
    """Read a budget: ``8/255``, ``0.3`` or a number; must lie in [0, 1]."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        eps = float(value)
    else:
        text = str(value).strip()
        try:
            if "/" in text:
                num, den = text.split("/", 1)
                eps = float(num) / float(den)
            else:
                eps = float(text)
        except (ValueError, ZeroDivisionError):
            raise UserError(f"cannot read budget {value!r}; write e.g. 8/255 or 0.3") from None
    if not 0.0 <= eps <= 1.0:
        raise UserError(f"eps must lie in [0, 1] (images are in [0, 1]), got {eps:g}")
    return eps


_TEXT_RE = re.compile(r"^\s*([A-Za-z]+(?::\w+)?)(\d+)?\s*(?:\((.*)\))?\s*$", re.S | re.I)


def parse_attack(
    text: str,
    *,
    eps: str | float,
    step_size: str | float | None = None,
    steps: int | None = None,
    dataset: str | Dataset | None = None,
) -> AttackSpec:
    """Spec from ``fgsm``, ``pgd20``, ``mim``, ``autoattack``, ``torchattacks:APGD(steps=10)``."""
    match = _TEXT_RE.match(text or "")
    if not match:
        raise _unknown(text)
    base, digits, arg_text = match.group(1), match.group(2), match.group(3)
    ds = Dataset.parse(dataset) if dataset is not None else None
    budget = parse_eps(eps)
    alpha = parse_eps(step_size) if isinstance(step_size, str) else step_size
    params = parse_kwargs(arg_text) if arg_text is not None else {}
    name, colon, variant = base.partition(":")
    cls = ATTACKS.get(name.lower())
    if cls is None or bool(colon) != cls.variants or (digits and not cls.fixed_step_iterative):
        raise _unknown(text)
    if digits:
        if len(digits) > 7:  # int() of thousands of digits is slow; no attack runs 10**7 steps
            raise UserError(f"{name.lower()}{digits[:12]}...: at most {MAX_STEPS} steps")
        if steps is not None and int(digits) != int(steps):
            raise UserError(f"{name.lower()}{digits} names {digits} steps but --steps is {steps}")
        steps = int(digits)
    text_read = AttackText(variant if colon else None, budget, steps, alpha, params, ds)
    return AttackSpec(**cls.parse(text_read))


def parse_kwargs(arg_text: str) -> dict[str, object]:
    """``steps=10, loss='ce'`` -> dict, each value read by :func:`ast.literal_eval`."""
    try:
        call = ast.parse(f"f({arg_text})", mode="eval").body
    except SyntaxError:
        raise UserError(f"cannot read attack arguments ({arg_text}); write key=value,...") from None
    if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
        raise UserError(f"attack arguments must be key=value pairs, got ({arg_text})")
    out: dict[str, object] = {}
    for kw in call.keywords:
        if kw.arg in out:
            raise UserError(f"attack argument {kw.arg} is given twice in ({arg_text[:80]})")
        try:
            value = ast.literal_eval(kw.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise UserError(f"argument {kw.arg} must be a literal (number, string, bool)") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"attack argument {kw.arg}={value} is not a finite number")
        if isinstance(value, complex):
            raise UserError(f"attack argument {kw.arg}={value} is complex")
        out[kw.arg] = value
    return out


def _check_budget(eps: float, steps: int, step_size: float | None) -> None:
    if not 0.0 <= eps <= 1.0:
        raise UserError(f"eps must lie in [0, 1] (images are in [0, 1]), got {eps:g}")
    if int(steps) != steps or not 1 <= steps <= MAX_STEPS:
        raise UserError(f"steps must be an integer in [1, {MAX_STEPS}], got {steps}")
    if step_size is not None and not 0 < step_size < float("inf"):
        raise UserError(f"step size must be > 0 and finite, got {step_size:g}")


def _usage(cls: type[Attack]) -> str:
    return cls.usage or (f"{cls.name}[N]" if cls.fixed_step_iterative else cls.name)


def _unknown(text: str) -> UserError:
    examples = [e for cls in ATTACKS.values() for e in (cls.examples or (cls.name,))]
    close = difflib.get_close_matches(str(text).strip().lower(), examples, n=3, cutoff=0.3)
    hint = f"; closest: {', '.join(close)}" if close else ""
    known = ", ".join(_usage(cls) for cls in ATTACKS.values())
    return UserError(f"unknown attack {text!r}{hint} (known: {known})")
