"""One epoch of :func:`bench.training.trainer.train`: cutout, autocast, the objective under the
step's attack budget, the (scaled) backward pass, clipping, the optimizer and schedule steps, and
the saves within the epoch (``bench.training.saver``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from torch import nn

from bench.training import objectives, parts
from bench.training.saver import Position, Saver, epoch_order, remaining_batches
from core import distributed
from core.errors import UserError
from core.progress import progress_bar

if TYPE_CHECKING:
    from bench.training.config import TrainConfig


@dataclass
class EpochLoop:
    """One epoch of training under a config (optimizer, schedule, autocast, cutout)."""

    cfg: TrainConfig
    dev: torch.device
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: object
    progress: bool

    def epoch(
        self,
        model,  # noqa: ANN001
        loader,  # noqa: ANN001
        epoch: int,
        steps: tuple[int, int],
        saver: Saver | None = None,
        resume: Position | None = None,
        done: list[dict] | None = None,
    ) -> dict:
        """Train epoch ``epoch`` (0-based); ``steps``: its first global step and the total.

        ``resume``: continue a saved position (the rest of its recorded batch order, its sums);
        ``saver`` saves within the epoch when due (``bench.training.saver``), ``done`` being the
        finished epochs' metrics that go with it.
        """
        cfg = self.cfg
        model.train()
        order, after = (resume.order, resume.after) if resume is not None else epoch_order(loader)
        sums = dict(resume.sums) if resume is not None else {}
        loss_sum, correct = sums.get("loss", 0.0), int(sums.get("correct", 0))
        seen, prior = int(sums.get("seen", 0)), sums.get("seconds", 0.0)
        start = resume.batch if resume is not None else 0
        batches = remaining_batches(loader, resume) if resume is not None else loader
        t0 = time.perf_counter()
        desc = f"train {epoch + 1}/{cfg.epochs}"
        bar = progress_bar(total=_loader_size(loader), desc=desc, enabled=self.progress)
        for batch, (x, y) in enumerate(batches, start=start + 1):
            x, y = x.to(self.dev, non_blocking=True), y.to(self.dev, non_blocking=True)
            if cfg.cutout:
                x = parts.cutout(x, cfg.cutout)
            with parts.autocast(cfg, self.dev):
                loss, logits = objectives.OBJECTIVES[cfg.training](
                    model, x, y, budget_at(cfg, steps[0] + batch - 1, steps[1])
                )
            self._step(model, loss)
            loss_sum += loss.item() * y.shape[0]
            correct += int((logits.argmax(1) == y).sum())
            seen += y.shape[0]
            bar.update(y.shape[0])
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}%")
            if saver is not None and saver.due(batch, len(order)):
                spent = prior + time.perf_counter() - t0
                now = {"loss": loss_sum, "correct": correct, "seen": seen, "seconds": spent}
                saver.save(list(done or []), Position(epoch, batch, order, after, now))
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
            "seconds": round(prior + time.perf_counter() - t0, 3),
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
    stalling at chance in short runs (docs/decisions/planner.md, "The demo's short PGD-AT before
    issue 28").
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
