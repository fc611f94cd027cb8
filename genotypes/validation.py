"""Checks on genotype data; each raises :class:`GenotypeError` naming the field and the fault.

The rules are those of the DARTS cell format (Liu et al., ICLR 2019) and of RobNet cell codes
(Guo et al., CVPR 2020). Names are compared against a fixed vocabulary, never evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence

from genotypes.errors import GenotypeError
from genotypes.ops import KNOWN_OPS, ROBNET_EDGES, ROBNET_OPS


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_list(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def check_cell(pairs: object, cell: str) -> int:
    """Validate one cell's ``(op, input)`` pairs; return its number of intermediate nodes."""
    if not _is_list(pairs) or not pairs:
        raise GenotypeError(f"{cell}: expected a non-empty list of [op, input_index] pairs")
    if len(pairs) % 2:
        raise GenotypeError(
            f"{cell}: {len(pairs)} pairs; every node needs exactly two inputs (an even count)"
        )
    for position, pair in enumerate(pairs):
        _check_pair(pair, position, cell)
    return len(pairs) // 2


def _check_pair(pair: object, position: int, cell: str) -> None:
    where = f"{cell} pair {position} (node {position // 2})"
    if not _is_list(pair) or len(pair) != 2:
        raise GenotypeError(f"{where}: expected [op, input_index], got {pair!r}")
    op, index = pair
    if not isinstance(op, str) or op not in KNOWN_OPS:
        raise GenotypeError(f"{where}: unknown op {op!r}; known ops: {', '.join(KNOWN_OPS)}")
    node = position // 2
    if not _is_int(index) or not 0 <= index < node + 2:
        raise GenotypeError(
            f"{where}: input index {index!r} must be an int in [0, {node + 2}) "
            "(0, 1 = previous cells, 2.. = earlier nodes)"
        )


def check_concat(concat: object, nodes: int, field: str) -> None:
    """Validate concat indices: ints in ``[2, 2 + nodes)``, unique, at least one."""
    if not _is_list(concat) or not concat:
        raise GenotypeError(f"{field}: expected a non-empty list of node indices")
    for value in concat:
        if not _is_int(value):
            raise GenotypeError(f"{field}: index {value!r} is not an int")
        if not 2 <= value < 2 + nodes:
            raise GenotypeError(
                f"{field}: index {value} out of range [2, {2 + nodes}) for {nodes} nodes"
            )
    if len(set(concat)) != len(concat):
        raise GenotypeError(f"{field}: duplicate indices in {list(concat)}")


def check_robnet(cells: object, share: object, init_channels: object, layers: object) -> None:
    """Validate RobNet codes: 14 codes in {00, 01, 10, 11} per cell; 1 cell or one per layer."""
    if not isinstance(share, bool):
        raise GenotypeError(f"share: expected true or false, got {share!r}")
    for name, value, top in (("init_channels", init_channels, 1024), ("layers", layers, 1000)):
        if not _is_int(value) or not 1 <= value <= top:
            raise GenotypeError(
                f"{name}: expected a positive int at most {top}, got {str(value)[:20]}"
            )
    if not _is_list(cells) or not cells:
        raise GenotypeError("cells: expected a non-empty list of cells (lists of 14 codes)")
    wanted = 1 if share else layers
    if len(cells) != wanted:
        rule = "exactly 1 (share=true)" if share else f"{layers}, one per layer (share=false)"
        raise GenotypeError(f"cells: {len(cells)} cells given; expected {rule}")
    for index, codes in enumerate(cells):
        _check_robnet_cell(codes, index)


def _check_robnet_cell(codes: object, index: int) -> None:
    if not _is_list(codes) or len(codes) != ROBNET_EDGES:
        count = len(codes) if _is_list(codes) else type(codes).__name__
        raise GenotypeError(f"cell {index}: expected {ROBNET_EDGES} edge codes, got {count}")
    for edge, code in enumerate(codes):
        if not isinstance(code, str) or code not in ROBNET_OPS:
            raise GenotypeError(
                f"cell {index} edge {edge}: code {code!r} not one of {', '.join(ROBNET_OPS)}"
            )
