"""Per-operation Lipschitz constants of the search space (RACL, Dong et al., AAAI 2021, Sec. 2.2).

``none`` 0, ``skip_connect`` 1 (a reduction cell's FactorizedReduce: the max of its two convs'
spectral norms), max pool 1, avg pool ``S ** -0.5``, conv ops the product of their weights'
spectral norms by power iteration (Miyato et al., ICLR 2018), optionally times the BatchNorm scale.
:class:`LipschitzEstimator` batches this over every (cell, edge, op) slot of a supernet. The
reasons for each rule: docs/SEARCH.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CONV_PREFIXES = ("sep_conv", "dil_conv", "conv_")
NEG_INF = float("-inf")


def weight_matrix(weight: Tensor) -> Tensor:
    """A conv/linear weight reshaped to ``(out, in / groups * kh * kw)``."""
    return weight.reshape(weight.shape[0], -1)


@torch.no_grad()
def power_iteration(matrices: Tensor, u: Tensor, iters: int = 1) -> tuple[Tensor, Tensor]:
    """Batched power iteration: ``matrices (G, m, n)``, left vectors ``u (G, m)``.

    Returns the largest singular value estimates ``(G,)`` and the updated unit vectors ``u``.
    """
    for _ in range(max(1, iters)):
        v = F.normalize(torch.bmm(matrices.transpose(1, 2), u.unsqueeze(-1)).squeeze(-1), dim=1)
        wv = torch.bmm(matrices, v.unsqueeze(-1)).squeeze(-1)
        u = F.normalize(wv, dim=1)
    return (u * wv).sum(dim=1), u


def spectral_norm_estimate(weight: Tensor, iters: int = 50) -> float:
    """Largest singular value of one reshaped weight by power iteration (for checks and tests)."""
    w = weight_matrix(weight.detach()).unsqueeze(0)
    u = F.normalize(torch.randn(1, w.shape[1], dtype=w.dtype, device=w.device), dim=1)
    sigma, _ = power_iteration(w, u, iters)
    return float(sigma.item())


def constant_log_lipschitz(name: str, stride: int) -> float:
    """Log of the weight-free part of an op's constant (``-inf`` for ``none``)."""
    if name == "none":
        return NEG_INF
    if name == "avg_pool_3x3":
        return -0.5 * math.log(stride)
    return 0.0


def is_conv_op(name: str, stride: int) -> bool:
    """Whether the op's constant comes from its conv weights."""
    return name.startswith(CONV_PREFIXES) or (name == "skip_connect" and stride > 1)


@dataclass(frozen=True)
class OpSlot:
    """One candidate op of one edge of one cell: ``index`` is its flat position in the output."""

    index: int
    name: str
    stride: int
    module: nn.Module | None


class LipschitzEstimator(nn.Module):
    """Vectorised per-op Lipschitz constants for a list of op slots.

    The persistent power-iteration vectors are buffers (they travel with ``.to()`` and the
    supernet's ``state_dict``); the weights are referenced, not owned.
    """

    def __init__(self, slots: Sequence[OpSlot], size: int, bn_scale: bool = False) -> None:
        super().__init__()
        self.size = size
        self.bn_scale = bn_scale
        const = torch.tensor([NEG_INF] * size)
        self._groups: dict[tuple[int, int], list[nn.Parameter]] = {}
        self._bn_groups: dict[int, list[nn.BatchNorm2d]] = {}
        factor_sources: list[list[tuple[str, tuple[int, int] | int, int]]] = []
        factor_slots: list[int] = []
        for slot in slots:
            const[slot.index] = constant_log_lipschitz(slot.name, slot.stride)
            if slot.module is None or slot.name == "none":
                continue
            for sources in self._slot_factors(slot):
                factor_sources.append(sources)
                factor_slots.append(slot.index)
        self.register_buffer("const", const, persistent=False)
        self._group_keys = sorted(self._groups)
        self._bn_keys = sorted(self._bn_groups)
        for g, key in enumerate(self._group_keys):
            u = F.normalize(torch.randn(len(self._groups[key]), key[0]), dim=1)
            self.register_buffer(f"u_{g}", u)
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self._build_index(factor_sources, factor_slots)

    def _slot_factors(self, slot: OpSlot) -> list[list[tuple[str, tuple[int, int] | int, int]]]:
        """The multiplicative factors of one op; each factor is a max over its sources."""
        factors: list[list[tuple[str, tuple[int, int] | int, int]]] = []
        if is_conv_op(slot.name, slot.stride):
            convs = [m for m in slot.module.modules() if isinstance(m, nn.Conv2d)]
            refs = [self._add_weight(c.weight) for c in convs]
            if slot.name == "skip_connect":  # FactorizedReduce: max over the disjoint halves
                factors.append(refs)
            else:
                factors.extend([r] for r in refs)
        if self.bn_scale:
            for bn in (m for m in slot.module.modules() if isinstance(m, nn.BatchNorm2d)):
                factors.append([self._add_bn(bn)])
        return factors

    def _add_weight(self, weight: nn.Parameter) -> tuple[str, tuple[int, int], int]:
        key = tuple(weight_matrix(weight).shape)
        members = self._groups.setdefault(key, [])
        members.append(weight)
        return ("w", key, len(members) - 1)

    def _add_bn(self, bn: nn.BatchNorm2d) -> tuple[str, int, int]:
        members = self._bn_groups.setdefault(bn.num_features, [])
        members.append(bn)
        return ("bn", bn.num_features, len(members) - 1)

    def _build_index(self, factor_sources: list, factor_slots: list[int]) -> None:
        """Map every factor source to a position in the flat vector of log values."""
        offsets: dict[tuple[str, object], int] = {}
        pos = 0
        for key in self._group_keys:
            offsets[("w", key)] = pos
            pos += len(self._groups[key])
        for key in self._bn_keys:
            offsets[("bn", key)] = pos
            pos += len(self._bn_groups[key])
        self._n_values = pos  # position ``pos`` holds -inf (padding)
        width = max((len(s) for s in factor_sources), default=1)
        index = torch.full((len(factor_sources), width), pos, dtype=torch.long)
        for f, sources in enumerate(factor_sources):
            for k, (kind, key, i) in enumerate(sources):
                index[f, k] = offsets[(kind, key)] + i
        self.register_buffer("factor_index", index, persistent=False)
        self.register_buffer(
            "factor_slot", torch.tensor(factor_slots, dtype=torch.long), persistent=False
        )

    @torch.no_grad()
    def log_values(self, iters: int = 1) -> Tensor:
        """Refresh the power iterations and return every source's log value (plus -inf pad)."""
        if not bool(self.initialised):
            iters = max(iters, 20)  # converge once at the start, then one step per refresh
            self.initialised.fill_(True)
        parts = []
        for g, key in enumerate(self._group_keys):
            mats = torch.stack([weight_matrix(w.detach()) for w in self._groups[key]])
            u = getattr(self, f"u_{g}")
            sigma, u_new = power_iteration(mats.to(u.dtype), u, iters)
            u.copy_(u_new)
            parts.append(sigma.clamp_min(1e-12).log())
        for key in self._bn_keys:
            parts.append(torch.stack([bn_log_scale(bn) for bn in self._bn_groups[key]]))
        device = self.const.device
        parts.append(torch.full((1,), NEG_INF, device=device))
        return torch.cat([p.to(device=device, dtype=torch.float32) for p in parts])

    @torch.no_grad()
    def forward(self, iters: int = 1) -> Tensor:
        """Log Lipschitz constant of every slot, shape ``(size,)``; ``-inf`` for ``none``."""
        values = self.log_values(iters)
        out = self.const.clone()
        if self.factor_index.numel():
            factors = values[self.factor_index].amax(dim=1)
            out.index_add_(0, self.factor_slot, factors)
        return out


def bn_log_scale(bn: nn.BatchNorm2d) -> Tensor:
    """``log max_c |gamma_c| / sqrt(running_var_c + eps)`` (gamma = 1 when not affine)."""
    var = bn.running_var if bn.running_var is not None else torch.ones(bn.num_features)
    scale = (var + bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.detach().abs()
    return scale.max().clamp_min(1e-12).log()
