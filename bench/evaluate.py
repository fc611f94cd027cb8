"""Evaluation kinds as reusable functions on tensors, each returning per-sample correctness.

Kinds (stored as ``results.kind``): ``clean``, ``whitebox``, ``transfer``, ``step_sweep`` and
``eps_sweep``. Every function runs its rows through the one seeded batched loop
(:func:`bench.attacks.batches.per_batch`; sharded under ``torchrun``, bit for bit what one process
computes). The conventions (clean mistakes are not attacked, verdicts in float32, transfer
generated once per source, the sweeps' cost rules) are explained in docs/decisions/attacks.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from bench.attacks import build_attack, counting, pgd_checkpoints
from bench.attacks.base import Attack, model_device
from bench.attacks.batches import Batch, per_batch
from bench.attacks.budgets import correct_over_budgets, correct_streamed
from bench.attacks.pgd import PGD, best_iterate
from core.errors import UserError

AttackFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
CheckpointFn = Callable[[nn.Module, Tensor, Tensor, Any, list[int]], dict[int, Tensor]]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore its previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, *, batch_size: int = 256) -> Tensor:
    """Predicted labels (CPU long tensor) in eval mode, float32, batched."""
    device = model_device(model)
    out = []
    with eval_mode(model), torch.autocast(device_type=device.type, enabled=False):
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device, dtype=torch.float32)
            out.append(model(xb).argmax(dim=1).cpu())
    if not out:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat(out)


# -- attacks and verdicts ------------------------------------------------------------------------


def as_attack(spec: Any, options: Mapping[str, Any] | None = None) -> AttackFn:
    """An attack callable from an ``AttackSpec`` (via ``build_attack``) or a callable as is.

    ``options`` (e.g. ``channels_last``, ``amp_dtype``) are set on the attack where it declares
    them in its ``run_options``; others are ignored.
    """
    attack = spec if callable(spec) else build_attack(spec)
    accepted = getattr(attack, "run_options", ())
    for name, value in (options or {}).items():
        if name in accepted:
            setattr(attack, name, value)
    return attack


def _pgd_knobs(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run options :class:`PGD` declares, from ``options`` (others ignored)."""
    return {k: v for k, v in (options or {}).items() if k in PGD.run_options}


def _correct_on(model: nn.Module, x_adv: Tensor, y: Tensor, batch_size: int) -> Tensor:
    return predict(model, x_adv, batch_size=max(batch_size, 1)) == y.cpu()


def _attacked(attack: AttackFn, model: nn.Module, x: Tensor, y: Tensor, batch: Batch) -> Tensor:
    """``attack(model, x, y)`` under the batch's seed, as a CPU float32 tensor."""
    xb, yb = x.to(batch.device), y.to(batch.device)
    with batch.seeded():
        return attack(model, xb, yb).detach().to("cpu", torch.float32)


def clean_correct(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256, device: Any = None
) -> Tensor:
    """Per-sample clean correctness (CPU bool tensor). ``device``: where to move the model."""
    if device is not None:
        model.to(device)

    def verdict(batch: Batch) -> Tensor:
        return _correct_on(model, x[batch.rows], y[batch.rows], batch_size)

    return per_batch(len(x), batch_size, verdict)


def adversarial_correct(
    attack: AttackFn, model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int, seed: int
) -> Tensor:
    """Per-row correctness of ``model`` on ``attack(model, x, y)`` (every row attacked)."""

    def verdict(batch: Batch) -> Tensor:
        xb, yb = x[batch.rows], y[batch.rows]
        return _correct_on(model, _attacked(attack, model, xb, yb, batch), yb, batch_size)

    return per_batch(len(x), batch_size, verdict, seed=seed, device=model_device(model))


def correct_over_iterates(
    attack: AttackFn, model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int, seed: int
) -> Tensor:
    """Per-row correctness when EVERY iterate of the attack counts, not only its output.

    Batched and seeded exactly like :func:`adversarial_correct` (same random starts); each batch
    goes through the attack's ``correct_over_iterates`` (:class:`bench.attacks.base.Attack`),
    which stops attacking a row once it is fooled. A plain callable is judged on its output.
    """
    judge = getattr(attack, "correct_over_iterates", None)
    if judge is None:
        return adversarial_correct(attack, model, x, y, batch_size=batch_size, seed=seed)

    def verdict(batch: Batch) -> Tensor:
        xb, yb = x[batch.rows].to(batch.device), y[batch.rows].to(batch.device)
        with batch.seeded():
            return judge(model, xb, yb).cpu()

    return per_batch(len(x), batch_size, verdict, seed=seed, device=model_device(model))


def whitebox_correct(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    spec: Any,
    *,
    batch_size: int = 128,
    clean: Tensor | None = None,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
) -> Tensor:
    """Per-sample correctness under a white-box attack; clean mistakes are not attacked.

    ``pgd(best_iterate=True)``: fooled by any iterate, fooled rows stop and are refilled
    (:func:`bench.attacks.budgets.correct_streamed`), with the starts of the plain run."""
    clean = clean_correct(model, x, y, batch_size) if clean is None else clean.cpu()
    result = clean.clone()
    idx = clean.nonzero().flatten()
    if len(idx) == 0:
        return result
    attack = as_attack(spec, options)
    judge = correct_streamed if best_iterate(spec) else adversarial_correct
    result[idx] = judge(attack, model, x[idx], y[idx], batch_size=batch_size, seed=seed)
    return result


def transfer_correct(
    source: nn.Module,
    targets: Mapping[str, nn.Module],
    x: Tensor,
    y: Tensor,
    spec: Any,
    *,
    batch_size: int = 128,
    clean: Mapping[str, Tensor] | None = None,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Tensor]:
    """Transfer attack: generate ONCE on ``source`` (every sample), judge on each target."""
    if best_iterate(spec):
        raise UserError("best_iterate is a white-box option (the iterates are judged on the "
                        "attacked model); use plain pgd for transfer")  # fmt: skip
    attack = as_attack(spec, options)
    clean = dict(clean or {})
    ok = {
        name: clean[name].cpu() if name in clean else clean_correct(target, x, y, batch_size)
        for name, target in targets.items()
    }

    def verdicts(batch: Batch) -> Tensor:
        xb, yb = x[batch.rows], y[batch.rows]
        x_adv = _attacked(attack, source, xb, yb, batch)
        per_target = [_correct_on(t, x_adv, yb, batch_size) for t in targets.values()]
        return torch.stack(per_target, dim=1) if per_target else torch.zeros(len(yb), 0).bool()

    survived = per_batch(
        len(x), batch_size, verdicts, seed=seed, device=model_device(source), width=(len(ok),)
    )
    return {name: ok[name] & survived[:, i] for i, name in enumerate(targets)}


def step_sweep_correct(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    spec: Any,
    steps: Sequence[int] = (10, 20, 50, 100),
    *,
    batch_size: int = 128,
    clean: Tensor | None = None,
    seed: int = 0,
    checkpoint_fn: CheckpointFn | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[int, Tensor]:
    """Correctness after each PGD iteration count in ``steps``, from ONE PGD run per batch.

    ``options``: the attack's run options (``compile``, ``channels_last``, ``amp_dtype``), for
    the default PGD run (a given ``checkpoint_fn`` runs as it is)."""
    checkpoints = sorted({int(k) for k in steps})
    if not checkpoints or checkpoints[0] < 1:
        raise ValueError(f"iteration checkpoints must be >= 1, got {list(steps)}")
    run = checkpoint_fn or functools.partial(pgd_checkpoints, **_pgd_knobs(options))
    if dataclasses.is_dataclass(spec):
        spec = dataclasses.replace(spec, steps=checkpoints[-1])
    clean = clean_correct(model, x, y, batch_size) if clean is None else clean.cpu()
    idx = clean.nonzero().flatten()
    device = model_device(model)

    def verdicts(batch: Batch) -> Tensor:
        part = idx[batch.rows]
        xb, yb = x[part].to(device), y[part].to(device)
        with batch.seeded():
            advs = run(model, xb, yb, spec, checkpoints)
        counter = counting.of(model)
        oks = []
        for k in checkpoints:  # the verdict's forward belongs to its own checkpoint's cost
            start = counter.snapshot() if counter is not None else None
            oks.append(_correct_on(model, advs[k].detach().cpu(), y[part], batch_size))
            if counter is not None:
                counter.mark(("steps", k), start)
        return torch.stack(oks, dim=1)

    width = (len(checkpoints),)
    survived = per_batch(len(idx), batch_size, verdicts, seed=seed, device=device, width=width)
    out = {k: clean.clone() for k in checkpoints}
    for j, k in enumerate(checkpoints):
        out[k][idx] = survived[:, j]
    return out


# -- the eps sweep -------------------------------------------------------------------------------


def eps_sweep_correct(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    spec: Any,
    eps_list: Sequence[float],
    *,
    batch_size: int = 128,
    clean: Tensor | None = None,
    seed: int | Callable[[float], int] = 0,
    attack_for_eps: Callable[[float], Any] | None = None,
    options: Mapping[str, Any] | None = None,
    known: Mapping[float, Tensor] | None = None,
) -> dict[float, Tensor]:
    """Worst-case correctness over budgets AND iterates, keyed by eps in ascending order.

    A sample is correct at eps when it survives every iterate of the attack at eps and at every
    smaller budget of the sweep. ``attack_for_eps(eps)`` builds the attack at each budget
    (default: ``spec.at_eps(eps)``); ``seed`` may be a function of eps (each budget's random
    start is drawn per batch from its own seed). ``known`` maps budgets already evaluated (a
    resumed run) to their stored correctness: they are not recomputed, and their survivors bound
    the larger budgets.

    Cost: a stepwise attack (:class:`bench.attacks.base.Attack`) runs every budget of a batch
    side by side (:func:`bench.attacks.budgets.correct_over_budgets`): about as many model calls
    as ONE attack, and a (sample, budget) row is dropped as soon as the sample is fooled at that
    budget or a smaller one. Anything else (a black box, a plain callable, budgets with different
    step counts) falls back to one attack per budget in ascending order on the survivors.
    """
    make = attack_for_eps or (lambda eps: spec.at_eps(eps))
    clean = clean_correct(model, x, y, batch_size) if clean is None else clean.clone().cpu()
    known = {float(e): ok.cpu().bool() for e, ok in (known or {}).items()}
    budgets = sorted({float(e) for e in eps_list} | set(known))
    todo = [e for e in budgets if e not in known]
    out = dict(known)
    if todo:
        sweep = _Sweep(
            model,
            x,
            y,
            batch_size,
            attacks=[as_attack(make(eps), options) for eps in todo],
            seeds=[seed(eps) if callable(seed) else seed for eps in todo],
            alive=torch.stack([_bounded_by(clean, known, eps) for eps in todo], dim=1),
        )
        correct = sweep.together() if sweep.side_by_side() else sweep.in_turn()
        out.update({eps: correct[:, j] for j, eps in enumerate(todo)})
    return {eps: out[eps] for eps in budgets if eps in out}


def _bounded_by(clean: Tensor, known: Mapping[float, Tensor], eps: float) -> Tensor:
    """Clean correctness AND the stored survivors of every smaller known budget."""
    alive = clean.clone()
    for e, ok in known.items():
        if e < eps:
            alive &= ok
    return alive


@dataclasses.dataclass
class _Sweep:
    """The budgets still to run: ``attacks[j]``, ``seeds[j]``, rows ``alive[:, j]`` to attack."""

    model: nn.Module
    x: Tensor
    y: Tensor
    batch_size: int
    attacks: list[Any]
    seeds: list[int]
    alive: Tensor

    def side_by_side(self) -> bool:
        """Whether the budgets can run overlapped: one stepwise class, one step count."""
        first = self.attacks[0]
        return all(
            isinstance(a, Attack)
            and a.stepwise
            and type(a) is type(first)
            and a.spec.steps == first.spec.steps
            for a in self.attacks
        )

    def together(self) -> Tensor:
        """The budgets overlapped (:func:`bench.attacks.budgets.correct_over_budgets`), per batch
        of the samples alive at the smallest budget; each budget draws its own start per batch."""
        idx = self.alive[:, 0].nonzero().flatten()
        device, size = model_device(self.model), max(self.batch_size, 1)

        def verdicts(batch: Batch) -> Tensor:
            part = idx[batch.rows]
            xb, yb = self.x[part].to(device, torch.float32), self.y[part].to(device)
            starts = []
            for attack, budget_seed in zip(self.attacks, self.seeds, strict=True):
                with batch.seeded(budget_seed):
                    starts.append(attack.start(xb, None))
            alive = self.alive[part]
            return correct_over_budgets(
                self.attacks, self.model, xb, yb, starts, alive, max_rows=size
            )

        correct = torch.zeros_like(self.alive)
        width = (len(self.attacks),)
        correct[idx] = per_batch(len(idx), size, verdicts, device=device, width=width)
        return correct

    def in_turn(self) -> Tensor:
        """One attack per budget, ascending, on the survivors of the smaller budgets only."""
        correct = self.alive.clone()
        for j, (attack, budget_seed) in enumerate(zip(self.attacks, self.seeds, strict=True)):
            if j:
                correct[:, j] &= correct[:, j - 1]
            idx = correct[:, j].nonzero().flatten()
            if len(idx):
                correct[idx, j] = correct_over_iterates(
                    attack,
                    self.model,
                    self.x[idx],
                    self.y[idx],
                    batch_size=self.batch_size,
                    seed=budget_seed,
                )
        return correct
