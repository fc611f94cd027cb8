"""Training: natural, PGD adversarial training (Madry et al., ICLR 2018) and TRADES (Zhang et al.,
ICML 2019), with checkpoints cached by config hash (:func:`ensure_trained`).

SGD with momentum, per-iteration cosine learning rate, gradient clipping, the DARTS auxiliary
loss and a linear drop-path ramp where the model has them; data-parallel under torchrun. The
choices (attack mode during training, TRADES start, eps warm-up, DDP batch rule) are in
docs/DECISIONS.md, "Training", and docs/DISTRIBUTED.md.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench import objectives
from core import distributed
from core.enums import Dataset, Training
from core.errors import UserError
from core.progress import progress_bar

SCHEDULES = ("cosine", "constant")
HASH_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained (everything that changes the weights is part of the hash)."""

    training: Training = Training.NATURAL
    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    grad_clip: float = 5.0
    eps: float = 8 / 255
    attack_steps: int = 7
    attack_step_size: float = 2 / 255
    trades_beta: float = 6.0
    n_train: int | None = None
    augment: bool = True
    seed: int = 0
    auxiliary_weight: float = 0.4
    drop_path_prob: float = 0.0
    eps_warmup: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "training", Training.parse(self.training))
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}")
        _check(self.lr > 0, f"learning rate must be > 0, got {self.lr}")
        _check(0.0 <= self.eps <= 1.0, f"eps must lie in [0, 1], got {self.eps}")
        _check(self.attack_steps >= 1, f"attack steps must be >= 1, got {self.attack_steps}")
        _check(self.attack_step_size > 0, f"attack step must be > 0, got {self.attack_step_size}")
        _check(self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}")
        _check(self.n_train is None or self.n_train >= 1, f"n_train must be >= 1: {self.n_train}")
        _check(0.0 <= self.drop_path_prob < 1.0, "drop_path_prob must lie in [0, 1)")
        _check(0.0 <= self.eps_warmup <= 1.0, f"eps_warmup must lie in [0, 1]: {self.eps_warmup}")

    @classmethod
    def paper(cls, training: str | Training, dataset: str | Dataset, **overrides) -> TrainConfig:
        """The paper's adversarial budget for a dataset (RACL 3.1), plus ``overrides``.

        CIFAR: eps 8/255, 7 steps of 2/255, SGD lr 0.1, weight decay 5e-4, batch 128. MNIST-like:
        eps 0.3 (76.5/255), 7 steps of 20/255, lr 0.01. Epochs are the caller's choice (default 1).
        """
        ds = Dataset.parse(dataset)
        if ds in (Dataset.MNIST, Dataset.FASHION_MNIST):
            base = {"eps": 76.5 / 255, "attack_step_size": 20 / 255, "lr": 0.01, "augment": False}
        else:
            base = {"eps": 8 / 255, "attack_step_size": 2 / 255}
        settings = {"training": Training.parse(training), "attack_steps": 7, **base, **overrides}
        return cls(**settings)

    def to_dict(self) -> dict:
        """JSON-safe field values (enums as their strings)."""
        out = asdict(self)
        out["training"] = self.training.value
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def config_hash(
    model_name: str, model_overrides: dict | None, dataset: str | Dataset, cfg: TrainConfig
) -> str:
    """16 hex digits of sha256 over the canonical JSON of everything that defines the weights."""
    payload = {
        "hash_version": HASH_VERSION,
        "model": model_name,
        "model_overrides": dict(sorted((model_overrides or {}).items())),
        "dataset": Dataset.parse(dataset).value,
        "config": cfg.to_dict(),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(
    model: nn.Module,
    loader,
    cfg: TrainConfig,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """Train ``model`` in place; returns metrics (per-epoch loss/accuracy, wall time).

    Under torchrun: DDP around ``model`` (``loader`` is this rank's, see :func:`rank_loader`);
    the metrics are summed over the ranks.
    """
    ctx = distributed.context()
    dev = distributed.device_for(distributed.resolve_device(device))
    progress = progress and ctx.is_main
    seed_everything(cfg.seed)
    model.to(dev)
    net = distributed.wrap_ddp(model)
    if ctx.enabled:  # independent attack noise / drop-path per rank (weights come from rank 0)
        torch.manual_seed(distributed.rank_seed(cfg.seed))
    optimizer = torch.optim.SGD(
        net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    total_steps = cfg.epochs * max(len(loader), 1)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        if cfg.schedule == "cosine"
        else None
    )
    epochs: list[dict] = []
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        _set_epoch(net, loader, cfg, epoch)
        first = epoch * max(len(loader), 1)
        epochs.append(
            _train_epoch(net, loader, cfg, dev, optimizer, scheduler, epoch, progress, first)
        )
    wall = time.perf_counter() - start
    images = sum(e["images"] for e in epochs)
    metrics = {
        "epochs": epochs,
        "train_loss": epochs[-1]["loss"],
        "train_acc": epochs[-1]["acc"],
        "wall_time_s": round(wall, 3),
        "images_per_s": round(images / wall, 2) if wall > 0 else None,
        "device": str(dev),
    }
    if ctx.enabled:
        metrics["world_size"] = ctx.world_size
    return metrics


def _train_epoch(model, loader, cfg, dev, optimizer, scheduler, epoch, progress, first) -> dict:
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    t0 = time.perf_counter()
    desc = f"train {epoch + 1}/{cfg.epochs}"
    bar = progress_bar(total=_loader_size(loader), desc=desc, enabled=progress)
    total_steps = cfg.epochs * max(len(loader), 1)
    for step, (x, y) in enumerate(loader, start=first):
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        loss, logits = objectives.OBJECTIVES[cfg.training](
            model, x, y, budget_at(cfg, step, total_steps)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
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


# -- the cache ---------------------------------------------------------------------------------


def ensure_trained(
    model_name: str,
    dataset: str | Dataset,
    cfg: TrainConfig,
    *,
    model_overrides: dict | None = None,
    checkpoint_dir: str | Path,
    device: str | torch.device = "auto",
    data_dir: str | Path | None = None,
    progress: bool = True,
    builder: Callable[[], nn.Module] | None = None,
) -> tuple[nn.Module, dict]:
    """Load the checkpoint of this configuration, training and saving it first if absent.

    The checkpoint lives at ``<checkpoint_dir>/<config_hash>.safetensors`` (+ ``.json``); the
    sidecar records the config, seeds, metrics (per-epoch loss/accuracy, wall time) and hash.
    ``builder`` makes the untrained model instead of the zoo (a user's factory, ``model_name``
    then being its name).
    """
    from bench import checkpoint as ckpt

    ds = Dataset.parse(dataset)
    overrides = dict(model_overrides or {})
    digest = config_hash(model_name, overrides, ds, cfg)
    stem = Path(checkpoint_dir) / digest
    dev = distributed.device_for(distributed.resolve_device(device))
    ctx = distributed.context()
    cached = (stem.parent / f"{digest}{ckpt.SIDECAR_SUFFIX}").is_file()
    if distributed.broadcast_object(cached):  # rank 0 decides: every rank takes one branch
        return ckpt.load_checkpoint(stem, device=dev, model=builder() if builder else None)
    seed_everything(cfg.seed)
    model = builder() if builder else ckpt.build_model(model_name, ds.value, overrides)
    loader = rank_loader(ds, cfg, data_dir)
    metrics = train(model, loader, cfg, dev, progress=progress and ctx.is_main)
    meta = {
        "model": model_name,
        "model_overrides": overrides,
        "genotype": _genotype_of(model_name),
        "dataset": ds.value,
        "training": cfg.to_dict(),
        "config_hash": digest,
        "seeds": {"torch": cfg.seed, "numpy": cfg.seed, "python": cfg.seed, "data": cfg.seed},
        "metrics": metrics,
        "torch_version": torch.__version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    info = distributed.on_main(lambda: ckpt.save_checkpoint(model, stem, meta))
    if not ctx.is_main:  # rank 0 has written it: go on with exactly its weights and buffers
        model, _ = ckpt.load_checkpoint(stem, device=dev, model=builder() if builder else None)
    return model.eval(), {**meta, "content_hash": info.content_hash, "path": str(info.weights)}


def rank_loader(dataset: str | Dataset, cfg: TrainConfig, data_dir: str | Path | None = None):
    """The training loader of this process: all of ``cfg``'s images in one process; under
    torchrun a DistributedSampler's share with ``batch_size / world_size`` images per step."""
    from core.data import load_split, train_loader

    ctx = distributed.context()
    if not ctx.enabled:
        return train_loader(
            dataset, cfg.batch_size, data_dir, n=cfg.n_train, augment=cfg.augment, seed=cfg.seed
        )
    from torch.utils.data.distributed import DistributedSampler

    _check(
        cfg.batch_size % ctx.world_size == 0,
        f"batch size {cfg.batch_size} must divide by the {ctx.world_size} processes "
        "(it is the global batch)",
    )
    n = cfg.n_train or load_split(dataset, "train", data_dir)[0].shape[0]
    sampler = DistributedSampler(
        range(n), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg.seed
    )
    return train_loader(
        dataset,
        cfg.batch_size // ctx.world_size,
        data_dir,
        n=cfg.n_train,
        augment=cfg.augment,
        seed=distributed.rank_seed(cfg.seed),
        sampler=sampler,
    )


def _genotype_of(model_name: str) -> dict | str | None:
    """The genotype's JSON dict when the model is a cell network, else None."""
    from models import ModelError, get_model_info

    try:
        name = get_model_info(model_name).genotype
    except ModelError:
        return None
    if not name:
        return None
    try:
        import genotypes

        return {"name": name, **asdict(genotypes.load(name))}
    except Exception:  # noqa: BLE001 - metadata only: never fail a training run over it
        return str(name)


def _set_epoch(model: nn.Module, loader, cfg: TrainConfig, epoch: int) -> None:
    core = distributed.unwrap(model)
    if hasattr(core, "drop_path_prob"):
        core.drop_path_prob = cfg.drop_path_prob * epoch / cfg.epochs
    for sampler in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        inner = getattr(sampler, "sampler", sampler)
        if hasattr(inner, "set_epoch"):
            inner.set_epoch(epoch)


def _loader_size(loader) -> int | None:
    try:
        return len(loader.dataset)
    except TypeError:
        return None


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)
