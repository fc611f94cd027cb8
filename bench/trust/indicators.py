"""Indicators of attack failure for one white-box cell, on its first images.

After Pintor et al., "Indicators of Attack Failure: Debugging and Improving Optimization of
Adversarial Examples" (NeurIPS 2022; their code: pralab/IndicatorsOfAttackFailure,
``src/indicators/indicators.py``). Per examined image (the clean-correct ones among the first
``n`` of the cell's slice) an indicator is triggered or not; a cell stores, per indicator, how
many images triggered it out of how many were examined (``None`` where it does not apply):

- ``silent_success``: an iterate before the last fooled the model, the returned point does not;
- ``incomplete_optimization``: on an image the attack did not fool, its best loss still rose by
  more than 5% of its range over the last tenth of the steps (at least 2);
- ``transfer_failure``: the returned point fools the model as the attack saw it (its own forward,
  in its precision) but not the float32 verdict;
- ``unavailable_gradients``: the input gradient of the loss is zero or not finite (or the graph
  is cut);
- ``unstable_predictions``: a repeated forward of the image itself predicts another class (the
  model is random), or, on an image the attack did not fool, one of 6 random points of the box
  of half-width eps/4 around it is misclassified (random noise beat the attack).

``unconstrained_failure`` (the large-budget attack fails) comes from the stored large-eps trust
cell (:mod:`bench.trust.paired_checks`). The tracked run also attacks the clean mistakes, so that
``robust_le_clean`` can compare the attack's accuracy over all images with the clean accuracy
(``paired``: clean-wrong-but-attacked-right vs clean-right-but-attacked-wrong).
Thresholds and choices: docs/decisions/trust.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.attacks.base import Attack, float32_verdict, frozen_eval, model_device, project
from bench.attacks.batches import batch_seed, seeded
from bench.results.names import INDICATORS
from core.enums import Norm

REVISION = 1  # joins the stored row: a row of another revision is recomputed
UNSTABLE_REPEATS, UNSTABLE_DRAWS, UNSTABLE_RADIUS = 2, 6, 0.25  # radius: a fraction of eps
LOSS_TOLERANCE, LOSS_WINDOW_FRACTION, MIN_TRACKED_STEPS = 0.05, 0.1, 4

Counts = dict[str, Any]


@dataclass
class _Trace:
    """What one tracked run of a stepwise attack saw, per image."""

    losses: Tensor  # (steps + 1, n): loss at each iterate (start included) and at the output
    fooled_before: Tensor  # an iterate before the output fooled the model (the attack's view)
    view_fooled: Tensor  # the output fools the model as the attack computes it
    final_ok: Tensor  # the float32 verdict on the output


def cell_indicators(
    model: nn.Module, x: Tensor, y: Tensor, attack: Any, *, seed: int, batch_size: int = 128
) -> Counts:
    """Counts ``{indicator: [triggered, examined] | None, "paired": {...}}`` for ``attack``
    (an :class:`Attack` or any callable) on the images ``x`` (labels ``y``)."""
    device = model_device(model)
    x, y = x.to(device, torch.float32), y.to(device)
    parts = []
    for i, start in enumerate(range(0, len(x), max(batch_size, 1))):
        rows = slice(start, start + max(batch_size, 1))
        with seeded(batch_seed(seed, i), device):
            parts.append(_batch_counts(model, x[rows], y[rows], attack))
    return _merge(parts)


def _batch_counts(model: nn.Module, x: Tensor, y: Tensor, attack: Any) -> Counts:
    with frozen_eval(model):
        clean_ok = float32_verdict(model, x, y).cpu()
    eps = float(attack.spec.eps) if hasattr(attack, "spec") else 0.0
    norm = attack.spec.norm if hasattr(attack, "spec") else Norm.LINF
    out: Counts = {name: None for name in INDICATORS}
    out["unavailable_gradients"] = _count(unavailable_gradients(model, x, y), clean_ok)
    if not (isinstance(attack, Attack) and attack.stepwise):  # a black box: no attack-level ones
        out["unstable_predictions"] = _count(unstable_predictions(model, x, y, eps, norm), clean_ok)
        return out
    trace = _tracked_run(attack, model, x, y)
    unstable = unstable_predictions(model, x, y, eps, norm, robust=trace.final_ok)
    out["unstable_predictions"] = _count(unstable, clean_ok)
    survived = clean_ok & trace.final_ok
    out["silent_success"] = _count(trace.fooled_before & trace.final_ok, clean_ok)
    out["transfer_failure"] = _count(trace.view_fooled & trace.final_ok, clean_ok)
    if attack.spec.steps >= MIN_TRACKED_STEPS:
        rising = still_rising(trace.losses)
        out["incomplete_optimization"] = _count(rising & survived, clean_ok)
    repaired = int((~clean_ok & trace.final_ok).sum())
    broken = int((clean_ok & ~trace.final_ok).sum())
    clean = int(clean_ok.sum())
    out["paired"] = {"n": len(y), "clean": clean, "repaired": repaired, "broken": broken}
    return out


def _count(triggered: Tensor, examined: Tensor) -> list[int]:
    triggered, examined = triggered.cpu().bool(), examined.cpu().bool()
    return [int((triggered & examined).sum()), int(examined.sum())]


def _merge(parts: list[Counts]) -> Counts:
    merged: Counts = {}
    for name in (*INDICATORS, "paired"):
        values = [p.get(name) for p in parts]
        if any(v is None for v in values) or not values:
            merged[name] = None
        elif name == "paired":
            merged[name] = {k: sum(v[k] for v in values) for k in values[0]}
        else:
            merged[name] = [sum(v[0] for v in values), sum(v[1] for v in values)]
    return merged


def unavailable_gradients(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Per image: the input gradient of the cross-entropy is all zero or not finite (CPU bool).

    A model whose graph does not reach the input (detached, non-differentiable) triggers it on
    every image."""
    with frozen_eval(model):
        xg = x.detach().clone().requires_grad_(True)
        try:
            with torch.enable_grad():
                loss = F.cross_entropy(model(xg).float(), y, reduction="sum")
                (grad,) = torch.autograd.grad(loss, xg, allow_unused=True)
        except RuntimeError:  # the output does not require grad: the graph is cut
            grad = None
    if grad is None:
        return torch.ones(len(y), dtype=torch.bool)
    flat = grad.detach().flatten(1)
    return ((flat.abs().amax(dim=1) == 0) | ~torch.isfinite(flat).all(dim=1)).cpu()


@torch.no_grad()
def unstable_predictions(
    model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: Norm, robust: Tensor | None = None
) -> Tensor:
    """Per image: a repeated forward of the image itself misclassifies it (the model is random),
    or - where ``robust`` (the attack's verdict) says the attack failed - a random point of the
    box of half-width eps/4 around it is misclassified (random noise beat the attack)."""
    random_model = torch.zeros(len(y), dtype=torch.bool, device=x.device)
    noise_fools = torch.zeros_like(random_model)
    radius = UNSTABLE_RADIUS * eps
    with frozen_eval(model):
        for _ in range(UNSTABLE_REPEATS):
            random_model |= ~float32_verdict(model, x, y)
        draws = robust is not None and radius > 0 and bool(robust.any())
        for _ in range(UNSTABLE_DRAWS if draws else 0):
            noise_fools |= ~float32_verdict(model, _random_point(x, radius, norm), y)
    if robust is not None:
        noise_fools &= robust.to(x.device)
    return (random_model | noise_fools).cpu()


def _random_point(x: Tensor, radius: float, norm: Norm) -> Tensor:
    noise = torch.empty_like(x, memory_format=torch.contiguous_format).uniform_(-1.0, 1.0)
    if norm is Norm.L2:
        scale = noise.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
        noise = noise / scale
    return torch.clamp(x + radius * noise, 0.0, 1.0)


def still_rising(losses: Tensor) -> Tensor:
    """Per image (columns of ``losses``, rows = iterates): the running best loss, rescaled to
    [0, 1] over the run, rose by more than ``LOSS_TOLERANCE`` over the last window of steps
    (a tenth of them, at least 2) - Pintor et al.'s incomplete-optimisation rule for a loss the
    attack maximises."""
    losses = torch.nan_to_num(losses.float(), nan=0.0)
    low, high = losses.min(dim=0).values, losses.max(dim=0).values
    span = (high - low).where(high > low, torch.ones_like(high))
    best = torch.cummax((losses - low) / span, dim=0).values
    steps = losses.shape[0] - 1
    window = min(steps, max(2, math.ceil(LOSS_WINDOW_FRACTION * steps)))
    return ((best[-1] - best[-1 - window]) > LOSS_TOLERANCE).cpu()


def _tracked_run(attack: Attack, model: nn.Module, x: Tensor, y: Tensor) -> _Trace:
    """The attack's own loop (:meth:`Attack.iterate`), recording what each iterate did."""
    if attack.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    spec = attack.spec
    losses, fooled = [], torch.zeros(len(y), dtype=torch.bool, device=x.device)
    with frozen_eval(model, attack.converts_model):
        x_adv, state = attack.start(x, None), {}
        for _ in range(spec.steps):
            grad, logits = attack.gradient_and_logits(model, x_adv, y)
            losses.append(F.cross_entropy(logits.float(), y, reduction="none"))
            fooled |= logits.argmax(dim=1) != y
            x_adv = project(attack.step(x_adv, grad, state), x, spec.eps, spec.norm)
        with torch.no_grad(), _attack_precision(attack, x.device):
            view = model(x_adv).float()
        losses.append(F.cross_entropy(view, y, reduction="none"))
        final_ok = float32_verdict(model, x_adv, y)
    return _Trace(
        torch.stack(losses).detach().cpu(),
        fooled.cpu(),
        (view.argmax(dim=1) != y).cpu(),
        final_ok.cpu(),
    )


def _attack_precision(attack: Attack, device: torch.device) -> torch.autocast:
    enabled = attack.amp_dtype is not None
    return torch.autocast(device_type=device.type, dtype=attack.amp_dtype, enabled=enabled)
