"""``torch.compile`` as an execution detail: one compiled module per model, static batch shapes,
eager on failure, and the rule that decides when compiling repays its cost.

Compiling changes no key and no stored number beyond float rounding (docs/decisions/speed.md).
:func:`compiled` keeps one ``torch.compile`` result per model object (weakly, so a model freed
frees it); dynamo compiles one graph per (input shape, mode) and reuses it across cells, and
across checkpoints of one architecture (parameters are graph inputs: measured, a second
ResNet-18 instance compiles in 0.2 s against 6-67 s for the first). :func:`static_forward` pads
an eval-mode batch to the largest row count it has seen for the model, so the last, short batch
of a slice and the shrinking batches of early stopping reuse the full batch's graph instead of
compiling new ones (rows are independent in eval mode; the padding rows are sliced off before
the loss). A compile that fails, at ``torch.compile`` or at
the first call, prints one warning line and the model runs eager from then on.
"""

from __future__ import annotations

import dataclasses
import sys
import weakref
from typing import Any

import torch
from torch import Tensor, nn

# Measured on the 2-core CPU, one thread, demo-size DARTS at batch 100, the attack step with
# frozen weights (tests/benchmarks/test_roofline.py): compiled/eager 2.13-2.41x (issue 14: 4.0x
# against an eager 37 img/s, here 151-257); first compile 160 s here, 255-268 s in issue 14.
CPU_SPEEDUP = 2.0  # the low end, rounded down
CPU_COMPILE_S = 270.0  # per model architecture compiled (instances share the graph)


@dataclasses.dataclass
class _Entry:
    module: nn.Module | None  # None: compiling failed, run eager
    rows: int = 0  # the largest eval batch seen: shorter ones are padded to it


_CACHE: weakref.WeakKeyDictionary[nn.Module, _Entry] = weakref.WeakKeyDictionary()


def _warn(model: nn.Module, err: BaseException) -> None:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    name = type(model).__name__
    print(f"warning: torch.compile failed for {name} ({first}); running eager", file=sys.stderr)


def _entry(model: nn.Module) -> _Entry:
    entry = _CACHE.get(model)
    if entry is None:
        try:
            entry = _Entry(torch.compile(model, dynamic=False))
        except Exception as err:  # noqa: BLE001 - any compile failure: eager, said once
            _warn(model, err)
            entry = _Entry(None)
        _CACHE[model] = entry
    return entry


def compiled(model: nn.Module) -> nn.Module:
    """The model's compiled module (made once, shared by every caller), or the model itself
    when compiling failed. It shares the model's parameters, buffers and mode."""
    module = _entry(model).module
    return model if module is None else module


def call(model: nn.Module, x: Tensor) -> Tensor:
    """``compiled(model)(x)``; a failure of the compiled call warns once and runs eager."""
    entry = _entry(model)
    if entry.module is None:
        return model(x)
    try:
        return entry.module(x)
    except Exception as err:  # noqa: BLE001 - a backend failure: eager from now on
        _warn(model, err)
        entry.module = None
        return model(x)


def static_forward(model: nn.Module, x: Tensor) -> Tensor:
    """``model(x)`` compiled, an eval-mode batch padded to the largest batch seen (static shape).

    In training mode the batch is passed as is (batch norm would see the padding rows).
    """
    entry = _entry(model)
    n = len(x)
    if model.training or n == 0:
        return call(model, x)
    entry.rows = max(entry.rows, n)
    if n < entry.rows:
        pad = x.new_zeros((entry.rows - n, *x.shape[1:]))
        return call(model, torch.cat([x, pad]))[:n]
    return call(model, x)


def worth_compiling(device: str | torch.device, preset: str, eval_s: float, models: int) -> bool:
    """The ``--compile auto`` rule: on CUDA for the paper preset; on a CPU only when the plan's
    estimated attack time saved, ``eval_s * (1 - 1/CPU_SPEEDUP)``, exceeds the compile cost,
    ``models * CPU_COMPILE_S`` (one compile per model architecture)."""
    if torch.device(device).type == "cuda":
        return preset == "paper"
    return eval_s * (1.0 - 1.0 / CPU_SPEEDUP) > models * CPU_COMPILE_S


def choose(flag: str, **estimate: Any) -> bool:
    """``--compile on|off|auto`` -> whether to compile (auto: :func:`worth_compiling`)."""
    if flag == "auto":
        return worth_compiling(**estimate)
    return flag == "on"


def reset() -> None:
    """Forget every compiled module (tests; a new process starts empty anyway)."""
    _CACHE.clear()


def run_options(compile_flag: str, amp: str, plan: Any, device: str) -> dict[str, Any]:
    """The attack options of ``bench run --compile/--amp`` for ``plan`` (a :class:`Plan`).

    ``--compile auto`` applies :func:`worth_compiling` to the plan's estimate (its evaluation
    seconds, and one compile per architecture with missing cells: checkpoints of one
    architecture share the graph); ``--amp bf16`` runs attack generation under bf16 autocast
    (verdicts stay float32)."""
    from core import distributed

    dev = distributed.resolve_device(device)
    hashes = {h for c in plan.missing for h in c.checkpoints()}
    models = len({(plan.refs[h].model, plan.refs[h].overrides) for h in hashes if h in plan.refs})
    eval_s = float(plan.estimate()["eval_s"])
    on = choose(compile_flag, device=dev, preset=plan.preset.name, eval_s=eval_s, models=models)
    options: dict[str, Any] = {"compile": on}
    if amp == "bf16":
        options["amp_dtype"] = torch.bfloat16
    return options


class Guarded(nn.Module):
    """A model whose forward runs through :func:`call` (compiled, eager on failure); for the
    training step. The DARTS auxiliary logits are read through from the network."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return call(self.net, x)

    @property
    def aux_logits(self) -> Tensor | None:
        return getattr(self.net, "aux_logits", None)
