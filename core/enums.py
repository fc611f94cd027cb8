"""String-valued enums for the suite's closed vocabularies, normalised at every entry point.

One ``parse``/``values`` implementation (:class:`StrEnum`) serves every package.
"""

from __future__ import annotations

from enum import Enum

from core.errors import UserError


class UnknownChoice(UserError, ValueError):
    """A value outside an enum's choices (the message lists them)."""


class StrEnum(str, Enum):
    """A str-valued enum whose ``parse`` accepts members, values and case/dash variants."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: object) -> StrEnum:
        if isinstance(value, cls):
            return value
        text = str(value).strip().lower().replace("-", "_")
        for member in cls:
            if member.value == text:
                return member
        choices = ", ".join(m.value for m in cls)
        raise UnknownChoice(f"unknown {cls.__name__.lower()} {value!r}; choose one of: {choices}")

    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]


class Dataset(StrEnum):
    CIFAR10 = "cifar10"
    CIFAR100 = "cifar100"
    MNIST = "mnist"
    FASHION_MNIST = "fashion_mnist"


class Norm(StrEnum):
    LINF = "linf"
    L2 = "l2"


class Training(StrEnum):
    NATURAL = "natural"
    PGD_AT = "pgd_at"
    TRADES = "trades"


class Device(StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class EvalKind(StrEnum):
    """The evaluation kinds of the results store."""

    CLEAN = "clean"
    WHITEBOX = "whitebox"
    TRANSFER = "transfer"
    STEP_SWEEP = "step_sweep"
    EPS_SWEEP = "eps_sweep"


class SearchMethod(StrEnum):
    """``racl``: confidence learning; ``racl_no_cl``: point bound; ``pc_darts``: no constraint."""

    RACL = "racl"
    RACL_NO_CL = "racl_no_cl"
    PC_DARTS = "pc_darts"


class Strength(StrEnum):
    """How a log-normal op strength is read when deriving: median, mean, lower bound."""

    MEDIAN = "median"
    MEAN = "mean"
    LCB = "lcb"
