"""Training objectives ``(model, x, y, cfg) -> (loss, logits used for the accuracy)``.

Natural cross-entropy, PGD-AT (Madry et al., ICLR 2018) and TRADES (Zhang et al., ICML 2019),
each with the DARTS auxiliary-head loss when the model leaves ``aux_logits``; the adversaries
that make their training examples. Choices: docs/DECISIONS.md, "Training".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.attacks.base import project
from core.distributed import unwrap
from core.enums import Norm, Training

if TYPE_CHECKING:
    from bench.training.config import TrainConfig


def _with_aux(model: nn.Module, logits: Tensor, y: Tensor, cfg: TrainConfig) -> Tensor:
    loss = F.cross_entropy(logits, y)
    aux = getattr(unwrap(model), "aux_logits", None)
    if aux is not None and cfg.auxiliary_weight > 0:
        loss = loss + cfg.auxiliary_weight * F.cross_entropy(aux, y)
    return loss


def natural_objective(model: nn.Module, x: Tensor, y: Tensor, cfg: TrainConfig):
    logits = model(x)
    return _with_aux(model, logits, y, cfg), logits


def pgd_at_objective(model: nn.Module, x: Tensor, y: Tensor, cfg: TrainConfig):
    x_adv = pgd_train_examples(unwrap(model), x, y, cfg)
    logits = model(x_adv)
    return _with_aux(model, logits, y, cfg), logits


def trades_objective(model: nn.Module, x: Tensor, y: Tensor, cfg: TrainConfig):
    model.eval()
    x_adv = trades_examples(unwrap(model), x, cfg)
    model.train()
    logits = model(x)
    natural = _with_aux(model, logits, y, cfg)
    robust = F.kl_div(
        F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean"
    )
    return natural + cfg.trades_beta * robust, logits


OBJECTIVES = {
    Training.NATURAL: natural_objective,
    Training.PGD_AT: pgd_at_objective,
    Training.TRADES: trades_objective,
}


def pgd_train_examples(model: nn.Module, x: Tensor, y: Tensor, cfg: TrainConfig) -> Tensor:
    """Madry's linf PGD from a uniform random start, in the model's current mode."""
    noise = torch.empty_like(x).uniform_(-cfg.eps, cfg.eps)
    x_adv = torch.clamp(x + noise, 0.0, 1.0)
    for _ in range(cfg.attack_steps):
        x_adv = x_adv.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        grad = torch.autograd.grad(loss, x_adv)[0]
        x_adv = project(x_adv.detach() + cfg.attack_step_size * grad.sign(), x, cfg.eps, Norm.LINF)
    return x_adv.detach()


def trades_examples(model: nn.Module, x: Tensor, cfg: TrainConfig) -> Tensor:
    """TRADES adversary: maximise KL(f(x') || f(x)) from ``x + 0.001 N(0, 1)``."""
    with torch.no_grad():
        p_natural = F.softmax(model(x), dim=1)
    x_adv = x + 0.001 * torch.randn_like(x)
    for _ in range(cfg.attack_steps):
        x_adv = x_adv.detach().requires_grad_(True)
        kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), p_natural, reduction="sum")
        grad = torch.autograd.grad(kl, x_adv)[0]
        x_adv = project(x_adv.detach() + cfg.attack_step_size * grad.sign(), x, cfg.eps, Norm.LINF)
    return x_adv.detach()
