"""``torch.compile`` as an execution detail: one compiled module per model, static batch shapes,
eager on failure (bench's attack and training steps; in core so that any layer can use it).

Compiling changes no key and no stored number beyond float rounding (docs/decisions/speed.md).
:func:`compiled` keeps one ``torch.compile`` result per model object, for the life of the process
(the compiled module holds its model, so its weak key never dies; ``bench run`` loads each
checkpoint once; :func:`reset` frees them). Dynamo compiles one graph per (input shape, mode) and
reuses it across cells, and across checkpoints of one architecture (parameters are graph inputs, so
a second instance costs no full compile: docs/decisions/speed.md, "What compiling costs here").
:func:`static_forward` pads an eval-mode batch to the largest row count it has seen for the model,
so the last, short batch of a slice and the shrinking batches of early stopping reuse the full
batch's graph instead of compiling new ones (rows are independent in eval mode; the padding rows
are sliced off before the loss), and a larger batch runs in chunks of it (:data:`CHUNK_ROWS`); in
eval mode it compiles the model with its batch norms folded into their convolutions
(:mod:`core.fold`, the same function up to float rounding), whose compiled module lives with the
folded copy in that module's cache. A compile that fails, at ``torch.compile`` or at the first
call, prints one warning line and the model runs eager from then on. When to compile is the
caller's rule (``bench.run.compile_policy`` for bench run); :class:`Regions` compiles a repeated
block one instance at a time.
"""

from __future__ import annotations

import dataclasses
import sys
import weakref

import torch
from torch import Tensor, nn

from core import fold
from core.pooling import opaque_pools

# A batch larger than the static graph's is run in chunks of the graph's batch once that batch
# has at least this many rows (below it, a larger batch compiles a larger graph instead): an
# eval batch of 128 after batches of 100 costs 200 rows' work instead of a second compile and
# padding every later batch of 100 to 128 (docs/decisions/speed.md, "`--compile`").
CHUNK_ROWS = 64


@dataclasses.dataclass
class _Entry:
    module: nn.Module | None  # None: compiling failed, run eager
    rows: int = 0  # the largest eval batch seen: shorter ones are padded to it


_CACHE: weakref.WeakKeyDictionary[nn.Module, _Entry] = weakref.WeakKeyDictionary()


def _warn(name: str, err: BaseException) -> None:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    print(f"warning: torch.compile failed for {name} ({first}); running eager", file=sys.stderr)


def _compile(
    model: nn.Module, name: str | None = None, options: dict[str, object] | None = None
) -> _Entry:
    """``torch.compile(model)`` (with inductor ``options``), or an eager entry and one warning
    (naming ``name``, default the model's class) when it raises."""
    try:
        return _Entry(torch.compile(model, dynamic=False, options=options))
    except Exception as err:  # noqa: BLE001 - any compile failure: eager, said once
        _warn(name or type(model).__name__, err)
        return _Entry(None)


def _entry(model: nn.Module) -> _Entry:
    entry = _CACHE.get(model)
    if entry is None:
        entry = _CACHE[model] = _compile(model)
    return entry


def compiled(model: nn.Module) -> nn.Module:
    """The model's compiled module (made once, shared by every caller), or the model itself
    when compiling failed. It shares the model's parameters, buffers and mode."""
    module = _entry(model).module
    return model if module is None else module


def call(model: nn.Module, *inputs: Tensor) -> Tensor:
    """``compiled(model)(*inputs)``; a failure of the compiled call warns once and runs eager."""
    return _run(_entry(model), model, *inputs)


def _run(entry: _Entry, model: nn.Module, *inputs: Tensor) -> Tensor:
    if entry.module is None:
        return model(*inputs)
    try:
        return entry.module(*inputs)
    except Exception as err:  # noqa: BLE001 - a backend failure: eager from now on
        _warn(type(model).__name__, err)
        entry.module = None
        return model(*inputs)


def static_forward(model: nn.Module, x: Tensor, channels_last: bool = False) -> Tensor:
    """``model(x)`` compiled, an eval-mode batch padded to the largest batch seen (static shape).

    In eval mode the compiled module is that of the batch-norm-folded copy of
    :func:`core.fold.folded_entry` in the given memory format (made once per weights, the
    compiled module kept with it, so a copy made stale by new weights goes with its compiled
    module). In training mode the batch is passed as is (batch norm would see the padding rows).
    """
    n = len(x)
    if model.training:
        return call(model, x)
    if n == 0:
        return model(x)
    holder = fold.folded_entry(model, channels_last)
    if holder is None or holder.module is None:
        net, entry = model, _entry(model)
    else:
        net = holder.module
        entry = holder.extra.get("compiled")
        if entry is None:  # channels_last on a CPU: max pools as ATen's kernels (core.pooling)
            graph = opaque_pools(net) if channels_last and x.device.type == "cpu" else net
            entry = holder.extra["compiled"] = _compile(graph)
    if n > entry.rows and entry.rows < CHUNK_ROWS:
        entry.rows = n  # a new static graph: the first batch, or one above a small first
    if n > entry.rows:  # chunks of the graph's batch, the last padded (no second graph)
        parts = [_padded(entry, net, x[i : i + entry.rows]) for i in range(0, n, entry.rows)]
        out = torch.cat(parts)
    else:
        out = _padded(entry, net, x)
    return out if net is model else fold.run_hooks(model, x, out)  # the copy has no hooks


def _padded(entry: _Entry, net: nn.Module, x: Tensor) -> Tensor:
    n = len(x)
    if n < entry.rows:
        pad = x.new_zeros((entry.rows - n, *x.shape[1:]))
        return _run(entry, net, torch.cat([x, pad]))[:n]
    return _run(entry, net, x)


def reset() -> None:
    """Forget every compiled module and folded copy (tests; a new process starts empty)."""
    _CACHE.clear()
    fold.reset()


class Guarded(nn.Module):
    """A model whose forward runs through :func:`call` (compiled, eager on failure); for the
    training steps. The DARTS auxiliary logits are read through from the network."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: Tensor) -> Tensor:
        return call(self.net, *inputs)

    @property
    def aux_logits(self) -> Tensor | None:
        return getattr(self.net, "aux_logits", None)


def _region_options(inputs: tuple[Tensor, ...]) -> dict[str, object] | None:
    """Inductor options of a region: on a CPU without inductor's channels-last layout
    optimisation. With it, the compiled backward of the supernet's mixed ops hands oneDNN's
    convolution backward channels-last gradients of a few channels, which corrupts the heap on
    an AVX2-only AMD EPYC with torch 2.13 (docs/decisions/speed.md, "Search compile on a CPU")."""
    on_cpu = bool(inputs) and inputs[0].device.type == "cpu"
    return {"layout_optimization": False} if on_cpu else None


class Regions:
    """Regional compilation: ``torch.compile`` per module instance of a repeated block (the
    search supernet's mixed ops), for a network too large to compile as one graph.

    Instances of one class share dynamo's graphs when their shapes and constants agree
    (parameters are graph inputs), so a supernet compiles once per (channels, stride, input
    shape, grad mode) instead of once per edge; ``limit`` raises dynamo's recompile limit (8 per
    code object) for these calls, so every such variant compiles instead of the ninth running
    eager unannounced. A failure, at ``torch.compile`` or at a compiled call, prints one warning
    line for all the regions, which run eager from then on.
    """

    def __init__(self, label: str, limit: int = 64) -> None:
        self.label = label
        self.limit = limit
        self.failed = False
        self._compiled: weakref.WeakKeyDictionary[nn.Module, nn.Module] = (
            weakref.WeakKeyDictionary()
        )

    def _fail(self, err: BaseException) -> None:
        _warn(self.label, err)
        self.failed = True
        self._compiled.clear()

    def __call__(self, module: nn.Module, *inputs: Tensor) -> Tensor:
        if self.failed:
            return module(*inputs)
        fast = self._compiled.get(module)
        if fast is None:
            fast = _compile(module, self.label, _region_options(inputs)).module
            if fast is None:  # warned by _compile
                self.failed = True
                return module(*inputs)
            self._compiled[module] = fast
        try:
            with torch._dynamo.config.patch(recompile_limit=self.limit):
                return fast(*inputs)
        except Exception as err:  # noqa: BLE001 - a backend failure: eager from now on
            self._fail(err)
            return module(*inputs)
