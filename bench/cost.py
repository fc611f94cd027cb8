"""Cost estimate of a plan: forward-pass equivalents per cell and checkpoint, and seconds.

A forward = 1, a forward+backward to the input = 3. Seconds divide these by each checkpoint's
forward rate: a stated throughput over the FLOPs of one forward pass, counted on the meta device
(nothing is built for real or timed). How the throughputs were measured or assumed:
``docs/decisions/planner.md``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.datasets import dataset_info
from core.enums import Dataset, EvalKind, Training

if TYPE_CHECKING:
    from bench.cells import Cell, CellGroup, ModelRef, Plan

DEFAULT_RATE = 500.0  # forward images/s when not calibrated, or when counting fails
CPU_FLOPS = 30e9  # FLOP/s; measured on DARTS (CIFAR-10), see docs/decisions/planner.md
CUDA_FLOPS = 10e12  # FLOP/s; an assumption for one data-centre GPU, not measured

_SHARED_KINDS = (EvalKind.TRANSFER, EvalKind.STEP_SWEEP)  # one generation serves the group


def estimate_costs(plan: Plan, calibrate: bool, checkpoint_dir: Path | None) -> None:
    """Fill each cell's cost, the training cost of checkpoints not on disk, and each
    checkpoint's forward rate (counted when ``calibrate``, else :data:`DEFAULT_RATE`)."""
    cell_costs(plan.cells)
    for h, ref in plan.refs.items():
        on_disk = checkpoint_dir is not None and (checkpoint_dir / f"{h}.safetensors").exists()
        given = on_disk or ref.factory is not None  # a user's model comes with its weights
        plan.train_cost[h] = 0.0 if given else train_cost(ref)
        plan.rates[h] = forward_rate(ref) if calibrate else DEFAULT_RATE


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


def plan_estimate(plan: Plan) -> dict[str, float]:
    """Estimated cost of the plan's missing work: forward equivalents and seconds."""
    missing = plan.missing
    passes = sum(c.cost for c in missing)
    eval_s = sum(c.cost / plan.rates.get(c.group.checkpoint, DEFAULT_RATE) for c in missing)
    needed = {h for c in missing for h in c.checkpoints()}
    train = {h: v for h, v in plan.train_cost.items() if h in needed}
    train_s = sum(v / plan.rates.get(h, DEFAULT_RATE) for h, v in train.items())
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


def forward_rate(ref: ModelRef) -> float:
    """Forward images/s of the checkpoint's architecture: throughput over FLOPs per image."""
    name = "racl_published" if ref.needs_search else ref.model
    flops = forward_flops(name, ref.overrides, ref.dataset)
    return DEFAULT_RATE if flops is None else device_throughput() / flops


@functools.cache
def forward_flops(
    name: str, overrides: tuple[tuple[str, Any], ...], dataset: Dataset
) -> float | None:
    """FLOPs of one image's forward pass, counted on the meta device; None when counting fails."""
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        from models import create_model

        with torch.device("meta"):
            model = create_model(name, dataset=dataset.value, **dict(overrides)).eval()
        x = torch.empty(1, *dataset_info(dataset).shape, device="meta")
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        return float(counter.get_total_flops()) or None
    except Exception:  # an estimate only: fall back rather than fail the plan
        return None


@functools.cache
def device_throughput() -> float:
    """FLOP/s assumed for the run: :data:`CUDA_FLOPS` when CUDA is there, else :data:`CPU_FLOPS`."""
    import torch

    return CUDA_FLOPS if torch.cuda.is_available() else CPU_FLOPS
