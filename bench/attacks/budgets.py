"""Several budgets of one stepwise attack run overlapped, every iterate judged (the eps sweep).

:func:`correct_over_budgets` packs (sample, budget) rows into full model calls, smaller budgets
first, and drops a row as soon as its sample is fooled at its budget or a smaller one; the eps
sweep (:func:`bench.evaluate.eps_sweep_correct`) runs it per batch. With one budget over all
rows (:func:`correct_streamed`) it is early-stopping PGD (``pgd(best_iterate=True)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from bench.attacks.base import Attack, float32_verdict, model_device, project
from bench.attacks.batches import Batch, sharded_rows


@dataclasses.dataclass
class _Cohort:
    """Rows of one budget that started together: sample indices, iterates, step state."""

    budget: int
    rows: Tensor
    x_adv: Tensor
    begun: int
    state: dict[str, Tensor] = dataclasses.field(default_factory=dict)


def correct_over_budgets(
    attacks: Sequence[Attack],
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    starts: Sequence[Tensor],
    alive: Tensor,
    *,
    max_rows: int,
) -> Tensor:
    """Several budgets of one stepwise attack, run overlapped, every iterate judged.

    ``attacks[j]`` is the attack at the j-th budget in ASCENDING order (same class, same number
    of steps), ``starts[j]`` its starting images for ``x`` (one row per sample) and
    ``alive[:, j]`` marks the samples still to attack at budget j (clean-correct, not fooled at
    a smaller budget evaluated earlier). Returns ``correct`` (same shape as ``alive``, on the
    CPU): sample i survived every iterate of budget j's run AND of every smaller budget's run.

    Every model call takes up to ``max_rows`` (sample, budget) rows: the running ones, then
    waiting rows in ascending budget order while there is room. A row leaves as soon as its
    sample is fooled at its own budget or at any smaller one (a point of a smaller ball lies in
    every larger ball), and its place goes to a waiting row. So calls stay full, no call is
    ever added for a larger budget, and the smaller budgets, whose verdicts prune the larger
    ones, go first. Rows of a larger budget that start before a smaller budget has finished
    with the same sample are wasted if the smaller one fools it later; that is the price of
    the full calls. Each row follows its own budget's step rule from ``starts[j]`` (rows that
    start together share the step state, e.g. momentum), so its iterates are those of a run of
    ``attacks[j]``, up to batch-size-dependent float rounding. Verdicts as in
    :meth:`Attack.correct_over_iterates`: an iterate that takes a step is judged on the logits
    of its gradient pass; a run's last iterate, which takes none, by a float32 forward of the
    model alone (no backward), and its rows' places go to waiting rows in the same round.
    """
    first = attacks[0]
    steps, size = first.spec.steps, max(max_rows, 1)
    device = model_device(model)
    x = x.detach().to(device=device, dtype=torch.float32)
    y = y.detach().to(device=device)
    correct = alive.to(device=device, dtype=torch.bool).clone()
    waiting = correct.clone()
    cohorts: list[_Cohort] = []
    t = 0
    with first.frozen(model):
        while True:
            # a run's last iterate takes no step: judged by a float32 forward of the model
            # itself (as Attack.correct_over_iterates judges it), no backward, its rows freed
            last = [c for c in cohorts if t - c.begun >= steps]
            if last:
                cohorts = [c for c in cohorts if t - c.begun < steps]
                rows = torch.cat([c.rows for c in last])
                ok = float32_verdict(model, torch.cat([c.x_adv for c in last]), y[rows])
                for c, ok_c in zip(last, ok.split([len(c.rows) for c in last]), strict=True):
                    correct[c.rows[~ok_c], c.budget :] = False
            waiting &= correct
            active = sum(len(c.rows) for c in cohorts)
            for j in range(len(attacks)):
                if active >= size:
                    break
                r = waiting[:, j].nonzero().flatten()[: size - active]
                if len(r):
                    waiting[r, j] = False
                    x0 = starts[j].detach().to(device, torch.float32)[r]
                    cohorts.append(_Cohort(j, r, x0, t))
                    active += len(r)
            if active == 0:
                break
            sizes = [len(c.rows) for c in cohorts]
            oks, grads = _judge_and_gradient(
                first, model, torch.cat([c.x_adv for c in cohorts]),
                y[torch.cat([c.rows for c in cohorts])], size,
            )  # fmt: skip
            for c, ok in zip(cohorts, oks.split(sizes), strict=True):
                correct[c.rows[~ok], c.budget :] = False  # fooled here: at every larger budget
            for c, g in zip(cohorts, grads.split(sizes), strict=True):
                keep = correct[c.rows, c.budget]
                c.rows, c.x_adv, g = c.rows[keep], c.x_adv[keep], g[keep]
                c.state = {name: value[keep] for name, value in c.state.items()}
                spec = attacks[c.budget].spec
                stepped = attacks[c.budget].step(c.x_adv, g, c.state)
                c.x_adv = project(stepped, x[c.rows], spec.eps, spec.norm)
            cohorts = [c for c in cohorts if len(c.rows)]
            t += 1
    return correct.cpu()


def _judge_and_gradient(
    attack: Attack, model: nn.Module, batch: Tensor, labels: Tensor, max_rows: int
) -> tuple[Tensor, Tensor]:
    """Per-row correctness and input gradient of ``batch``, in chunks of ``max_rows`` rows."""
    if attack.channels_last and batch.dim() == 4:
        batch = batch.contiguous(memory_format=torch.channels_last)
    size = max(max_rows, 1)
    oks, grads = [], []
    for lo in range(0, len(batch), size):
        xb, yb = batch[lo : lo + size], labels[lo : lo + size]
        grad, logits = attack.gradient_and_logits(model, xb, yb)
        if attack.amp_dtype is None:
            oks.append(logits.argmax(dim=1) == yb)
        else:
            oks.append(float32_verdict(model, xb, yb))
        grads.append(grad)
    return torch.cat(oks), torch.cat(grads)


def correct_streamed(
    attack: Attack, model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int, seed: int
) -> Tensor:
    """Per-row correctness over EVERY iterate of ``attack``, fooled rows refilled (CPU bool).

    The starts are those of :func:`bench.evaluate.adversarial_correct` (batch b of
    ``batch_size`` rows draws its start under ``batch_seed(seed, b)``), so a row never fooled
    takes the same steps as the plain run, up to batch-composition float rounding. The rows
    then stream through :func:`correct_over_budgets` (one budget): a row leaves at its first
    fooling iterate and the next rows take its place, so every model call holds ``batch_size``
    rows until the last ones. Under torchrun each rank streams its run of whole batches.
    """
    device, size = model_device(model), max(batch_size, 1)

    def shard(start: int, stop: int) -> Tensor:
        if stop <= start:
            return torch.zeros(0, dtype=torch.bool)
        xs = x[start:stop].detach().to(device, torch.float32)
        starts = []
        for b, first in enumerate(range(start, stop, size), start=start // size):
            rows = slice(first - start, min(first + size, stop) - start)
            with Batch(b, rows, seed, device).seeded():
                starts.append(attack.start(xs[rows], None))
        alive = torch.ones(stop - start, 1, dtype=torch.bool)
        ys, x0 = y[start:stop].to(device), torch.cat(starts)
        return correct_over_budgets([attack], model, xs, ys, [x0], alive, max_rows=size)[:, 0]

    return sharded_rows(len(x), size, shard)
