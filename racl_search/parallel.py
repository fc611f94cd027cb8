"""The search under torchrun: DDP for the supernet weights, the same architecture on every rank.

The process group is the caller's (``bench search`` joins the one torchrun describes); without
one every function here is a no-op. Why it stays bit-identical: docs/DISTRIBUTED.md, "Search".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from core import distributed
from racl_search.admm import ArchitectureStep
from racl_search.config import SearchConfig
from racl_search.errors import SearchError

if TYPE_CHECKING:
    from racl_search.search import SearchModules


def distribute(
    mods: SearchModules, config: SearchConfig, device: torch.device, n_half: int
) -> None:
    """Under torchrun: DDP for the supernet weights and synchronised architecture gradients.

    The Adam steps of ``mu`` and ``sigma`` are preceded by an in-order gradient average
    (:func:`core.distributed.average_gradients`), so every rank applies the same update to the
    same parameters. ``n_half``: images per half (a global batch must give every rank its
    share). No-op in one process.
    """
    world = distributed.context().world_size
    if world == 1:
        return
    if config.batch_size % world or min(config.batch_size, n_half) < world:
        raise SearchError(
            f"batch size {config.batch_size} (halves of {n_half} images) must divide by the "
            f"{world} processes (it is the global batch)"
        )
    mods.ddp = distributed.wrap_ddp(mods.net)
    for opt in (mods.arch_step.mu_opt, mods.arch_step.sigma_opt):
        opt.register_step_pre_hook(_average_optimizer_gradients)


def _average_optimizer_gradients(optimizer: torch.optim.Optimizer, *_: Any) -> None:
    distributed.average_gradients([p for group in optimizer.param_groups for p in group["params"]])


def sync_admm_state(step: ArchitectureStep) -> None:
    """Copy rank 0's dual ``theta`` and ``ln lambda*`` to every rank."""
    state = step.state
    state.theta, state.log_target = distributed.broadcast_object((state.theta, state.log_target))
