"""String-valued enums of the search (``racl_search`` cannot import ``bench.enums``)."""

from __future__ import annotations

from enum import Enum


class _Choice(str, Enum):
    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: object):  # noqa: ANN206 - returns a member of cls
        if isinstance(value, cls):
            return value
        text = str(value).strip().lower().replace("-", "_")
        for member in cls:
            if member.value == text:
                return member
        choices = ", ".join(m.value for m in cls)
        raise ValueError(f"unknown {cls.__name__.lower()} {value!r}; choose one of: {choices}")

    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]


class SearchMethod(_Choice):
    """``racl``: confidence learning; ``racl_no_cl``: point bound; ``pc_darts``: no constraint."""

    RACL = "racl"
    RACL_NO_CL = "racl_no_cl"
    PC_DARTS = "pc_darts"


class Strength(_Choice):
    """How a log-normal op strength is read when deriving: median, mean, lower bound."""

    MEDIAN = "median"
    MEAN = "mean"
    LCB = "lcb"


class WeightMode(_Choice):
    """How ``alpha``/``beta`` are formed: a log-normal sample, ``exp(mu)``, or softmax."""

    SAMPLE = "sample"
    MEDIAN = "median"
    SOFTMAX = "softmax"


def weight_mode(method: SearchMethod) -> WeightMode:
    """The mixture weights each method trains with."""
    return {
        SearchMethod.RACL: WeightMode.SAMPLE,
        SearchMethod.RACL_NO_CL: WeightMode.MEDIAN,
        SearchMethod.PC_DARTS: WeightMode.SOFTMAX,
    }[method]
