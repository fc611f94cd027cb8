"""The search loop: alternate architecture (val half) and weight (train half) steps, per epoch.

The PC-DARTS schedule (Xu et al., ICLR 2020) as RACL uses it (Dong et al., AAAI 2021, Sec. 3.1).
Each finished epoch is logged (stdout, ``log.jsonl``) and checkpointed, so a rerun resumes after
it; the result is derived and written as a genotype. Under torchrun the weights train with DDP
and the architecture stays bit-identical on every rank (docs/DISTRIBUTED.md, "Search").
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core import distributed
from core.atomic import atomic_write_text
from core.enums import SearchMethod, Strength
from core.progress import progress_bar
from genotypes import Genotype, save_genotype
from racl_search.admm import AdmmConfig, AdmmState, ArchitectureStep
from racl_search.architecture import ArchitectureParameters, eval_mode, weight_mode
from racl_search.config import SearchConfig
from racl_search.derive import derive_genotype
from racl_search.errors import SearchError
from racl_search.parallel import distribute, sync_admm_state
from racl_search.readings import bound_stats
from racl_search.run_state import (
    check_finite,
    clear_run_dir,
    log_row,
    rng_state,
    save_run_state,
    saved_state,
    set_rng_state,
)
from racl_search.supernet import Supernet, SupernetConfig


@dataclass(frozen=True)
class SearchResult:
    """What a finished search produced."""

    name: str
    genotype: Genotype
    path: Path
    metadata: dict[str, Any]


@dataclass
class SearchModules:
    """The trainable pieces of one search and their optimizers.

    ``ddp``: the DistributedDataParallel wrapper of ``net`` under torchrun (weight steps go
    through it; see :func:`distribute`), None in one process.
    """

    net: Supernet
    arch: ArchitectureParameters
    arch_step: ArchitectureStep
    w_opt: torch.optim.SGD
    ddp: nn.Module | None = None


def build(config: SearchConfig, device: torch.device) -> SearchModules:
    """Supernet, architecture parameters and optimizers, seeded by ``config.seed``."""
    torch.manual_seed(config.seed)
    net = Supernet(
        SupernetConfig(
            dataset=config.dataset, init_channels=config.init_channels, layers=config.layers,
            steps=config.steps, partial_k=config.partial_k, bound=config.bound,
            bn_scale=config.bn_scale,
        )
    ).to(device)  # fmt: skip
    for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.momentum = None if config.bn_cumulative else bn.momentum  # a control (D2)
    derivable = [p != "none" for p in net.config.primitives]
    arch = ArchitectureParameters(net.topology, len(net.config.primitives), config.sigma_init,
                                  derivable=derivable)  # fmt: skip
    arch = arch.to(device)
    method = SearchMethod.parse(config.method)
    admm = AdmmConfig(
        eta=config.eta, rho=config.rho * config.rho_scale, log_target=config.log_lipschitz_target,
        lr=config.arch_lr, betas=config.arch_betas, weight_decay=config.arch_weight_decay,
        decay_to_init=method is not SearchMethod.PC_DARTS, penalty=config.penalty,
        target=config.target, confidence=config.confidence, live_sigma=config.live_sigma,
        sequential_sigma=config.sequential_sigma,
    )  # fmt: skip
    step = ArchitectureStep(method, arch, net, admm)
    w_opt = torch.optim.SGD(
        net.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    return SearchModules(net, arch, step, w_opt)


def cosine_lr(config: SearchConfig, epoch: int) -> float:
    """PC-DARTS's cosine annealing, evaluated per epoch (stateless, so resume is exact)."""
    t = epoch / config.epochs
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * t))


def split_halves(x: Tensor, y: Tensor, config: SearchConfig) -> tuple[tuple[Tensor, Tensor], ...]:
    """A seeded subset of ``n_images``, split into a weight half and an architecture half."""
    n = min(config.n_images, x.shape[0])
    if n < 4:
        raise SearchError(f"the search needs at least 4 images, the split has {x.shape[0]}")
    gen = torch.Generator().manual_seed(config.seed)
    idx = torch.randperm(x.shape[0], generator=gen)[:n]
    half = n // 2
    return (x[idx[:half]], y[idx[:half]]), (x[idx[half : 2 * half]], y[idx[half : 2 * half]])


def weight_step(mods: SearchModules, x: Tensor, y: Tensor, config: SearchConfig) -> tuple:
    """One SGD step of the supernet weights; returns ``(loss, correct)``."""
    mods.net.train()
    with torch.no_grad():
        alpha, beta = mods.arch.weights(weight_mode(SearchMethod.parse(config.method)))
    logits = (mods.ddp or mods.net)(x, alpha, beta)
    loss = F.cross_entropy(logits, y)
    mods.w_opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(mods.net.parameters(), config.grad_clip)
    mods.w_opt.step()
    return float(loss.detach()), int((logits.argmax(1) == y).sum())


def run_epoch(
    mods: SearchModules,
    data: tuple,
    config: SearchConfig,
    epoch: int,
    device: torch.device,
    progress: bool,
) -> dict[str, float]:
    """One epoch over the weight half; architecture steps interleaved after the warm-up.

    Under torchrun each rank takes its part of every global batch; the sums are over all ranks.
    """
    ctx = distributed.context()
    rank, world = ctx.rank, ctx.world_size
    (xw, yw), (xa, ya) = data
    for group in mods.w_opt.param_groups:
        group["lr"] = cosine_lr(config, epoch)
    gen = torch.Generator().manual_seed(config.seed * 1000 + epoch)
    order_w, order_a = (
        torch.randperm(len(xw), generator=gen),
        torch.randperm(len(xa), generator=gen),
    )
    bs = config.batch_size
    n_steps = max(1, len(xw) // bs)
    search_arch = epoch >= config.warmup_epochs
    sums = {"train_loss": 0.0, "train_correct": 0, "arch_ce": 0.0, "seen": 0}
    bar = progress_bar(
        total=n_steps, desc=f"epoch {epoch + 1}/{config.epochs}", unit="step", enabled=progress
    )
    for s in range(n_steps):
        iw, ia = order_w[s * bs : (s + 1) * bs], order_a[s * bs : (s + 1) * bs]
        if world > 1:
            iw, ia = iw.tensor_split(world)[rank], ia.tensor_split(world)[rank]
        if search_arch and len(ia):
            mods.net.train()
            out = mods.arch_step(xa[ia].to(device), ya[ia].to(device))
            if world > 1:
                sync_admm_state(mods.arch_step)
            sums["arch_ce"] += out["arch_ce"] * len(ia)
        loss, correct = weight_step(mods, xw[iw].to(device), yw[iw].to(device), config)
        sums["train_loss"] += loss * len(iw)
        sums["train_correct"] += correct
        sums["seen"] += len(iw)
        bar.update(1)
    bar.close()
    if world > 1:
        totals = distributed.all_reduce_sum([sums[k] for k in _SUM_KEYS])
        sums = dict(zip(_SUM_KEYS, totals, strict=True))
    seen = max(1, sums["seen"])
    row = {
        "train_loss": sums["train_loss"] / seen,
        "train_acc": 100.0 * sums["train_correct"] / seen,
    }
    row["arch_ce"] = sums["arch_ce"] / seen if search_arch else float("nan")
    row["lr"] = cosine_lr(config, epoch)
    return row


_SUM_KEYS = ("train_loss", "train_correct", "arch_ce", "seen")


@torch.no_grad()
def evaluate(mods: SearchModules, x: Tensor, y: Tensor, config: SearchConfig, device) -> tuple:
    """Loss and accuracy of the supernet (median / softmax weights) on the architecture half.

    Under torchrun each rank evaluates a contiguous part and the sums are added up.
    """
    mods.net.eval()
    alpha, beta = mods.arch.weights(eval_mode(SearchMethod.parse(config.method)))
    rows = distributed.shard_range(len(x))
    loss, correct = 0.0, 0
    for s in range(rows.start, rows.stop, 256):
        end = min(s + 256, rows.stop)
        xb, yb = x[s:end].to(device), y[s:end].to(device)
        logits = mods.net(xb, alpha, beta)
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    if distributed.context().enabled:
        loss, correct = distributed.all_reduce_sum([loss, correct])
    return loss / len(x), 100.0 * correct / len(x)


def snapshot(mods: SearchModules, history: list, elapsed: float) -> dict[str, Any]:
    """Everything needed to resume after this epoch."""
    state = mods.arch_step.state
    return {
        "net": mods.net.state_dict(),
        "arch": mods.arch.state_dict(),
        "w_opt": mods.w_opt.state_dict(),
        "mu_opt": mods.arch_step.mu_opt.state_dict(),
        "sigma_opt": mods.arch_step.sigma_opt.state_dict(),
        "rng": rng_state(),
        "admm": {"theta": state.theta, "log_target": state.log_target, "steps": state.steps},
        "history": history,
        "elapsed": elapsed,
    }


def restore(mods: SearchModules, saved: dict[str, Any], device: torch.device) -> None:
    mods.net.load_state_dict(saved["net"])
    mods.arch.load_state_dict(saved["arch"])
    mods.w_opt.load_state_dict(saved["w_opt"])
    mods.arch_step.mu_opt.load_state_dict(saved["mu_opt"])
    mods.arch_step.sigma_opt.load_state_dict(saved["sigma_opt"])
    admm = saved["admm"]
    mods.arch_step.state = AdmmState(admm["theta"], admm["log_target"], int(admm["steps"]))
    set_rng_state(saved["rng"])
    mods.net.to(device)
    mods.arch.to(device)


def run_search(
    config: SearchConfig,
    x: Tensor,
    y: Tensor,
    *,
    name: str,
    out_dir: Path,
    run_dir: Path,
    device: str | torch.device = "cpu",
    resume: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
    stop_after_epoch: int | None = None,
    compile: bool = False,
) -> SearchResult | None:
    """Search on ``(x, y)`` (the dataset's train split) and write ``out_dir/<name>.json``.

    ``resume`` continues from ``run_dir``'s last finished epoch when its config hash matches;
    ``stop_after_epoch`` ends early after that many epochs (returns None; for tests of resume).
    ``compile``: the mixed ops of the training steps through ``torch.compile``
    (:meth:`Supernet.compile_regions`; one process only, eager under torchrun); an execution
    detail, not in the config hash.
    """
    device = distributed.resolve_device(device)
    main = distributed.context().is_main
    log = log if main else _silent
    progress = progress and main
    mods = build(config, device)
    if compile and distributed.context().enabled:
        log("compile: the search runs eager under torchrun (not compiled)")
    elif compile:
        mods.net.compile_regions()
    data = split_halves(x, y, config)
    history: list[dict[str, Any]] = []
    start, elapsed = 0, 0.0
    run_dir = Path(run_dir)
    meta_path = run_dir / "config.json"
    saved = distributed.on_main(
        lambda: saved_state(run_dir, config.config_hash()) if resume else None
    )
    if saved is not None:
        epoch, state = saved
        if not 0 <= epoch < config.epochs:  # an edited or foreign state.json: never trusted
            raise SearchError(
                f"search state in {run_dir} says epoch {epoch + 1} of {config.epochs}; "
                "rerun with --fresh to start over"
            )
        try:
            restore(mods, state, device)
            start, history, elapsed = epoch + 1, list(state["history"]), float(state["elapsed"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            fault = f"{type(err).__name__}; rerun with --fresh to start over"
            raise SearchError(
                f"search state in {run_dir} does not fit this search ({fault})"
            ) from None
        log(f"resuming {name} after epoch {epoch + 1}/{config.epochs}")
    elif main:
        clear_run_dir(run_dir)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(  # a full disk leaves the old file or none, never a cut one
            meta_path,
            json.dumps({"config_hash": config.config_hash(), "config": config.to_dict()}, indent=1),
        )
    distribute(mods, config, device, n_half=len(data[0][0]))
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        row = {"epoch": epoch + 1, **run_epoch(mods, data, config, epoch, device, progress)}
        if mods.ddp is not None:
            distributed.broadcast_buffers(mods.net)
        row["val_loss"], row["val_acc"] = evaluate(mods, *data[1], config, device)
        row.update(bound_stats(mods.arch_step, config.eta))
        elapsed += time.perf_counter() - t0
        row["elapsed_s"] = elapsed
        history.append(row)
        check_finite(mods.arch, row, run_dir)  # before anything of a diverged epoch is kept
        if main:
            log_row(run_dir, row, log)
            save_run_state(run_dir, epoch, snapshot(mods, history, elapsed))
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch < config.epochs:
            return None
    return finish(mods, config, history, elapsed, name=name, out_dir=Path(out_dir))


def finish(
    mods: SearchModules,
    config: SearchConfig,
    history: list,
    elapsed: float,
    *,
    name: str,
    out_dir: Path,
) -> SearchResult:
    """Derive the genotype and write it with the search's metadata."""
    method = SearchMethod.parse(config.method)
    genotype = derive_genotype(mods.arch, method, Strength.parse(config.strength), config.eta)
    last = history[-1] if history else {}
    metadata = {
        "config": config.to_dict(),
        "config_hash": config.config_hash(),
        "seed": config.seed,
        "method": config.method,
        "dataset": config.dataset,
        "preset": config.preset,
        "epochs": config.epochs,
        "search_time_s": round(elapsed, 2),
        "final_c": last.get("c"),
        "theta": last.get("theta"),
        "log_lipschitz_target": last.get("log_target"),
        "log_bound_median": last.get("log_bound_median"),
        "log_bound_q_eta": last.get("log_bound_q_eta"),
        "bound_median": _safe_exp(last.get("log_bound_median")),
        "bound_q_eta": _safe_exp(last.get("log_bound_q_eta")),
        "final_train_acc": last.get("train_acc"),
        "final_val_acc": last.get("val_acc"),
    }
    source = f"bench search ({config.method}, preset {config.preset}, {config.dataset})"
    path = distributed.on_main(
        lambda: save_genotype(genotype, out_dir, name=name, source=source, metadata=metadata)
    )
    return SearchResult(name, genotype, path, metadata)


def _safe_exp(value: float | None) -> float | None:
    if value is None or value > 700:
        return None
    return math.exp(value)


def _silent(message: str) -> None:
    """The log of ranks other than 0."""
