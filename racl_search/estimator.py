"""Per-op log Lipschitz constants of every (cell, edge, op) slot of a supernet, each search step.

:class:`OperatorEstimator` (``bound="operator"``) splits each op into linear blocks
(:mod:`racl_search.op_pieces`), stacks the blocks of one shape into grouped convolutions and runs
one power iteration per call on ``L`` and its adjoint (autograd's vector-Jacobian product, i.e.
the transposed convolutions), with persistent vectors: warm-started across steps, as spectral
normalisation does (Miyato et al., ICLR 2018). Weight-free parts (max pool gains, the spatial
norm of average pools) are computed once; BatchNorm scales are read live: the batch statistics
the supernet's last recorded forward divided by (train mode), the running ones in eval mode.
:class:`PaperEstimator` (``bound="paper"``) keeps the paper's reading: reshaped weights' spectral
norms by batched power iteration, max pool 1, average pool ``S ** -0.5``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from racl_search.lipschitz import log_block_norm, paper_avg_pool
from racl_search.op_pieces import Gate, LinearMap, ScalePiece, pieces
from racl_search.spectral import power_iteration

NEG_INF = float("-inf")
INIT_ITERS = 50  # power iterations at the first call; one per call afterwards


@dataclass(frozen=True)
class OpSlot:
    """One candidate op of one edge of one cell: ``index`` is its flat position in the output."""

    index: int
    name: str
    stride: int
    module: nn.Module | None
    input_shape: tuple[int, ...] = (1, 1, 1, 1)  # (1, C, H, W) the op sees


def split_blocks(module: nn.Module, shape: tuple[int, ...]) -> tuple[float, list[tuple]]:
    """``(log of the gates' factors, [(linear pieces, input shape), ...])`` of one op."""
    log_gates, blocks, block, block_shape = 0.0, [], [], shape
    with torch.no_grad():
        for piece in pieces(module):
            out = tuple(piece.apply(torch.zeros(shape)).shape)
            if isinstance(piece, Gate):
                factor = piece.factor(shape)
                if factor == 0.0:
                    return NEG_INF, []
                log_gates += math.log(factor)
                if block:
                    blocks.append((block, block_shape))
                block, block_shape = [], out
            else:
                block.append(piece)
            shape = out
    if block:
        blocks.append((block, block_shape))
    return log_gates, blocks


def _is_channelwise(block: Sequence[LinearMap]) -> bool:
    return all(isinstance(p, ScalePiece) or p.channelwise for p in block)


class OperatorEstimator(nn.Module):
    """Operator-norm constants of op slots; the weights are referenced, not owned."""

    def __init__(self, slots: Sequence[OpSlot], size: int) -> None:
        super().__init__()
        const = torch.full((size,), NEG_INF)
        groups: dict[tuple, list[list[LinearMap]]] = {}
        group_slots: dict[tuple, list[int]] = {}
        self._scaled: list[tuple[list[ScalePiece], float]] = []  # (scales, log spatial norm)
        scaled_slots: list[int] = []
        for slot in slots:
            if slot.module is None or slot.name == "none":
                continue
            log_gates, blocks = split_blocks(slot.module, slot.input_shape)
            const[slot.index] = log_gates
            for block, shape in blocks:
                if _is_channelwise(block):
                    spatial = [p for p in block if not isinstance(p, ScalePiece)]
                    log_spatial = log_block_norm(spatial, (1, 1, *shape[2:])) if spatial else 0.0
                    self._scaled.append(([p for p in block if isinstance(p, ScalePiece)],
                                         log_spatial))  # fmt: skip
                    scaled_slots.append(slot.index)
                    continue
                key = (tuple(p.key() for p in block), shape)
                groups.setdefault(key, []).append(block)
                group_slots.setdefault(key, []).append(slot.index)
        self._groups = list(groups.values())
        for g, (key, members) in enumerate(groups.items()):
            shape = key[1]
            v = F.normalize(torch.randn(len(members), math.prod(shape[1:])), dim=1)
            self.register_buffer(f"v_{g}", v.view(1, len(members) * shape[1], *shape[2:]))
        order = [i for key in groups for i in group_slots[key]] + scaled_slots
        self.register_buffer("const", const, persistent=False)
        self.register_buffer("block_slot", torch.tensor(order, dtype=torch.long), persistent=False)
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def forward(self, iters: int = 1) -> Tensor:
        """Log Lipschitz constant of every slot, shape ``(size,)``; ``-inf`` for ``none``."""
        if not bool(self.initialised):
            iters = max(iters, INIT_ITERS)
            self.initialised.fill_(True)
        device = self.const.device
        values = [self._iterate(g, members, iters).log() for g, members in enumerate(self._groups)]
        for scales, log_spatial in self._scaled:
            scale = torch.ones((), device=device)
            for piece in scales:
                scale = scale * piece.scale().to(device)
            values.append((scale.abs().max().clamp_min(1e-12).log() + log_spatial).reshape(1))
        out = self.const.clone()
        if values:
            out.index_add_(0, self.block_slot, torch.cat([v.float().reshape(-1) for v in values]))
        return out

    def _iterate(self, g: int, members: list[list[LinearMap]], iters: int) -> Tensor:
        """``iters`` power iterations on the stacked block ``g``; returns the estimates."""
        v = getattr(self, f"v_{g}")
        n = len(members)
        sigma = torch.zeros(n, device=v.device)
        for _ in range(max(1, iters)):
            with torch.enable_grad():
                x = v.detach().requires_grad_(True)
                y = x
                for position in range(len(members[0])):
                    column = [m[position] for m in members]
                    y = type(column[0]).stacked(column, y)
                per = y.reshape(n, -1)
                sigma = per.norm(dim=1)
                unit = per / sigma.clamp_min(1e-30).unsqueeze(1)
                (back,) = torch.autograd.grad(y, x, unit.view_as(y))
            v.copy_(F.normalize(back.reshape(n, -1), dim=1).view_as(v))
        return sigma.detach().clamp_min(1e-12)


class PaperEstimator(nn.Module):
    """The paper's per-op constants, vectorised; the weights are referenced, not owned."""

    def __init__(self, slots: Sequence[OpSlot], size: int, bn_scale: bool = False) -> None:
        super().__init__()
        self.bn_scale = bn_scale
        const = torch.full((size,), NEG_INF)
        self._groups: dict[tuple[int, int], list[nn.Parameter]] = {}
        self._bns: list[nn.BatchNorm2d] = []
        sources: list[list[tuple[str, tuple[int, int] | None, int]]] = []
        source_slots: list[int] = []
        for slot in slots:
            const[slot.index] = paper_constant(slot)
            if slot.module is None or slot.name == "none":
                continue
            for factor in self._slot_factors(slot):
                sources.append(factor)
                source_slots.append(slot.index)
        self.register_buffer("const", const, persistent=False)
        self._keys = list(self._groups)
        for g, key in enumerate(self._keys):
            u = F.normalize(torch.randn(len(self._groups[key]), key[0]), dim=1)
            self.register_buffer(f"u_{g}", u)
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self._build_index(sources, source_slots)

    def _slot_factors(self, slot: OpSlot) -> list[list[tuple]]:
        """Multiplicative factors of one op; a factor is a max over its sources."""
        factors: list[list[tuple]] = []
        convs = [m for m in slot.module.modules() if isinstance(m, nn.Conv2d)]
        refs = [self._add_weight(c.weight) for c in convs]
        if slot.name == "skip_connect":  # FactorizedReduce: the larger of its two halves
            factors.extend([refs] if refs else [])
        else:
            factors.extend([r] for r in refs)
        if self.bn_scale:
            for bn in (m for m in slot.module.modules() if isinstance(m, nn.BatchNorm2d)):
                self._bns.append(bn)
                factors.append([("bn", None, len(self._bns) - 1)])
        return factors

    def _add_weight(self, weight: nn.Parameter) -> tuple[str, tuple[int, int], int]:
        key = (weight.shape[0], weight[0].numel())
        members = self._groups.setdefault(key, [])
        members.append(weight)
        return ("w", key, len(members) - 1)

    def _build_index(self, sources: list, source_slots: list[int]) -> None:
        offsets, pos = {}, 0
        for key in self._keys:
            offsets[key] = pos
            pos += len(self._groups[key])
        bn_offset = pos
        pos += len(self._bns)  # position ``pos`` holds -inf (padding)
        width = max((len(s) for s in sources), default=1)
        index = torch.full((len(sources), width), pos, dtype=torch.long)
        for f, factor in enumerate(sources):
            for k, (kind, key, i) in enumerate(factor):
                index[f, k] = (offsets[key] if kind == "w" else bn_offset) + i
        self.register_buffer("factor_index", index, persistent=False)
        self.register_buffer("factor_slot", torch.tensor(source_slots, dtype=torch.long),
                             persistent=False)  # fmt: skip

    @torch.no_grad()
    def forward(self, iters: int = 1) -> Tensor:
        """Log constant of every slot, shape ``(size,)``; ``-inf`` for ``none``."""
        if not bool(self.initialised):
            iters = max(iters, 20)
            self.initialised.fill_(True)
        parts = []
        for g, key in enumerate(self._keys):
            mats = torch.stack([w.detach().reshape(key) for w in self._groups[key]])
            u = getattr(self, f"u_{g}")
            sigma, u_new = power_iteration(mats.to(u.dtype), u, iters)
            u.copy_(u_new)
            parts.append(sigma.clamp_min(1e-12).log())
        parts.extend(bn_log_scale(bn).reshape(1) for bn in self._bns)
        device = self.const.device
        parts.append(torch.full((1,), NEG_INF, device=device))
        values = torch.cat([p.to(device=device, dtype=torch.float32) for p in parts])
        out = self.const.clone()
        if self.factor_index.numel():
            out.index_add_(0, self.factor_slot, values[self.factor_index].amax(dim=1))
        return out


def paper_constant(slot: OpSlot) -> float:
    """Log of the weight-free part of the paper's constant (``-inf`` for ``none``)."""
    if slot.name == "none":
        return NEG_INF
    if slot.name == "avg_pool_3x3":
        pool = next((m for m in slot.module.modules() if isinstance(m, nn.AvgPool2d)), None)
        return math.log(paper_avg_pool(pool)) if pool is not None else -0.5 * math.log(slot.stride)
    return 0.0


def bn_log_scale(bn: nn.BatchNorm2d) -> Tensor:
    """``log max_c |gamma_c| / sqrt(var_c + eps)`` (gamma = 1 when not affine; ``var``: the
    recorded batch variance in train mode, else the running one)."""
    return ScalePiece(bn).scale().abs().max().clamp_min(1e-12).log()


def make_estimator(mode: str, slots: Sequence[OpSlot], size: int, bn_scale: bool) -> nn.Module:
    """The estimator of bound ``mode`` (``operator`` or ``paper``)."""
    from racl_search.options import BoundMode

    if BoundMode.parse(mode) is BoundMode.OPERATOR:
        return OperatorEstimator(slots, size)
    return PaperEstimator(slots, size, bn_scale)
