"""The parts of a training recipe around the loop of :func:`bench.training.trainer.train`: the
optimizer (with or without weight decay on normalisation weights and biases), the learning-rate
schedule (cosine, step, constant; linear warm-up), cutout and mixed-precision autocast.

Each part leaves the loop exactly as it is without the part when its setting is at its default,
so configs that do not use it train the same weights (docs/decisions/store.md, "Recipe fields
and older states"). Sources of the settings: docs/PROTOCOL.md.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from core.errors import UserError

if TYPE_CHECKING:
    from bench.training.config import TrainConfig

_NORMS = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """One group; or, when ``cfg.bn_bias_decay`` is False, normalisation weights and biases in a
    second group without weight decay."""
    if cfg.bn_bias_decay:
        return [{"params": list(model.parameters())}]
    decay, plain = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            (plain if isinstance(module, _NORMS) or name == "bias" else decay).append(p)
    return [{"params": decay}, {"params": plain, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum (or Adam) over :func:`param_groups`."""
    groups = param_groups(model, cfg)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """A per-iteration schedule over ``cfg.epochs * steps_per_epoch`` steps (None: constant).

    Cosine without warm-up is torch's own ``CosineAnnealingLR`` (a default setting leaves the
    loop as it is: see the module docstring); with a warm-up of ``w`` epochs the rate rises
    linearly over ``w * steps_per_epoch`` steps, then follows the cosine (or step, or constant)
    schedule over the remaining steps. Step: the rate is multiplied by ``lr_gamma`` at each
    epoch of ``lr_milestones``.
    """
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "cosine" and cfg.warmup_epochs == 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if cfg.schedule == "constant" and cfg.warmup_epochs == 0:
        return None
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(cfg, step, steps_per_epoch)
    )


def lr_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning-rate multiplier after ``step`` iterations (the LambdaLR rule)."""
    warm = cfg.warmup_epochs * steps_per_epoch
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "step":
        epoch = step // steps_per_epoch
        return cfg.lr_gamma ** sum(epoch >= m for m in cfg.lr_milestones)
    if cfg.schedule == "cosine":
        span = max(cfg.epochs * steps_per_epoch - warm, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warm, span) / span))
    return 1.0


def cutout(x: Tensor, length: int) -> Tensor:
    """DARTS cutout: per image one ``length`` x ``length`` square (clipped at the border, centre
    uniform over the image) set to 0. Draws from the global torch generator."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n,), device=x.device)[:, None, None]
    cx = torch.randint(0, w, (n,), device=x.device)[:, None, None]
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    half = length // 2
    inside = (rows >= cy - half) & (rows < cy + length - half)
    inside = inside & (cols >= cx - half) & (cols < cx + length - half)
    return x * (~inside)[:, None].to(x.dtype)


def check_amp(cfg: TrainConfig, device: torch.device) -> None:
    """fp16 needs CUDA (loss scaling); bf16 runs on any device."""
    if cfg.amp == "fp16" and device.type != "cuda":
        raise UserError("amp fp16 needs a CUDA device (use bf16, or amp off)")


@contextlib.contextmanager
def autocast(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """``torch.autocast`` in ``cfg.amp``'s dtype; nothing when amp is off."""
    if cfg.amp == "off":
        yield
        return
    with torch.autocast(device.type, dtype=AMP_DTYPES[cfg.amp]):
        yield


def grad_scaler(cfg: TrainConfig, device: torch.device) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 on CUDA; None otherwise."""
    if cfg.amp == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None
