"""A capacity-matched zoo: each model's width scaled so its parameters (or forward FLOPs per
image) come within :data:`MATCH_TOLERANCE` of a reference model's, at the same scale.

The width is the family's own knob: ``init_channels`` for cell networks (DARTS family, RobNet),
``width`` for ResNet and VGG (base channels) and DenseNet (growth rate). Counts are taken on the
``meta`` device (no memory): parameters exactly, FLOPs as :func:`bench.plan.cost.count_flops`
counts them (2 per multiply-add of every convolution and linear layer). Both grow with the width,
so a bisection finds the two widths around the target and the closer one is kept. Widths whose
network cannot be built (a cell network with an odd channel count in a FactorizedReduce) are
skipped. A matched model is its own checkpoint (the width is part of the config hash).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from core.enums import Dataset
from core.errors import UserError

MATCH_TOLERANCE = 0.05  # the matched count lies within 5 % of the reference's when a width can
MEASURES = ("params", "flops")
DEFAULT_REFERENCE = "racl_published"
MAX_WIDTH_FACTOR = 8  # widths searched: 1 .. 8 x the model's own


@dataclass(frozen=True)
class Match:
    """A model's matched width: ``key`` = ``width`` (the value), its count, the target count."""

    model: str
    key: str
    base: int
    width: int
    value: float
    target: float

    @property
    def gap(self) -> float:
        """Relative difference of the matched count from the target."""
        return (self.value - self.target) / self.target

    @property
    def within(self) -> bool:
        return abs(self.gap) <= MATCH_TOLERANCE


def parse_match(text: str) -> tuple[str, str]:
    """``params`` / ``flops`` / ``params=MODEL`` -> (measure, reference); one-line errors."""
    measure, _, reference = text.partition("=")
    if measure not in MEASURES:
        raise UserError(f"--match {text!r}: choose params or flops, optionally =MODEL")
    reference = reference or DEFAULT_REFERENCE
    import models

    try:
        info = models.get_model_info(reference)
    except Exception as err:
        raise UserError(f"--match {text!r}: {err}") from None
    if not info.available:
        raise UserError(f"--match {text!r}: reference {reference} is unavailable ({info.reason})")
    return measure, info.name


def width_key(name: str) -> str:
    """The width knob of ``name``'s family."""
    import models

    defaults = dict(models.get_model_info(name).defaults)
    for key in ("init_channels", "width"):
        if key in defaults:
            return key
    raise UserError(f"--match: {name} has no width to scale")


@functools.cache
def count(name: str, overrides: tuple[tuple[str, Any], ...], dataset: Dataset,
          measure: str) -> float | None:  # fmt: skip
    """Parameters or forward FLOPs per image of ``name`` with ``overrides`` (None: no build)."""
    import torch

    import models
    from bench.plan.cost import count_profile
    from models.params import count_parameters

    kwargs = dict(overrides)
    if "auxiliary" in dict(models.get_model_info(name).defaults):
        kwargs.setdefault("auxiliary", False)  # as the DARTS papers count
    items = tuple(sorted(kwargs.items()))
    try:
        if measure == "flops":
            return count_profile(name, items, dataset)[0]
        with torch.device("meta"):
            return float(count_parameters(models.create_model(name, dataset.value, **kwargs)))
    except Exception:
        return None


def match_width(name: str, reference: str, measure: str, dataset: Dataset,
                overrides: dict[str, Any] | None = None,
                reference_overrides: dict[str, Any] | None = None) -> Match:  # fmt: skip
    """The width of ``name`` whose ``measure`` is closest to ``reference``'s (both with their
    other overrides, e.g. a preset's layers)."""
    import models

    overrides = dict(overrides or {})
    ref_items = tuple(sorted((reference_overrides or {}).items()))
    target = count(reference, ref_items, dataset, measure)
    if target is None:
        raise UserError(f"--match: cannot count {measure} of the reference {reference}")
    key = width_key(name)
    base = int(overrides.get(key, dict(models.get_model_info(name).defaults)[key]))

    def at(width: int) -> float | None:
        return count(name, tuple(sorted({**overrides, key: width}.items())), dataset, measure)

    low, high = 1, MAX_WIDTH_FACTOR * base
    while high - low > 1:  # the largest width whose count stays at or below the target
        mid = (low + high) // 2
        value = at(mid) or at(mid + 1)  # an unbuildable width: judge by its neighbour
        if value is not None and value <= target:
            low = mid
        else:
            high = mid
    candidates = [(w, at(w)) for w in range(max(1, low - 1), high + 2)]
    width, value = min(((w, v) for w, v in candidates if v is not None),
                       key=lambda wv: (abs(wv[1] - target), wv[0]))  # fmt: skip
    return Match(name, key, base, width, value, target)
