"""The search supernet: DARTS cells with PC-DARTS partial channel connections and edge weights.

PC-DARTS (Xu et al., "PC-DARTS: Partial Channel Connections for Memory-Efficient Architecture
Search", ICLR 2020): each mixed op sees ``1/K`` of its input channels, the rest bypass it (max
pooled at stride 2), then the channels are shuffled; pool ops are followed by a non-affine
BatchNorm; node ``j`` sums its incoming edges weighted by ``beta_ij`` (edge normalisation). RACL
(Dong et al., AAAI 2021, Eq. 5) keeps this layout and feeds the mixed ops log-normal samples of
``alpha``/``beta`` instead of softmax weights.

Ops, stem, cell plan and input adapters come from :mod:`models` (one table for search and eval).
The supernet takes already-formed weights (``alpha (2, E, O)``, ``beta (2, E)``; index 0 =
normal cells, 1 = reduction cells) so the same module serves RACL samples, deterministic
parameters and PC-DARTS softmaxes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.compiled import Regions
from genotypes import PRIMITIVES
from models.cells import CellSpec, cell_plan, preprocess, stem
from models.datasets import Normalize, model_dataset
from models.operations import OPS
from racl_search.constraint import CellTopology
from racl_search.estimator import OpSlot, make_estimator
from racl_search.op_pieces import max_pool_gain, record_batch_variance
from racl_search.options import BoundMode


@dataclass(frozen=True)
class SupernetConfig:
    """Shape of the supernet (paper: 8 cells, 16 channels, 4 nodes, K = 4)."""

    dataset: str = "cifar10"
    init_channels: int = 16
    layers: int = 8
    steps: int = 4
    multiplier: int = 4
    stem_multiplier: int = 3
    partial_k: int = 4
    primitives: tuple[str, ...] = PRIMITIVES
    bound: str = BoundMode.OPERATOR.value  # per-op constants: "operator" or "paper"
    bn_scale: bool = False  # paper bound only: times the BatchNorm scales


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave ``groups`` channel groups (ShuffleNet, Zhang et al., CVPR 2018)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def search_op(name: str, C: int, stride: int) -> nn.Module:
    """A candidate op for the search net: non-affine, pools followed by a non-affine BN."""
    op = OPS[name](C, stride, False)
    if "pool" in name:
        op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
    return op


class PartialMixedOp(nn.Module):
    """``sum_o alpha_o * o(x[:, :C/K])`` next to the bypassed channels, then a channel shuffle."""

    def __init__(self, C: int, stride: int, k: int, primitives: Sequence[str]) -> None:
        super().__init__()
        self.k, self.stride = k, stride
        self.names = tuple(primitives)
        self.ops = nn.ModuleList(search_op(name, C // k, stride) for name in primitives)
        self._active = [i for i, name in enumerate(primitives) if name != "none"]

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        part = x.shape[1] // self.k
        head, tail = x[:, :part].contiguous(), x[:, part:]
        mixed = sum(weights[i] * self.ops[i](head) for i in self._active)
        if self.stride > 1:
            tail = F.max_pool2d(tail, 2, 2, ceil_mode=True)
        return channel_shuffle(torch.cat([mixed, tail], dim=1), self.k)


def _eager(module: nn.Module, *inputs: Tensor) -> Tensor:
    return module(*inputs)


class SearchCell(nn.Module):
    """A cell of mixed ops on every edge of the DAG; output = concat of the last nodes."""

    def __init__(self, spec: CellSpec, topology: CellTopology, k: int, primitives: Sequence[str]):
        super().__init__()
        self.spec, self.topology = spec, topology
        self.pre0, self.pre1 = preprocess(spec, affine=False)
        self.edges = nn.ModuleList(
            PartialMixedOp(spec.C_curr, 2 if spec.reduction and i < 2 else 1, k, primitives)
            for _, i in topology.edges
        )
        self.regions: Regions | None = None  # set by Supernet.compile_regions

    def forward(self, s0: Tensor, s1: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        run = _eager
        if self.regions is not None and self.training and torch.is_grad_enabled():
            run = self.regions  # the training steps; evaluation under no_grad stays eager
        offset = 0
        for _ in range(self.topology.steps):
            node = sum(
                beta[offset + i] * run(self.edges[offset + i], h, alpha[offset + i])
                for i, h in enumerate(states)
            )
            offset += len(states)
            states.append(node)
        return torch.cat(states[-self.spec.multiplier :], dim=1)


class Supernet(nn.Module):
    """The weight-sharing network of the search; ``forward(x, alpha, beta)`` returns logits."""

    def __init__(self, config: SupernetConfig) -> None:
        super().__init__()
        if config.init_channels % config.partial_k:
            raise ValueError(
                f"init_channels {config.init_channels} must be a multiple of K={config.partial_k}"
            )
        self.config = config
        shape = model_dataset(config.dataset)
        self.topology = CellTopology.of(config.steps)
        plan = cell_plan(
            config.init_channels, config.layers, config.multiplier, config.stem_multiplier
        )
        self.normalize = Normalize(shape.mean, shape.std)
        self.stem = stem(shape.channels, config.stem_multiplier * config.init_channels)
        self.cells = nn.ModuleList(
            SearchCell(spec, self.topology, config.partial_k, config.primitives) for spec in plan
        )
        self.classifier = nn.Linear(plan[-1].C_out, shape.num_classes)
        self.cell_types = [int(s.reduction) for s in plan]  # 0 normal, 1 reduction
        shapes = self._edge_input_shapes(shape.channels, shape.size)
        self.lipschitz = make_estimator(
            config.bound, self._op_slots(shapes), self.lipschitz_shape.numel(), config.bn_scale
        )
        self.register_buffer("bypass_log", self._bypass_log(shapes), persistent=False)
        self._recording = False
        for cell in self.cells:
            for bn in (m for m in cell.edges.modules() if isinstance(m, nn.BatchNorm2d)):
                bn.register_forward_pre_hook(self._record_hook)

    def _record_hook(self, module: nn.BatchNorm2d, args: tuple) -> None:
        if self._recording:
            record_batch_variance(module, args)

    @contextmanager
    def recording_batch_statistics(self) -> Iterator[None]:
        """Within the block, every train-mode BatchNorm of the mixed ops keeps the variance of
        the batch it normalises (detached); the per-op constants read it (docs/SEARCH.md, D2)."""
        self._recording = True
        try:
            yield
        finally:
            self._recording = False

    @property
    def lipschitz_shape(self) -> torch.Size:
        """``(cells, edges, ops)``."""
        return torch.Size((len(self.cells), self.topology.n_edges, len(self.config.primitives)))

    @torch.no_grad()
    def _edge_input_shapes(self, channels: int, size: int) -> dict[tuple[int, int], tuple]:
        """``(cell, edge) -> (1, C, H, W)`` of each edge's input, from one dry forward pass."""
        shapes: dict[tuple[int, int], tuple] = {}

        def record(key: tuple[int, int]):
            def hook(_module: nn.Module, args: tuple) -> None:
                shapes[key] = (1, *args[0].shape[1:])

            return hook

        hooks = [
            edge.register_forward_pre_hook(record((c, e)))
            for c, cell in enumerate(self.cells)
            for e, edge in enumerate(cell.edges)
        ]
        was_training = self.training
        self.eval()
        alpha = torch.ones(2, self.topology.n_edges, len(self.config.primitives))
        self(torch.zeros(1, channels, size, size), alpha, torch.ones(2, self.topology.n_edges))
        self.train(was_training)
        for hook in hooks:
            hook.remove()
        return shapes

    def _op_slots(self, shapes: dict[tuple[int, int], tuple]) -> list[OpSlot]:
        n_e, n_o = self.topology.n_edges, len(self.config.primitives)
        slots = []
        for c, cell in enumerate(self.cells):
            for e, edge in enumerate(cell.edges):
                n, ch, h, w = shapes[(c, e)]
                head = (1, ch // edge.k, h, w)
                for o, (name, op) in enumerate(zip(edge.names, edge.ops, strict=True)):
                    slots.append(OpSlot((c * n_e + e) * n_o + o, name, edge.stride, op, head))
        return slots

    def _bypass_log(self, shapes: dict[tuple[int, int], tuple]) -> Tensor:
        """``(cells, edges)`` log Lipschitz constant of each edge's bypassed channels.

        Identity at stride 1, a 2x2 max pool at stride 2 (gain 1: disjoint windows); ``-inf``
        (no term) in the paper's reading.
        """
        out = torch.full((len(self.cells), self.topology.n_edges), float("-inf"))
        if self.config.bound != BoundMode.OPERATOR.value:
            return out
        pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        for (c, e), (_, _, h, w) in shapes.items():
            stride = self.cells[c].edges[e].stride
            out[c, e] = 0.0 if stride == 1 else math.log(max_pool_gain(pool, h, w))
        return out

    def forward(self, x: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        s0 = s1 = self.stem(self.normalize(x))
        for cell, t in zip(self.cells, self.cell_types, strict=True):
            s0, s1 = s1, cell(s0, s1, alpha[t], beta[t])
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))

    def compile_regions(self) -> Regions:
        """Compile every mixed op of the training steps (weight and architecture steps; the
        no-grad evaluation stays eager), one graph per distinct op shape and grad mode
        (:class:`core.compiled.Regions`: the whole supernet is one graph of thousands of
        operators, too large to compile on a CPU; docs/decisions/speed.md)."""
        regions = Regions("the supernet's mixed ops")
        for cell in self.cells:
            cell.regions = regions
        return regions

    def log_lipschitz(self, iters: int = 1) -> Tensor:
        """Per-cell, per-edge, per-op log Lipschitz constants (one power-iteration step)."""
        return self.lipschitz(iters).view(self.lipschitz_shape)

    def log_lipschitz_bypass(self) -> Tensor:
        """``(cells, edges)`` log constants of the bypassed channels (see :meth:`_bypass_log`)."""
        return self.bypass_log
