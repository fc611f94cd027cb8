"""Attack specifications: a frozen, validated value naming an attack and its budget.

An :class:`AttackSpec` is independent of any model, so one spec serves every model of a sweep; its
:meth:`AttackSpec.key` is the canonical text identity stored with each result. Text such as
``pgd20``, ``mim``, ``autoattack`` or ``torchattacks:APGD(steps=10,n_restarts=1)`` becomes a spec
through :func:`parse_attack`; keyword values are read with :func:`ast.literal_eval` (never eval).
"""

from __future__ import annotations

import ast
import difflib
import functools
import inspect
import re
from dataclasses import dataclass, field

from core.enums import Dataset, Norm
from core.errors import UserError

OWN_ATTACKS = ("fgsm", "pgd", "mim")
TORCHATTACKS_PREFIX = "torchattacks:"
_EXAMPLES = ("fgsm", "pgd", "pgd20", "pgd100", "mim", "mim10", "autoattack", "torchattacks:APGD")
_DEFAULT_STEPS = {"fgsm": 1, "pgd": 20, "mim": 10, "autoattack": 100}
# Keys the spec holds itself; torchattacks keyword names mapped onto them.
_SPEC_KWARGS = {"steps": "steps", "alpha": "step_size", "norm": "norm"}


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

    ``name``: ``fgsm | pgd | mim | autoattack | torchattacks:<Name>``; ``eps`` the radius of the
    threat ball (images in [0, 1]); ``steps``/``step_size`` for iterative attacks (``step_size``
    None = the attack's default); ``decay`` the MIM momentum; ``params`` extra keyword arguments
    (sorted pairs) for ``torchattacks`` classes and AutoAttack.
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
        try:
            norm = Norm.parse(self.norm)
        except ValueError as err:
            raise UserError(str(err)) from None
        object.__setattr__(self, "norm", norm)
        object.__setattr__(self, "eps", float(self.eps))
        object.__setattr__(self, "params", tuple(sorted(dict(self.params).items())))
        _check_name(self.name)
        _check_budget(self.eps, self.steps, self.step_size)
        if self.name in OWN_ATTACKS and norm is not Norm.LINF:
            raise UserError(f"{self.name} supports only the linf norm here, got {norm.value}")

    @property
    def alpha(self) -> float | None:
        """The step size in use: ``step_size`` or the attack's default."""
        if self.step_size is not None:
            return float(self.step_size)
        return default_step_size(self.name, self.eps, self.steps)

    def key(self) -> str:
        """Canonical stable identity: ``pgd(eps=0.031373,steps=20,step_size=0.007843,...)``."""
        fields: list[tuple[str, object]] = [("eps", self.eps)]
        if self.name in ("pgd", "mim") or self._external_takes("steps"):
            fields.append(("steps", int(self.steps)))
        if self.alpha is not None and self.name != "autoattack":
            fields.append(("step_size", self.alpha))
        fields.append(("norm", self.norm))
        if self.name == "pgd" or self.random_start:
            fields.append(("random_start", bool(self.random_start)))
        if self.name == "mim":
            fields.append(("decay", float(self.decay)))
        fields.extend(self.params)
        return f"{self.name}({','.join(f'{k}={_fmt(v)}' for k, v in fields)})"

    def label(self) -> str:
        """Short human label: ``FGSM``, ``PGD-20``, ``MIM-10``, ``AutoAttack``, ``TA-APGD``."""
        suffix = "-L2" if self.norm is Norm.L2 else ""
        if self.name == "fgsm":
            return "FGSM" + suffix
        if self.name in ("pgd", "mim"):
            return f"{self.name.upper()}-{self.steps}{suffix}"
        if self.name == "autoattack":
            return "AutoAttack" + suffix
        cls = self.name[len(TORCHATTACKS_PREFIX) :]
        if cls == "AutoAttack":  # torchattacks' own: APGD with 10 steps, weaker than the original
            return f"TA-AutoAttack(10-step, weaker){suffix}"
        steps = f"-{self.steps}" if self._external_takes("steps") else ""
        return f"TA-{cls}{steps}{suffix}"

    def _external_takes(self, arg: str) -> bool:
        if not self.name.startswith(TORCHATTACKS_PREFIX):
            return False
        return arg in torchattacks_signature(self.name[len(TORCHATTACKS_PREFIX) :])

    def __str__(self) -> str:
        return self.key()


def default_step_size(
    name: str, eps: float, steps: int, dataset: Dataset | None = None
) -> float | None:
    """Default step size of our attacks.

    FGSM: eps. MIM: eps/steps (Dong et al. 2018). PGD: eps/4, i.e. 2/255 at eps 8/255 as in the
    RACL/RobNet CIFAR evaluation; on MNIST-like sets eps*20/76.5, i.e. the paper's 20/255 at 0.3.
    """
    if name == "fgsm":
        return eps
    if name == "mim":
        return eps / max(int(steps), 1)
    if name == "pgd":
        if dataset in (Dataset.MNIST, Dataset.FASHION_MNIST):
            return eps * 20.0 / 76.5
        return eps / 4.0
    return None


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


_TEXT_RE = re.compile(r"^\s*(torchattacks:\w+|[A-Za-z]+)(\d+)?\s*(?:\((.*)\))?\s*$", re.S | re.I)


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
    if base.lower().startswith(TORCHATTACKS_PREFIX):
        if digits:
            raise _unknown(text)
        cls_name = base[len(TORCHATTACKS_PREFIX) :]
        return _torchattacks_spec(cls_name, budget, alpha, steps, params, ds)
    name = base.lower()
    if name not in (*OWN_ATTACKS, "autoattack") or (digits and name not in ("pgd", "mim")):
        raise _unknown(text)
    n_steps = _resolve_steps(name, digits, steps)
    if name == "autoattack":
        return _autoattack_spec(budget, params)
    if params:
        raise UserError(f"{name} takes no keyword arguments; use --steps / --step-size")
    if alpha is None:
        alpha = default_step_size(name, budget, n_steps, ds)
    return AttackSpec(name, budget, n_steps, alpha, Norm.LINF, random_start=name == "pgd")


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
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            raise UserError(f"argument {kw.arg} must be a literal (number, string, bool)") from None
    return out


def _resolve_steps(name: str, digits: str | None, steps: int | None) -> int:
    if digits and steps is not None and int(digits) != int(steps):
        raise UserError(f"{name}{digits} names {digits} steps but --steps is {steps}")
    if name == "fgsm":
        return 1
    value = int(digits) if digits else (steps if steps is not None else _DEFAULT_STEPS[name])
    return int(value)


def _autoattack_spec(eps: float, params: dict[str, object]) -> AttackSpec:
    norm = _norm_from_param(params.pop("norm", "Linf"))
    allowed = {"version", "seed"}
    if set(params) - allowed:
        raise UserError(f"autoattack accepts only: norm, {', '.join(sorted(allowed))}")
    params.setdefault("version", "standard")
    params.setdefault("seed", 0)
    return AttackSpec("autoattack", eps, 100, None, norm, params=tuple(params.items()))


def _torchattacks_spec(
    cls_name: str,
    eps: float,
    alpha: float | None,
    steps: int | None,
    params: dict[str, object],
    ds: Dataset | None,
) -> AttackSpec:
    sig = torchattacks_signature(cls_name)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.values())
    unknown = [k for k in params if k not in sig and not accepts_any]
    if unknown or "model" in params or "eps" in params:
        bad = ", ".join(unknown) or "model/eps"
        accepted = ", ".join(k for k in sig if k not in ("self", "model", "eps"))
        raise UserError(f"torchattacks.{cls_name} does not take {bad}; it accepts: {accepted}")
    norm = _norm_from_param(params.pop("norm", _signature_default(sig, "norm", "Linf")))
    if cls_name.endswith("L2"):
        norm = Norm.L2
    n_steps = params.pop("steps", steps if steps is not None else _signature_default(sig, "steps"))
    alpha = params.pop("alpha", alpha if alpha is not None else _signature_default(sig, "alpha"))
    if "n_classes" in sig and "n_classes" not in params and ds is not None:
        params["n_classes"] = _num_classes(ds)
    return AttackSpec(
        TORCHATTACKS_PREFIX + cls_name,
        eps,
        int(n_steps) if n_steps is not None else 1,
        float(alpha) if alpha is not None else None,
        norm,
        random_start=bool(params.pop("random_start", _signature_default(sig, "random_start", 0))),
        params=tuple(params.items()),
    )


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


def _norm_from_param(value: object) -> Norm:
    try:
        return Norm.parse(value)
    except ValueError as err:
        raise UserError(str(err)) from None


def _num_classes(ds: Dataset) -> int:
    return 100 if ds is Dataset.CIFAR100 else 10


def _check_name(name: str) -> None:
    if name in (*OWN_ATTACKS, "autoattack"):
        return
    if name.startswith(TORCHATTACKS_PREFIX) and name[len(TORCHATTACKS_PREFIX) :].isidentifier():
        return
    raise _unknown(name)


def _check_budget(eps: float, steps: int, step_size: float | None) -> None:
    if not 0.0 <= eps <= 1.0:
        raise UserError(f"eps must lie in [0, 1] (images are in [0, 1]), got {eps:g}")
    if int(steps) != steps or steps < 1:
        raise UserError(f"steps must be an integer >= 1, got {steps}")
    if step_size is not None and not step_size > 0:
        raise UserError(f"step size must be > 0, got {step_size:g}")


def _unknown(text: str) -> UserError:
    close = difflib.get_close_matches(str(text).strip().lower(), _EXAMPLES, n=3, cutoff=0.3)
    hint = f"; closest: {', '.join(close)}" if close else ""
    return UserError(
        f"unknown attack {text!r}{hint} (known: fgsm, pgd[N], mim[N], autoattack, "
        f"torchattacks:<Name>(key=value,...))"
    )
