"""One epoch of :func:`bench.training.train`: cutout, autocast, the objective under the step's
attack budget, the (scaled) backward pass, clipping, the optimizer and schedule steps."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from torch import nn

from bench import objectives, train_parts
from core import distributed
from core.errors import UserError
from core.progress import progress_bar

if TYPE_CHECKING:
    from bench.training import TrainConfig


@dataclass
class EpochLoop:
    """One epoch of training under a config (optimizer, schedule, autocast, cutout)."""

    cfg: TrainConfig
    dev: torch.device
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: object
    progress: bool

    def epoch(self, model, loader, epoch: int, first: int, total_steps: int) -> dict:  # noqa: ANN001
        cfg = self.cfg
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        t0 = time.perf_counter()
        desc = f"train {epoch + 1}/{cfg.epochs}"
        bar = progress_bar(total=_loader_size(loader), desc=desc, enabled=self.progress)
        for step, (x, y) in enumerate(loader, start=first):
            x, y = x.to(self.dev, non_blocking=True), y.to(self.dev, non_blocking=True)
            if cfg.cutout:
                x = train_parts.cutout(x, cfg.cutout)
            with train_parts.autocast(cfg, self.dev):
                loss, logits = objectives.OBJECTIVES[cfg.training](
                    model, x, y, budget_at(cfg, step, total_steps)
                )
            self._step(model, loss)
            loss_sum += loss.item() * y.shape[0]
            correct += int((logits.argmax(1) == y).sum())
            seen += y.shape[0]
            bar.update(y.shape[0])
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}%")
        bar.close()
        if distributed.context().enabled:
            loss_sum, correct, seen = distributed.all_reduce_sum([loss_sum, correct, seen])
            correct, seen = int(correct), int(seen)
        if seen == 0:
            raise UserError("the training loader yielded no images")
        return {
            "epoch": epoch + 1,
            "loss": round(loss_sum / seen, 6),
            "acc": round(100.0 * correct / seen, 4),
            "images": seen,
            "seconds": round(time.perf_counter() - t0, 3),
        }

    def _step(self, model: nn.Module, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()


def budget_at(cfg: TrainConfig, step: int, total_steps: int) -> TrainConfig:
    """``cfg`` with the attack budget of training step ``step`` (0-based) under ``eps_warmup``.

    With ``eps_warmup = w > 0`` the budget (eps and the attack step size together) grows linearly
    over the first ``w * total_steps`` steps, reaching the full budget there; ``w = 0`` is Madry's
    full budget from the first step. A ramp is the usual remedy for PGD-AT at MNIST's eps 0.3
    stalling at chance in short runs (measured in the demo: see ``bench.presets``).
    """
    warm_steps = cfg.eps_warmup * total_steps
    if warm_steps <= 0 or step + 1 >= warm_steps:
        return cfg
    scale = (step + 1) / warm_steps
    return replace(cfg, eps=cfg.eps * scale, attack_step_size=cfg.attack_step_size * scale)


def _loader_size(loader) -> int | None:  # noqa: ANN001
    try:
        return len(loader.dataset)
    except TypeError:
        return None
