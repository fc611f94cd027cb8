"""Type checks of attack keyword arguments, before any cell runs.

A ``torchattacks`` class declares its keyword arguments by its constructor's defaults and its
docstring (``c (float): ...``, ``loss (str): ... ['ce', 'dlr']``). The rule, from both: an int
default wants an int (a float default: an int or a float; a bool default: a bool, or 0 / 1),
except where the docstring says ``float`` (CW's ``c=1``); a None default takes the docstring's
type; a str default wants a str, one of the docstring's listed choices when it lists them; a
tuple default wants a tuple or list. Reasons: docs/decisions/errors.md.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass

from core.errors import UserError

_DOC_LINE = re.compile(r"^\s*(\w+)\s*\(([^)]*)\)\s*:(.*)$", re.M)
_CHOICES = re.compile(r"\[\s*('[^']*'(?:\s*,\s*'[^']*')*)\s*\]")
_KINDS = {"int": "int", "float": "real", "str": "str", "bool": "bool"}


@dataclass(frozen=True)
class ArgType:
    """What one keyword argument takes: ``kind`` (int | real | bool | str | seq | any)."""

    kind: str
    choices: tuple[str, ...] = ()
    optional: bool = False  # None is accepted (the default is None)

    def check(self, owner: str, name: str, value: object) -> None:
        """UserError naming ``owner``'s argument ``name`` when ``value`` does not fit."""
        if (value is None and self.optional) or self.kind == "any" or _fits(self.kind, value):
            if self.choices and value not in self.choices:
                shown = ", ".join(repr(c) for c in self.choices)
                raise UserError(f"{owner}: {name} must be one of {shown}, got {value!r}")
            return
        raise UserError(f"{owner}: {name} must be {_WANTED[self.kind]}, got {value!r}")


_WANTED = {
    "int": "an integer",
    "real": "a number",
    "bool": "True or False",
    "str": "a string",
    "seq": "a tuple or list",
}


def _fits(kind: str, value: object) -> bool:
    if kind == "bool":
        return isinstance(value, bool) or (type(value) is int and value in (0, 1))
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    if kind == "real":
        return isinstance(value, int | float)
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, tuple | list)


def _doc_types(doc: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``{name: (declared type text, listed string choices)}`` from a torchattacks docstring."""
    out = {}
    for name, declared, rest in _DOC_LINE.findall(doc or ""):
        match = _CHOICES.search(rest)
        choices = tuple(re.findall(r"'([^']*)'", match.group(1))) if match else ()
        out[name] = (declared.split(",")[0].strip(), choices)
    return out


def arg_type(default: object, declared: str = "", choices: tuple[str, ...] = ()) -> ArgType:
    """The type of one argument from its default and its docstring's declared type."""
    doc_kind = _KINDS.get(declared)
    if default is None:
        return ArgType(doc_kind or "any", choices if doc_kind == "str" else (), optional=True)
    if isinstance(default, bool):
        return ArgType("bool")
    if isinstance(default, int):
        return ArgType("real" if doc_kind == "real" else "int")
    if isinstance(default, float):
        return ArgType("real")
    if isinstance(default, str):
        return ArgType("str", choices if default in choices else ())
    if isinstance(default, tuple | list):
        return ArgType("seq")
    return ArgType("any")


@functools.cache
def torchattacks_types(cls_name: str) -> dict[str, ArgType]:
    """The keyword argument types of ``torchattacks.<cls_name>`` (its constructor and docs)."""
    import torchattacks

    cls = getattr(torchattacks, cls_name)
    docs = _doc_types(cls.__doc__ or "")
    out = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", "model") or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        if param.default is inspect.Parameter.empty:
            out[name] = ArgType("any")
            continue
        declared, choices = docs.get(name, ("", ()))
        out[name] = arg_type(param.default, declared, choices)
    return out


def check_kwargs(owner: str, params: dict[str, object], types: dict[str, ArgType]) -> None:
    """Check each given keyword argument against its type (names not in ``types`` pass)."""
    for name, value in params.items():
        if name in types:
            types[name].check(owner, name, value)
