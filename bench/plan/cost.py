"""Cost estimate of a plan: forward-pass equivalents per cell and checkpoint, and seconds.

A forward = 1, a forward+backward to the input = 3. Seconds divide these by each checkpoint's
forward rate: a stated throughput over the FLOPs of one forward pass, counted on the meta device
(nothing is built for real or timed). Where the throughputs come from: docs/decisions/planner.md,
"The cost estimate".
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.datasets import dataset_info
from core.enums import Dataset, EvalKind, Training

if TYPE_CHECKING:
    from bench.plan.units import Cell, CellGroup, ModelRef, Plan

DEFAULT_RATE = 500.0  # forward images/s when not calibrated, or when counting fails
CPU_FLOPS = 30e9  # FLOP/s of full-size DARTS (CIFAR-10) on one CPU thread, rounded down
CUDA_FLOPS = 10e12  # FLOP/s; an assumption for one data-centre GPU, not measured
# CPU seconds per leaf module per batch: the per-operator overhead that bounds the small smoke
# and demo networks, fitted to smoke and demo runs (both CPU figures: docs/decisions/planner.md,
# "The cost estimate").
CPU_LEAF_S = 2e-4
TRAIN_LEAF_FACTOR = 2.0  # training: weight gradients and the optimizer step add per-tensor work
GPU_ASSUMED = "one data-centre GPU (A100/H100 class) at an assumed 10 TFLOP/s effective fp32"

_SHARED_KINDS = (EvalKind.TRANSFER, EvalKind.STEP_SWEEP)  # one generation serves the group


def estimate_costs(plan: Plan, calibrate: bool, checkpoint_dir: Path | None) -> None:
    """Fill each cell's cost, the training cost of checkpoints not on disk, and each
    checkpoint's forward rate (counted when ``calibrate``, else :data:`DEFAULT_RATE`)."""
    cell_costs(plan.cells)
    for h, ref in plan.refs.items():
        on_disk = checkpoint_dir is not None and (checkpoint_dir / f"{h}.safetensors").exists()
        given = on_disk or ref.factory is not None  # a user's model comes with its weights
        plan.train_cost[h] = 0.0 if given else train_cost(ref)
        plan.rates[h] = (
            forward_rate(ref, batch=plan.preset.batch_size) if calibrate else DEFAULT_RATE
        )


def cell_costs(cells: list[Cell]) -> None:
    """Each cell's forward equivalents; a shared generation is split over its group."""
    size: dict[CellGroup, int] = {}
    top: dict[CellGroup, int] = {}
    for c in cells:
        size[c.group] = size.get(c.group, 0) + 1
        top[c.group] = max(top.get(c.group, 1), c.steps or 1)
    for c in cells:
        if c.kind is EvalKind.CLEAN:
            c.cost = float(c.n)
            continue
        kind = c.group.kind
        gen = 3.0 * c.n * (top[c.group] if kind is EvalKind.STEP_SWEEP else (c.steps or 1))
        c.cost = (gen / size[c.group] if kind in _SHARED_KINDS else gen) + c.n


def plan_json(plan: Plan) -> dict[str, Any]:
    """What ``--dry-run --json`` prints of a plan: its counts, estimate and training plan."""
    return {
        "preset": plan.preset.name,
        "seed": plan.seed,
        "cells": len(plan.cells),
        "to_compute": len(plan.missing),
        "cached": len(plan.cached),
        "checkpoints": len(plan.refs),
        "skipped": [dataclasses.asdict(s) for s in plan.skipped],
        "needs_search": sorted({r.model for r in plan.refs.values() if r.needs_search}),
        "estimate": plan_estimate(plan),
        "training_plan": checkpoint_plan(plan),
        "missing": [c.label() for c in plan.missing],
    }


def plan_estimate(plan: Plan) -> dict[str, float]:
    """Estimated cost of the plan's missing work: forward equivalents and seconds."""
    missing = plan.missing
    passes = sum(c.cost for c in missing)
    eval_s = sum(c.cost / plan.rates.get(c.group.checkpoint, DEFAULT_RATE) for c in missing)
    needed = {h for c in missing for h in c.checkpoints()}
    train = {h: v for h, v in plan.train_cost.items() if h in needed}
    train_s = sum(v / train_rate(plan, h) for h, v in train.items())
    return {
        "eval_passes": round(passes),
        "eval_s": round(eval_s, 1),
        "train_passes": round(sum(train.values())),
        "train_s": round(train_s, 1),
        "total_s": round(eval_s + train_s, 1),
    }


def train_cost(ref: ModelRef) -> float:
    """Forward equivalents of training: 3 per image, plus the attack's steps for PGD-AT/TRADES."""
    cfg = ref.cfg
    per_image = 3.0
    if ref.training is not Training.NATURAL:
        per_image += 3.0 * getattr(cfg, "attack_steps", 7) + 1.0
    n = getattr(cfg, "n_train", None) or dataset_info(ref.dataset).train_size
    return n * getattr(cfg, "epochs", 1) * per_image


def train_rate(plan: Plan, h: str) -> float:
    """Forward images/s while training checkpoint ``h`` (at its training batch size)."""
    rate = plan.rates.get(h, DEFAULT_RATE)
    if rate == DEFAULT_RATE or h not in plan.refs:
        return rate
    return forward_rate(plan.refs[h], leaf_factor=TRAIN_LEAF_FACTOR)


def forward_rate(
    ref: ModelRef, gpu: bool = False, batch: int | None = None, leaf_factor: float = 1.0
) -> float:
    """Forward images/s of the checkpoint's architecture: throughput over FLOPs per image, on a
    CPU bounded by the per-operator overhead (``CPU_LEAF_S`` per leaf module and batch of
    ``batch`` images, default the training batch)."""
    name = "racl_published" if ref.needs_search else ref.model
    flops = forward_flops(name, ref.overrides, ref.dataset)
    if flops is None:
        return DEFAULT_RATE
    if gpu or device_throughput() == CUDA_FLOPS:
        return CUDA_FLOPS / flops
    batch = max(batch or getattr(ref.cfg, "batch_size", 128), 1)
    leaves = leaf_modules(name, ref.overrides, ref.dataset)
    overhead = leaf_factor * CPU_LEAF_S * leaves / batch
    return 1.0 / max(flops / CPU_FLOPS, overhead)


def leaf_modules(name: str, overrides: tuple[tuple[str, Any], ...], dataset: Dataset) -> int:
    """Leaf modules of the architecture (0 when building fails)."""
    return _profile(name, overrides, dataset)[1]


def _adversary(ref: ModelRef) -> str | None:
    """``PGD-7 8/255 step 2/255`` for an adversarial training; None for natural."""
    cfg = ref.cfg
    if ref.training is Training.NATURAL or cfg is None:
        return None
    kind = "PGD" if ref.training is Training.PGD_AT else "TRADES-KL"
    return (
        f"{kind}-{cfg.attack_steps} {cfg.eps * 255:g}/255 step {cfg.attack_step_size * 255:g}/255"
    )


def checkpoint_plan(plan: Plan) -> dict[str, Any]:
    """Each checkpoint to train (not on disk): model, dataset, training, recipe, epochs, estimated
    hours here and on the assumed GPU; and the GPU-hour total."""
    rows = []
    for h, ref in sorted(plan.refs.items(), key=lambda kv: kv[1].label):
        passes = plan.train_cost.get(h, train_cost(ref))
        if passes <= 0:
            continue
        here = passes / plan.rates.get(h, DEFAULT_RATE) / 3600
        rows.append({
            "model": ref.model,
            "dataset": ref.dataset.value,
            "training": ref.training.value,
            "recipe": ref.recipe,
            "epochs": getattr(ref.cfg, "epochs", None),
            "adversary": _adversary(ref),
            "config_hash": h,
            "hours": round(here, 4),
            "gpu_hours": round(passes / forward_rate(ref, gpu=True) / 3600, 4),
        })  # fmt: skip
    total = sum(r["gpu_hours"] for r in rows)
    return {"gpu_assumed": GPU_ASSUMED, "gpu_hours": round(total, 2), "checkpoints": rows}


def forward_flops(
    name: str, overrides: tuple[tuple[str, Any], ...], dataset: Dataset
) -> float | None:
    """FLOPs of one image's forward pass, counted on the meta device; None when counting fails."""
    return _profile(name, overrides, dataset)[0]


TABLE = Path(__file__).with_name("flops_table.json")


def table_key(name: str, overrides: tuple[tuple[str, Any], ...], dataset: Dataset) -> str:
    """The key of an architecture in :data:`TABLE`."""
    return f"{name}|{json.dumps(sorted(map(list, overrides)))}|{Dataset.parse(dataset).value}"


@functools.cache
def _table() -> dict[str, list]:
    return json.loads(TABLE.read_text()) if TABLE.is_file() else {}


@functools.cache
def _profile(
    name: str, overrides: tuple[tuple[str, Any], ...], dataset: Dataset
) -> tuple[float | None, int]:
    """(forward FLOPs per image or None, leaf modules): from :data:`TABLE` (written by
    ``python -m bench.plan.cost``), else counted on a model built on the meta device."""
    cached = _table().get(table_key(name, overrides, dataset))
    if cached is not None:
        return float(cached[0]), int(cached[1])
    return count_profile(name, overrides, dataset)


def count_profile(
    name: str, overrides: tuple[tuple[str, Any], ...], dataset: Dataset
) -> tuple[float | None, int]:
    """(FLOPs, leaf modules) counted now (seconds for a full-size cell network)."""
    try:
        import torch

        from models import create_model

        with torch.device("meta"):
            model = create_model(name, dataset=dataset.value, **dict(overrides)).eval()
        leaves = sum(1 for m in model.modules() if next(m.children(), None) is None)
        x = torch.empty(1, *dataset_info(dataset).shape, device="meta")
        return count_flops(model, x) or None, leaves
    except Exception:  # an estimate only: fall back rather than fail the plan
        return None, 0


def model_capacity(model: Any, dataset: Dataset) -> tuple[int, float | None]:
    """``(parameters, forward FLOPs per image)`` of a live model at ``dataset``'s input size
    (:func:`count_flops` on one zero image; None when its forward refuses the probe)."""
    import torch

    params = sum(int(p.numel()) for p in model.parameters())
    try:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        x = torch.zeros(1, *dataset_info(dataset).shape, device=device)
        return params, count_flops(model, x) or None
    except Exception:  # a capacity column, not a verdict: leave it empty rather than fail
        return params, None


def count_flops(model: Any, x: Any) -> float:
    """FLOPs of ``model(x)`` as ``torch.utils.flop_counter`` counts them (2 per multiply-add of
    every convolution and linear layer, nothing else), from forward hooks: the same number
    (tests/test_cost.py) at a fraction of FlopCounterMode's cost on a 20-cell network."""
    import torch
    from torch import nn

    total = [0.0]

    def conv(m: nn.Conv2d, args: tuple, out: torch.Tensor) -> None:
        total[0] += 2.0 * out.numel() * (m.in_channels // m.groups) * m.weight[0, 0].numel()

    def linear(m: nn.Linear, args: tuple, out: torch.Tensor) -> None:
        total[0] += 2.0 * out.numel() * m.in_features

    hooks = [
        m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return total[0]


@functools.cache
def device_throughput() -> float:
    """FLOP/s assumed for the run: :data:`CUDA_FLOPS` when CUDA is there, else :data:`CPU_FLOPS`."""
    import torch

    return CUDA_FLOPS if torch.cuda.is_available() else CPU_FLOPS
