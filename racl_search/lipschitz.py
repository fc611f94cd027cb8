"""Per-op L2 Lipschitz constants, as operators (default) or in the paper's reading.

``op_bound(op, input_shape, mode)`` takes an op module from :data:`models.OPS` (or any chain of
the pieces :mod:`racl_search.op_pieces` knows) and an input shape ``(N, C, H, W)``:

- ``operator``: the op's pieces in order; maximal runs of linear pieces (BatchNorm folded in,
  eval statistics) form blocks, each block's exact operator norm on its real input shape is
  computed by Lanczos (:func:`racl_search.spectral.lanczos_norm`), gates multiply by their
  factor (ReLU 1, max pool ``sqrt(windows per pixel)``). The product is an upper bound of the
  op's Lipschitz constant; it equals it for ops with one block (DilConv, FactorizedReduce,
  pools, identity), and is the composition bound for SepConv's two blocks.
- ``paper``: RACL Sec. 2.2 as written: ``none`` 0, max pool 1, average pool ``S ** -0.5``,
  identity 1, conv ops the product of their weights' spectral norms (weights reshaped to
  ``(out, in/groups * kh * kw)``), FactorizedReduce the larger of its two convs', BatchNorm
  ignored.

Why each rule, the tolerances and the measured check against dense matrices: docs/SEARCH.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from racl_search.op_pieces import (
    ConvPiece,
    Gate,
    LinearMap,
    Piece,
    PoolPiece,
    ReducePiece,
    ScalePiece,
    pieces,
)
from racl_search.options import BoundMode
from racl_search.spectral import lanczos_norm

SAFETY = 1.001  # Lanczos's Ritz value is a lower bound; this margin makes it an upper one


def op_bound(op: nn.Module, input_shape: Sequence[int], mode: str = "operator") -> float:
    """L2 Lipschitz constant of ``op`` on inputs of ``input_shape`` (``mode``: see module doc)."""
    shape = _one_sample(input_shape)
    chain = pieces(op)
    if BoundMode.parse(mode) is BoundMode.PAPER:
        return paper_bound(chain, shape)
    return math.exp(log_chain_bound(chain, shape))


def log_chain_bound(chain: Sequence[Piece], shape: tuple[int, ...]) -> float:
    """``ln`` of the operator-mode bound of a piece chain on one sample of ``shape``."""
    total, block, block_shape = 0.0, [], shape
    with torch.no_grad():
        for piece in chain:
            if isinstance(piece, Gate):
                total += log_block_norm(block, block_shape)
                factor = piece.factor(shape)
                if factor == 0.0:
                    return float("-inf")
                total += math.log(factor)
                block = []
                shape = _out_shape(piece, shape)
                block_shape = shape
            else:
                block.append(piece)
                shape = _out_shape(piece, shape)
        return total + log_block_norm(block, block_shape)


def log_block_norm(block: Sequence[LinearMap], shape: tuple[int, ...]) -> float:
    """``ln ||block||_2`` on inputs of ``shape`` (one sample)."""
    if not block:
        return 0.0
    if all(isinstance(p, ScalePiece) or p.channelwise for p in block):
        return _log_channelwise_norm(block, shape)

    def linear(v: Tensor) -> Tensor:
        for piece in block:
            v = piece.apply(v)
        return v

    return math.log(max(lanczos_norm(linear, shape), 1e-300) * SAFETY)


def _log_channelwise_norm(block: Sequence[LinearMap], shape: tuple[int, ...]) -> float:
    """Scales and per-channel pools: ``max_c |prod of scales_c| * ||pools on one channel||``."""
    scale = torch.ones(shape[1], dtype=torch.float64)
    for piece in block:
        if isinstance(piece, ScalePiece):
            scale = scale * piece.scale().to(torch.float64)
    log_scale = math.log(max(float(scale.abs().max()), 1e-300))
    pools = [p for p in block if isinstance(p, PoolPiece)]
    if not pools:
        return log_scale  # a diagonal: exact

    def spatial(v: Tensor) -> Tensor:
        for pool in pools:
            v = pool.apply(v)
        return v

    one = (1, 1, *shape[2:])
    return log_scale + math.log(max(lanczos_norm(spatial, one), 1e-300) * SAFETY)


def _out_shape(piece: Piece, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The piece's output shape for one input sample of ``shape``."""
    probe = torch.zeros(shape, dtype=torch.float64)
    return tuple(piece.apply(probe).shape)


def _one_sample(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``(1, C, H, W)``: eval-mode ops act on each sample alike, so N does not matter."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"op_bound: input_shape must be (N, C, H, W) > 0, got {input_shape}")
    return (1, *shape[1:])


# -- the paper's reading -------------------------------------------------------------------------


def paper_bound(chain: Sequence[Piece], shape: tuple[int, ...]) -> float:
    """The paper's per-op constant (Sec. 2.2) of a piece chain."""
    value = 1.0
    for piece in chain:
        if isinstance(piece, Gate):
            value *= 0.0 if piece.kind == "zero" else 1.0  # ReLU 1, max pool 1
        elif isinstance(piece, ConvPiece):
            value *= reshaped_norm(piece.conv.weight)
        elif isinstance(piece, ReducePiece):
            halves = (piece.module.conv_1, piece.module.conv_2)
            value *= max(reshaped_norm(c.weight) for c in halves)
        elif isinstance(piece, PoolPiece):
            value *= paper_avg_pool(piece.module)
    return value


def paper_avg_pool(pool: nn.Module) -> float:
    """``S ** -0.5`` with ``S`` the pool's stride (the paper's rule; adaptive pools: 1)."""
    stride = getattr(pool, "stride", 1)
    stride = stride[0] if isinstance(stride, tuple) else stride
    return float(stride) ** -0.5


def reshaped_norm(weight: Tensor) -> float:
    """Largest singular value of a conv weight reshaped to ``(out, in/groups * kh * kw)``."""
    matrix = weight.detach().reshape(weight.shape[0], -1).to(torch.float64)
    return float(torch.linalg.matrix_norm(matrix, ord=2))
