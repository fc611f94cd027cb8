"""Training: natural, PGD adversarial training (Madry et al., ICLR 2018) and TRADES (Zhang et al.,
ICML 2019), with checkpoints cached by config hash (:func:`ensure_trained`).

SGD with momentum (or Adam), a per-iteration cosine, step or constant learning rate with an optional
linear warm-up, gradient clipping, cutout, optional autocast, the DARTS auxiliary loss and a linear
drop-path ramp where the model has them (``bench.training.parts``); the state saved after each
epoch so that a killed run resumes (``bench.training.state``); data-parallel under torchrun. The
recipes that set these: ``bench.training.recipes`` and docs/PROTOCOL.md. The choices (attack mode
during training, TRADES start, eps warm-up, DDP batch rule) are in
docs/DECISIONS.md, "Training", and docs/DISTRIBUTED.md.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.training.config import TrainConfig, config_hash
from bench.training.epoch import EpochLoop
from core import distributed
from core.compiled import Guarded
from core.enums import Dataset
from core.errors import UserError


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
    state_dir: Path | None = None,
    holdout: tuple[torch.Tensor, torch.Tensor] | None = None,
    save_every_s: float | None = None,
    compile: bool = False,
) -> dict:
    """Train ``model`` in place; returns metrics (per-epoch loss/accuracy, wall time).

    With ``state_dir`` the full training state is saved there after every epoch (and within an
    epoch every ``save_every_s`` seconds, ``bench.training.saver``) and a state found there is
    resumed (printing ``resumed from epoch K`` or ``resumed from epoch K, batch B``: K epochs
    and B batches of the next done); the result is bit-identical to an uninterrupted run, in one
    process or under torchrun with the same number of processes. Under torchrun: DDP around
    ``model`` (``loader`` is this rank's, see :func:`rank_loader`); the metrics are summed over
    the ranks. ``holdout`` images are evaluated after each epoch (``bench.training.holdout``; the
    config keeps final or best). ``compile``: steps through ``torch.compile`` (one process only,
    :mod:`bench.run.compile_policy`); an execution detail, not part of the config hash.
    """
    from bench.training import parts
    from bench.training import state as train_state
    from bench.training.holdout import Keeper
    from bench.training.holdout import evaluate as evaluate_holdout
    from bench.training.saver import Position, Saver

    ctx = distributed.context()
    dev = distributed.device_for(distributed.resolve_device(device))
    parts.check_amp(cfg, dev)
    progress = progress and ctx.is_main
    seed_everything(cfg.seed)
    model.to(dev)
    net = distributed.wrap_ddp(model)
    if ctx.enabled:  # independent attack noise / drop-path per rank (weights come from rank 0)
        torch.manual_seed(distributed.rank_seed(cfg.seed))
    steps = max(len(loader), 1)
    optimizer = parts.build_optimizer(net, cfg)
    scheduler = parts.build_scheduler(optimizer, cfg, steps)
    epochs: list[dict] = []
    keeper = Keeper(cfg)
    scaler = parts.grad_scaler(cfg, dev)
    saver = Saver(
        state_dir, save_every_s, model, optimizer, scheduler, loader, keeper.state, scaler
    )
    saved = train_state.load(state_dir)
    position = None
    if saved is not None:
        epochs = train_state.restore(
            saved[1], model, optimizer, scheduler, loader, ctx.rank, ctx.world_size
        )
        keeper.restore(saved[1].get("selection"))
        if scaler is not None and saved[1].get("grad_scaler"):
            scaler.load_state_dict(saved[1]["grad_scaler"])
        position = Position.from_state(train_state.rank_entry(saved[1], ctx.rank).get("position"))
        if ctx.is_main:
            where = f", batch {position.batch}" if position is not None else ""
            print(f"resumed from epoch {saved[0]}{where}", file=sys.stderr, flush=True)
    loop = EpochLoop(cfg, dev, optimizer, scheduler, scaler, progress)
    step_net = Guarded(net) if compile and not ctx.enabled else net
    prior = sum(e["seconds"] for e in epochs)
    start = time.perf_counter()
    for epoch in range(len(epochs), cfg.epochs):
        _set_epoch(net, loader, cfg, epoch)
        span = (epoch * steps, cfg.epochs * steps)
        epochs.append(loop.epoch(step_net, loader, epoch, span, saver, position, epochs))
        position = None
        if holdout is not None:
            epochs[-1].update(evaluate_holdout(model, holdout, cfg, dev))
            keeper.update(model, epoch + 1, epochs[-1])
        saver.save(epochs)
    wall = time.perf_counter() - start
    images = sum(e["images"] for e in epochs)
    metrics = {
        "epochs": epochs,
        "train_loss": epochs[-1]["loss"],
        "train_acc": epochs[-1]["acc"],
        "wall_time_s": round(prior + wall, 3),
        "images_per_s": round(images / wall, 2) if wall > 0 and saved is None else None,
        "device": str(dev),
    }
    if saved is not None:
        metrics["resumed_from_epoch"] = saved[0]
    kept = keeper.finish(model)
    if kept is not None:
        metrics["selection"] = kept
    if ctx.enabled:
        metrics["world_size"] = ctx.world_size
    return metrics


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
    compile: bool = False,
    inputs: dict[str, str] | None = None,
    save_every_s: float | None = None,
    init: Mapping[str, torch.Tensor] | None = None,
) -> tuple[nn.Module, dict]:
    """Load the checkpoint of this configuration, training and saving it first if absent.

    The checkpoint lives at ``<checkpoint_dir>/<config_hash>.safetensors`` (+ ``.json``); the
    sidecar records the config, seeds, metrics (per-epoch loss/accuracy, wall time) and hash.
    ``builder`` makes the untrained model instead of the zoo (a user's factory, ``model_name``
    then being its name); ``inputs`` are content hashes the key includes (``config_hash``);
    ``save_every_s`` (default ``train_saver.SAVE_EVERY_S``) and ``compile`` are not hashed.
    ``init``: the state dict training starts from (a warm start; its checkpoint's hash belongs
    in ``inputs``, see ``config.warm_start_inputs``), instead of the model's initialisation.
    """
    from bench.training import checkpoint as ckpt
    from bench.training import state as train_state

    ds = Dataset.parse(dataset)
    overrides = dict(model_overrides or {})
    digest = config_hash(model_name, overrides, ds, cfg, inputs)
    stem = Path(checkpoint_dir) / digest
    dev = distributed.device_for(distributed.resolve_device(device))
    ctx = distributed.context()
    cached = (stem.parent / f"{digest}{ckpt.SIDECAR_SUFFIX}").is_file()
    if distributed.broadcast_object(cached):  # rank 0 decides: every rank takes one branch
        return ckpt.load_checkpoint(stem, device=dev, model=builder() if builder else None)
    seed_everything(cfg.seed)
    model = builder() if builder else ckpt.build_model(model_name, ds.value, overrides)
    if init is not None:
        model.load_state_dict(init)
    from bench.training.holdout import holdout_split
    from bench.training.saver import SAVE_EVERY_S

    loader = rank_loader(ds, cfg, data_dir)
    state_dir = stem.parent / f"{digest}.partial"
    held = holdout_split(ds, cfg, data_dir)
    every = SAVE_EVERY_S if save_every_s is None else save_every_s
    metrics = train(
        model, loader, cfg, dev, progress and ctx.is_main, state_dir, held, every, compile=compile
    )
    meta = {
        "model": model_name,
        "model_overrides": overrides,
        "genotype": _genotype_of(model_name),
        "dataset": ds.value,
        "training": cfg.to_dict(),
        "config_hash": digest,
        **({"inputs": dict(sorted(inputs.items()))} if inputs else {}),
        "seeds": {"torch": cfg.seed, "numpy": cfg.seed, "python": cfg.seed, "data": cfg.seed},
        "metrics": metrics,
        "torch_version": torch.__version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    info = distributed.on_main(lambda: ckpt.save_checkpoint(model, stem, meta))
    distributed.on_main(lambda: train_state.clear(state_dir))
    if not ctx.is_main:  # rank 0 has written it: go on with exactly its weights and buffers
        model, _ = ckpt.load_checkpoint(stem, device=dev, model=builder() if builder else None)
    return model.eval(), {**meta, "content_hash": info.content_hash, "path": str(info.weights)}


def rank_loader(dataset: str | Dataset, cfg: TrainConfig, data_dir: str | Path | None = None):
    """The training loader of this process: all of ``cfg``'s images in one process; under
    torchrun a DistributedSampler's share with ``batch_size / world_size`` images per step."""
    from bench.training.holdout import training_images
    from core.data import load_split, train_loader

    ctx = distributed.context()
    n_train = training_images(dataset, cfg, data_dir)
    if not ctx.enabled:
        return train_loader(
            dataset, cfg.batch_size, data_dir, n=n_train, augment=cfg.augment, seed=cfg.seed
        )
    from torch.utils.data.distributed import DistributedSampler

    if cfg.batch_size % ctx.world_size:
        raise UserError(
            f"batch size {cfg.batch_size} must divide by the {ctx.world_size} processes "
            "(it is the global batch)"
        )
    n = n_train or load_split(dataset, "train", data_dir)[0].shape[0]
    sampler = DistributedSampler(
        range(n), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg.seed
    )
    return train_loader(
        dataset,
        cfg.batch_size // ctx.world_size,
        data_dir,
        n=n_train,
        augment=cfg.augment,
        seed=distributed.rank_seed(cfg.seed),
        sampler=sampler,
    )


def _genotype_of(model_name: str) -> dict | str | None:
    """The genotype's JSON dict when the model is a cell network, else None."""
    from bench.training.identity import genotype_name

    name = genotype_name(model_name)
    if name is None:
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
