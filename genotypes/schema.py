"""Typed, frozen architecture values: a DARTS-format cell ``Genotype`` and a ``RobNetArch``.

Both validate themselves on construction (lists are accepted and frozen into tuples), so a value
that exists is well formed. The genotype format follows DARTS (Liu et al., ICLR 2019): node ``k``
owns pairs ``2k`` and ``2k+1``; an input index ``i`` names state ``i`` (0 and 1 are the two
previous cells, 2.. the intermediate nodes), so ``i < k + 2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from genotypes.errors import GenotypeError
from genotypes.validation import check_cell, check_concat, check_robnet


def _as_tuple(value: object) -> object:
    """A list becomes a tuple; anything else is left for the checks to reject clearly."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return tuple(value)
    return value


def _as_nested_tuple(value: object) -> object:
    value = _as_tuple(value)
    return tuple(_as_tuple(v) for v in value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Genotype:
    """A normal and a reduction cell: ``(op, input_index)`` pairs, two per node, plus concat."""

    normal: tuple[tuple[str, int], ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[tuple[str, int], ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        for field in ("normal", "reduce"):
            object.__setattr__(self, field, _as_nested_tuple(getattr(self, field)))
        for field in ("normal_concat", "reduce_concat"):
            object.__setattr__(self, field, _as_tuple(getattr(self, field)))
        for cell in ("normal", "reduce"):
            nodes = check_cell(getattr(self, cell), cell)
            check_concat(getattr(self, f"{cell}_concat"), nodes, f"{cell}_concat")

    @property
    def normal_nodes(self) -> int:
        return len(self.normal) // 2

    @property
    def reduce_nodes(self) -> int:
        return len(self.reduce) // 2


@dataclass(frozen=True)
class RobNetArch:
    """RobNet cell codes: 14 two-bit edge codes per cell; one shared cell or one per layer."""

    cells: tuple[tuple[str, ...], ...]
    share: bool
    init_channels: int
    layers: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "cells", _as_nested_tuple(self.cells))
        check_robnet(self.cells, self.share, self.init_channels, self.layers)

    def cell_codes(self, index: int) -> tuple[str, ...]:
        """The 14 codes of cell ``index`` (the shared cell when ``share``)."""
        if not 0 <= index < self.layers:
            raise GenotypeError(f"cell index {index} out of range [0, {self.layers})")
        return self.cells[0] if self.share else self.cells[index]
