"""Indicators of attack failure for one white-box cell, on its first images.

After Pintor et al., "Indicators of Attack Failure: Debugging and Improving Optimization of
Adversarial Examples" (NeurIPS 2022; their code: pralab/IndicatorsOfAttackFailure,
``src/indicators/indicators.py``). Per examined image (the clean-correct ones among the first
``n`` of the cell's slice) an indicator is triggered or not; a cell stores, per indicator, how
many images triggered it out of how many were examined (``None`` where it does not apply):

- ``silent_success``: an iterate before the last fooled the model, the returned point does not;
- ``incomplete_optimization`` (the authors' rule): on an image the attack did not fool, the
  running best of its loss path, rescaled to [0, 1], still moved by more than 0.05 over the last
  10 points of the path (start included; the last half of a path shorter than 20 points);
- ``transfer_failure``: the returned point fools the model as the attack saw it (its own forward,
  in its precision) but not the float32 verdict;
- ``unavailable_gradients``: the input gradient of the loss is zero or not finite (or the graph
  is cut);
- ``unstable_predictions`` (the authors' score): on an image the attack did not fool, the mean
  over 100 uniform draws in the box of width 8/255 around the clean point (the authors' radius,
  whatever the attack's eps) of the relative change of the loss, ``|L(x + u) - L(x)| / |L(x)|``
  (1 where ``L(x) = 0``), capped at 1; triggered above :data:`UNSTABLE_THRESHOLD`.

Indicators belong to the cell whose attack they read: a black-box cell (AutoAttack, a
torchattacks class) gets none of them; ``unconstrained_failure`` (the large-budget PGD fails,
from the stored trust cell: :mod:`bench.trust.paired_checks`) goes to stepwise cells only.
Every cell also records ``random_forward``: on how many of its images five repeated eval-mode
forwards differ (AutoAttack's randomness check), read by the ``randomized_forward`` trust check
(:mod:`bench.trust.randomness`). The tracked run also attacks the clean mistakes, so that
``robust_le_clean`` can compare the attack's accuracy over all images with the clean accuracy
(``paired``: clean-wrong-but-attacked-right vs clean-right-but-attacked-wrong).
Thresholds and choices: docs/decisions/trust.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.attacks.base import Attack, float32_verdict, frozen_eval, model_device, project
from bench.attacks.batches import batch_seed, seeded
from bench.results.names import INDICATORS
from core.enums import Norm

REVISION = 2  # joins the stored row: a row of another revision is recomputed
# the authors' unstable-predictions score: gamma = 100 draws in a box of width 8/255 (their
# radius); the threshold is ours (docs/decisions/trust.md: SmallNet 0.03, with noise 0.5)
UNSTABLE_DRAWS, UNSTABLE_WIDTH, UNSTABLE_THRESHOLD = 100, 8 / 255, 0.2
UNSTABLE_SEED = 0  # image i of a cell's slice draws from a generator seeded UNSTABLE_SEED + i
# the authors' incomplete-optimisation rule: last 10 points, tolerance 0.05
LOSS_TOLERANCE, LOSS_WINDOW_POINTS, MIN_TRACKED_STEPS = 0.05, 10, 4
RANDOM_REPEATS, RANDOM_TOLERANCE = 5, 1e-4  # pyautoattack's check_randomized: n = 5, alpha

Counts = dict[str, Any]


@dataclass
class _Trace:
    """What one tracked run of a stepwise attack saw, per image."""

    losses: Tensor  # (steps + 1, n): loss at each iterate (start included) and at the output
    fooled_before: Tensor  # an iterate before the output fooled the model (the attack's view)
    view_fooled: Tensor  # the output fools the model as the attack computes it
    final_ok: Tensor  # the float32 verdict on the output


def cell_indicators(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: Any,
    *,
    seed: int,
    batch_size: int = 128,
    scores: dict[int, float] | None = None,
) -> Counts:
    """Counts ``{indicator: [triggered, examined] | None, "paired": {...}}`` for ``attack``
    (an :class:`Attack` or any callable) on the images ``x`` (labels ``y``).

    ``seed`` seeds the attack's random starts. The unstable-predictions score of image ``i``
    draws from its own generator (seeded ``UNSTABLE_SEED + i``) and reads the model only, so
    cells of one checkpoint may share ``scores`` (image index -> score): each image is scored
    once, whichever cell needs it first."""
    device = model_device(model)
    x, y = x.to(device, torch.float32), y.to(device)
    scores = {} if scores is None else scores
    parts = []
    for i, start in enumerate(range(0, len(x), max(batch_size, 1))):
        rows = slice(start, start + max(batch_size, 1))
        with seeded(batch_seed(seed, i), device):
            parts.append(_batch_counts(model, x[rows], y[rows], attack, start, scores))
    return _merge(parts)


def _batch_counts(
    model: nn.Module, x: Tensor, y: Tensor, attack: Any, first: int, known: dict[int, float]
) -> Counts:
    with frozen_eval(model):
        clean_ok = float32_verdict(model, x, y).cpu()
    norm = attack.spec.norm if hasattr(attack, "spec") else Norm.LINF
    out: Counts = {name: None for name in INDICATORS}
    out["random_forward"] = _count(random_forward(model, x), torch.ones(len(y), dtype=torch.bool))
    if not (isinstance(attack, Attack) and attack.stepwise):  # a black box: none of them
        return out
    out["unavailable_gradients"] = _count(unavailable_gradients(model, x, y), clean_ok)
    trace = _tracked_run(attack, model, x, y)
    survived = clean_ok & trace.final_ok
    missing = survived & torch.tensor([first + i not in known for i in range(len(y))])
    fresh = unstable_scores(model, x, y, UNSTABLE_WIDTH, norm, missing, seed=UNSTABLE_SEED + first)
    known.update({first + int(i): float(fresh[i]) for i in missing.nonzero().flatten()})
    scores = torch.tensor([known.get(first + i, 0.0) for i in range(len(y))])
    out["unstable_predictions"] = _count((scores > UNSTABLE_THRESHOLD) & survived, clean_ok)
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
    for name in (*INDICATORS, "paired", "random_forward"):
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
def random_forward(model: nn.Module, x: Tensor) -> Tensor:
    """Per image: :data:`RANDOM_REPEATS` eval-mode forwards differ (the L2 distance of their
    L2-normalised logits above :data:`RANDOM_TOLERANCE`, or the predicted class changes), as
    pyautoattack's ``check_randomized`` decides for a batch (CPU bool)."""
    with frozen_eval(model), torch.autocast(device_type=x.device.type, enabled=False):
        outs = [model(x.float()).float() for _ in range(RANDOM_REPEATS)]
    first = F.normalize(outs[0], dim=1, eps=1e-10)
    differs = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for out in outs[1:]:
        gap = (F.normalize(out, dim=1, eps=1e-10) - first).norm(dim=1)
        differs |= (gap > RANDOM_TOLERANCE) | (out.argmax(dim=1) != outs[0].argmax(dim=1))
    return differs.cpu()


@torch.no_grad()
def unstable_scores(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    width: float,
    norm: Norm,
    where: Tensor,
    *,
    seed: int,
    draws: int = UNSTABLE_DRAWS,
) -> Tensor:
    """Per image (0 where ``where`` is false): the authors' unstable-predictions score, the mean
    over ``draws`` random points ``x + u`` of ``|L(x + u) - L(x)| / |L(x)|`` (``L`` the
    cross-entropy, a zero ``L(x)`` divided by 1), capped at 1. ``u`` is uniform in the box of
    width ``width`` (for L2, that box's draw scaled to L2 length width/2); image
    ``i`` draws from its own generator (``seed + i``), so a score does not depend on which
    other images are scored (:func:`unit_draws`)."""
    scores = torch.zeros(len(y))
    rows = where.cpu().nonzero().flatten().tolist()
    if width <= 0 or not rows:
        return scores
    with frozen_eval(model), torch.autocast(device_type=x.device.type, enabled=False):
        for i in rows:
            xi, yi = x[i : i + 1].float(), y[i : i + 1]
            reference = F.cross_entropy(model(xi).float(), yi)
            divisor = reference if float(reference) != 0.0 else torch.ones_like(reference)
            noise = unit_draws(xi.shape[1:], draws, seed + i).to(x.device)
            if norm is Norm.L2:
                lengths = noise.flatten(1).norm(dim=1).clamp_min(1e-12)
                noise = noise / lengths.view(-1, *([1] * (noise.dim() - 1))) * 0.5
            points = xi + width * noise  # the authors do not clamp to [0, 1]
            losses = F.cross_entropy(model(points).float(), yi.expand(draws), reduction="none")
            relative = (losses - reference).abs() / divisor
            scores[i] = float(relative.mean().clamp(max=1.0))
    return scores


def unit_draws(shape: torch.Size | tuple[int, ...], draws: int, seed: int) -> Tensor:
    """``draws`` points uniform in [-1/2, 1/2]^shape from a generator seeded with ``seed`` (the
    authors' ``torch.rand(...) - 0.5``, to be scaled by the box width)."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.rand((draws, *shape), generator=generator) - 0.5


def still_rising(losses: Tensor) -> Tensor:
    """Per image (columns of ``losses``, rows = the loss path, start included): the authors'
    incomplete-optimisation rule for a loss the attack maximises. The path is rescaled to
    [0, 1], made monotone (its running best), and triggers when its last
    :data:`LOSS_WINDOW_POINTS` points span more than :data:`LOSS_TOLERANCE`; on a path of fewer
    than 20 points, its last half (their 10 points assume attacks of about 100 steps: on PGD-10's
    11 points they would span the whole run and flag any loss that rose at all)."""
    losses = torch.nan_to_num(losses.float(), nan=0.0)
    low, high = losses.min(dim=0).values, losses.max(dim=0).values
    span = (high - low).where(high > low, torch.ones_like(high))
    best = torch.cummax((losses - low) / span, dim=0).values
    window = max(1, min(losses.shape[0] // 2, LOSS_WINDOW_POINTS))
    return ((best[-1] - best[-window]) > LOSS_TOLERANCE).cpu()


def _tracked_run(attack: Attack, model: nn.Module, x: Tensor, y: Tensor) -> _Trace:
    """The attack's own loop (:meth:`Attack.iterate`), recording what each iterate did."""
    if attack.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    spec = attack.spec
    losses, fooled = [], torch.zeros(len(y), dtype=torch.bool, device=x.device)
    with attack.frozen(model):
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
