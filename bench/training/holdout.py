"""Model selection against robust overfitting (Rice et al., ICML 2020): the last ``n_holdout``
training images are set aside (never the test set), evaluated clean and under PGD after every
epoch, and the recipe keeps either the final weights or those of the best robust epoch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from core.errors import UserError

if TYPE_CHECKING:
    from bench.training.config import TrainConfig


def holdout_split(dataset, cfg: TrainConfig, data_dir: str | Path | None = None):  # noqa: ANN001, ANN201
    """``(x, y)`` of the held-out images, or None; checks they do not overlap the training ones."""
    if cfg.n_holdout == 0:
        return None
    from core.data import load_split

    x, y = load_split(dataset, "train", data_dir)
    size = x.shape[0]
    if cfg.n_holdout + (cfg.n_train or 0) > size or cfg.n_holdout >= size:
        raise UserError(f"n_train + n_holdout exceed the {size} training images")
    return x[size - cfg.n_holdout :], y[size - cfg.n_holdout :]


def training_images(dataset, cfg: TrainConfig, data_dir: str | Path | None = None) -> int | None:  # noqa: ANN001
    """How many of the first training images to train on (the held-out ones excluded)."""
    if cfg.n_holdout == 0:
        return cfg.n_train
    from core.data import load_split

    size = load_split(dataset, "train", data_dir)[0].shape[0]
    return cfg.n_train or size - cfg.n_holdout


def evaluate(model: nn.Module, holdout, cfg: TrainConfig, dev: torch.device) -> dict[str, float]:  # noqa: ANN001
    """Clean and PGD accuracy (%) on the held-out images (PGD: the training budget,
    ``select_steps`` steps, random start), in eval mode; the model is left in train mode."""
    from bench.training.objectives import pgd_train_examples

    x_all, y_all = holdout
    budget = replace(cfg, attack_steps=cfg.select_steps)
    model.eval()
    clean = robust = 0
    for start in range(0, x_all.shape[0], 256):
        x, y = x_all[start : start + 256].to(dev), y_all[start : start + 256].to(dev)
        with torch.no_grad():
            clean += int((model(x).argmax(1) == y).sum())
        x_adv = pgd_train_examples(model, x, y, budget)
        with torch.no_grad():
            robust += int((model(x_adv).argmax(1) == y).sum())
    model.train()
    n = x_all.shape[0]
    return {"holdout_clean": round(100 * clean / n, 4), "holdout_pgd": round(100 * robust / n, 4)}


class Keeper:
    """The best-robust weights so far (only when the config keeps the best)."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.active = cfg.keep == "best"
        self.best: dict[str, Tensor] | None = None
        self.epoch = 0
        self.score = -1.0

    def update(self, model: nn.Module, epoch: int, metrics: dict[str, Any]) -> None:
        if self.active and metrics["holdout_pgd"] > self.score:
            self.score, self.epoch = metrics["holdout_pgd"], epoch
            self.best = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def finish(self, model: nn.Module) -> dict[str, Any] | None:
        """Load the kept weights; the sidecar's ``selection`` entry."""
        if not self.active or self.best is None:
            return None
        model.load_state_dict(self.best)
        return {"kept": "best", "epoch": self.epoch, "holdout_pgd": self.score}

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "epoch": self.epoch, "score": self.score}

    def restore(self, state: dict[str, Any] | None) -> None:
        if state:
            self.best, self.epoch, self.score = state["best"], state["epoch"], state["score"]
