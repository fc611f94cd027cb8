"""Evaluation kinds as reusable functions on tensors, each returning per-sample correctness.

Kinds (stored as ``results.kind``): ``clean``, ``whitebox``, ``transfer`` (black-box transfer
attacks, Papernot et al. 2016; the RACL paper's Tables 2 and 3), ``step_sweep`` (accuracy after
k PGD iterations, Madry et al. 2018, Figure 3a) and ``eps_sweep`` (accuracy against growing
budgets, Figure 3b/c).

Conventions, shared by every function here:

* Verdicts are computed in float32 (autocast off) in eval mode with no gradients; attack
  generation may use the attack's own speed knobs (channels_last, bf16), never the verdict.
* A sample the model misclassifies clean is NOT attacked and counts as wrong under attack
  (robust correctness = clean correctness AND correctness on the adversarial input). This is the
  standard convention (e.g. RobustBench) and saves the attack cost of those samples.
* Transfer attacks are generated ONCE per source over every sample of the slice (the source's
  own mistakes included: the adversary does not know the target) and judged on each target as
  "target clean-correct AND target correct on the transferred input".
* The step sweep reads every iteration checkpoint off ONE PGD run
  (:func:`bench.attacks.pgd_checkpoints`): PGD-k with a fixed step and the same random start is
  the prefix of PGD-K, so the k-step number equals a separate PGD-k run with the same seed. Each
  checkpoint is the k-th iterate (plain PGD-k), not the best iterate so far, so accuracy need not
  fall strictly with k on every sample.
* The eps sweep is a worst case over budgets and over iterates: budgets are visited in
  ascending order and only the survivors of the previous budget are attacked; a sample fooled at
  a smaller eps counts as fooled at every larger one (its adversarial input lies inside the
  larger ball too), so the curve is non-increasing by construction. Within one budget's run a
  sample counts as fooled as soon as ANY iterate (the random start included) fools the model,
  and its remaining steps are skipped. Every iterate is a valid point of the ball, so this is a
  stronger (never weaker) evaluation than judging only the last iterate, as AutoAttack does
  with its best point. FGSM has a single iterate, so its sweep is unchanged by this rule.
* Random starts are seeded per call (``seed``) and per batch inside a forked RNG, so a cell
  recomputed after an interruption reproduces the same numbers.
* Under ``torchrun`` (:mod:`core.distributed`) every function here shards its rows over the
  ranks in runs of WHOLE BATCHES of the one-process batching (:func:`sharded_rows`): each batch
  keeps its rows, its global index and hence its seed, so each rank computes exactly what one
  process computes for those batches, and the per-sample correctness is gathered in order on
  every rank. Sharded and one-process runs agree bit for bit, whatever the number of ranks. In
  one process nothing changes (one call over every row, no collective).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from core import distributed

AttackFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
RowsFn = Callable[[int, int], Tensor]
CheckpointFn = Callable[[nn.Module, Tensor, Tensor, Any, list[int]], dict[int, Tensor]]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a parameterless model."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore its previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run the block under ``torch.manual_seed(seed)`` without disturbing the global RNG."""
    devices = []
    if device is not None and device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed % (2**63))
        yield


def batch_seed(seed: int, batch_index: int) -> int:
    """A per-batch seed derived deterministically from a cell seed."""
    return (seed * 1_000_003 + batch_index * 7919 + 17) % (2**63)


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


def clean_correct(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256, device: Any = None
) -> Tensor:
    """Per-sample clean correctness (CPU bool tensor). ``device``: where to move the model."""
    if device is not None:
        model.to(device)

    def rows(start: int, stop: int) -> Tensor:
        return predict(model, x[start:stop], batch_size=batch_size) == y[start:stop].cpu()

    return sharded_rows(len(x), batch_size, rows)


def sharded_rows(n: int, batch_size: int, compute: RowsFn) -> Tensor:
    """``compute(start, stop)`` (a bool tensor, one row per input row) over rows ``[0, n)``.

    One process: ``compute(0, n)``. Under torchrun each rank calls it on its contiguous run of
    whole batches (``start`` is a multiple of ``batch_size``, so the batches inside are those of
    the one-process run) and the rows of every rank are gathered in order on every rank. A
    failure on any rank is raised on every rank, so the ranks stay in step.
    """
    if not distributed.context().enabled:
        return compute(0, n)
    rows = distributed.shard_range(n, block=batch_size)
    local, error = None, None
    try:
        local = compute(rows.start, rows.stop)
    except Exception as err:  # noqa: BLE001 - every rank learns of it, then it is raised
        error = err
    distributed.raise_if_any_failed(error)
    return distributed.gather_bool(local, n, block=batch_size)


def as_attack(spec: Any, options: Mapping[str, Any] | None = None) -> AttackFn:
    """An attack callable from an ``AttackSpec`` (via ``build_attack``) or a callable as is.

    ``options`` (e.g. ``channels_last``, ``amp_dtype``) are set on the attack where it declares
    them in its ``run_options``; others are ignored.
    """
    if callable(spec):
        attack = spec
    else:
        from bench.attacks import build_attack

        attack = build_attack(spec)
    accepted = getattr(attack, "run_options", ())
    for name, value in (options or {}).items():
        if name in accepted:
            setattr(attack, name, value)
    return attack


def generate(
    attack: AttackFn,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int = 128,
    seed: int = 0,
    first_batch: int = 0,
) -> Tensor:
    """Adversarial inputs for every row of ``x`` (CPU tensor), batched and seeded per batch.

    ``first_batch``: the global index of the first batch (a shard that starts further in).
    """
    device = model_device(model)
    out = []
    for b, start in enumerate(range(0, len(x), batch_size), start=first_batch):
        xb = x[start : start + batch_size].to(device)
        yb = y[start : start + batch_size].to(device)
        with seeded(batch_seed(seed, b), device):
            out.append(attack(model, xb, yb).detach().to("cpu", torch.float32))
    if not out:
        return x[:0].clone()
    return torch.cat(out)


def _correct_on(model: nn.Module, x_adv: Tensor, y: Tensor, batch_size: int) -> Tensor:
    return predict(model, x_adv, batch_size=max(batch_size, 1)) == y.cpu()


def adversarial_correct(
    attack: AttackFn, model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int, seed: int
) -> Tensor:
    """Per-row correctness of ``model`` on ``attack(model, x, y)`` (every row attacked)."""

    def rows(start: int, stop: int) -> Tensor:
        xs, ys = x[start:stop], y[start:stop]
        first = start // max(batch_size, 1)
        x_adv = generate(attack, model, xs, ys, batch_size=batch_size, seed=seed, first_batch=first)
        return _correct_on(model, x_adv, ys, batch_size)

    return sharded_rows(len(x), batch_size, rows)


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
    device = model_device(model)
    size = max(batch_size, 1)

    def rows(start: int, stop: int) -> Tensor:
        out = [torch.zeros(0, dtype=torch.bool)]
        for b, first in enumerate(range(start, stop, size), start=start // size):
            xb, yb = x[first : min(first + size, stop)], y[first : min(first + size, stop)]
            with seeded(batch_seed(seed, b), device):
                out.append(judge(model, xb.to(device), yb.to(device)).cpu())
        return torch.cat(out)

    return sharded_rows(len(x), batch_size, rows)


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
    """Per-sample correctness under a white-box attack; clean mistakes are not attacked."""
    clean = clean_correct(model, x, y, batch_size) if clean is None else clean.cpu()
    result = clean.clone()
    idx = clean.nonzero().flatten()
    if len(idx) == 0:
        return result
    attack = as_attack(spec, options)
    result[idx] = adversarial_correct(
        attack, model, x[idx], y[idx], batch_size=batch_size, seed=seed
    )
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
    attack = as_attack(spec, options)
    clean = dict(clean or {})
    ok = {
        name: clean[name].cpu() if name in clean else clean_correct(target, x, y, batch_size)
        for name, target in targets.items()
    }

    def rows(start: int, stop: int) -> Tensor:
        xs, ys = x[start:stop], y[start:stop]
        first = start // max(batch_size, 1)
        x_adv = generate(
            attack, source, xs, ys, batch_size=batch_size, seed=seed, first_batch=first
        )
        verdicts = [_correct_on(t, x_adv, ys, batch_size) for t in targets.values()]
        return torch.stack(verdicts, dim=1) if verdicts else torch.zeros(stop - start, 0).bool()

    survived = sharded_rows(len(x), batch_size, rows)
    return {name: ok[name] & survived[:, i] for i, name in enumerate(targets)}


def transfer_matrix(
    models: Mapping[str, nn.Module],
    x: Tensor,
    y: Tensor,
    spec: Any,
    *,
    batch_size: int = 128,
    clean: Mapping[str, Tensor] | None = None,
    seed: int | Mapping[str, int] = 0,
    options: Mapping[str, Any] | None = None,
) -> dict[tuple[str, str], Tensor]:
    """Transfer matrix keyed ``(source, target)``: N generations, N^2 cheap verdicts.

    Rows are sources; the diagonal (source == target) is the white-box result of the same
    generation. ``seed`` may map each source name to its own seed.
    """
    clean = dict(clean or {})
    for name, model in models.items():
        if name not in clean:
            clean[name] = clean_correct(model, x, y, batch_size)
    out: dict[tuple[str, str], Tensor] = {}
    for src, source in models.items():
        src_seed = seed[src] if isinstance(seed, Mapping) else seed
        row = transfer_correct(
            source,
            models,
            x,
            y,
            spec,
            batch_size=batch_size,
            clean=clean,
            seed=src_seed,
            options=options,
        )
        out.update({(src, tgt): ok for tgt, ok in row.items()})
    return out


def _default_checkpoint_fn() -> CheckpointFn:
    from bench.attacks import pgd_checkpoints

    return pgd_checkpoints


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
) -> dict[int, Tensor]:
    """Correctness after each PGD iteration count in ``steps``, from ONE PGD run per batch."""
    checkpoints = sorted({int(k) for k in steps})
    if not checkpoints or checkpoints[0] < 1:
        raise ValueError(f"iteration checkpoints must be >= 1, got {list(steps)}")
    run = checkpoint_fn or _default_checkpoint_fn()
    if dataclasses.is_dataclass(spec):
        spec = dataclasses.replace(spec, steps=checkpoints[-1])
    clean = clean_correct(model, x, y, batch_size) if clean is None else clean.cpu()
    idx = clean.nonzero().flatten()
    device = model_device(model)

    def rows(start: int, stop: int) -> Tensor:
        verdicts = torch.zeros(stop - start, len(checkpoints), dtype=torch.bool)
        for b, first in enumerate(range(start, stop, batch_size), start=start // batch_size):
            part = idx[first : min(first + batch_size, stop)]
            xb, yb = x[part].to(device), y[part].to(device)
            with seeded(batch_seed(seed, b), device):
                advs = run(model, xb, yb, spec, checkpoints)
            for j, k in enumerate(checkpoints):
                at = slice(first - start, first - start + len(part))
                verdicts[at, j] = _correct_on(model, advs[k].detach().cpu(), y[part], batch_size)
        return verdicts

    survived = sharded_rows(len(idx), batch_size, rows)
    out = {k: clean.clone() for k in checkpoints}
    for j, k in enumerate(checkpoints):
        out[k][idx] = survived[:, j]
    return out


def spec_at_eps(spec: Any, eps: float) -> Any:
    """``spec.at_eps(eps)`` (:meth:`bench.attacks.AttackSpec.at_eps`); kept for callers."""
    return spec.at_eps(eps)


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
    side by side (:func:`bench.attacks.budgets.correct_over_budgets`): about as many model calls as
    ONE attack, and a (sample, budget) row is dropped as soon as the sample is fooled at that
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
        attacks = [as_attack(make(eps), options) for eps in todo]
        seeds = [seed(eps) if callable(seed) else seed for eps in todo]
        alive = torch.stack([_bounded_by(clean, known, eps) for eps in todo], dim=1)
        if _side_by_side(attacks):
            correct = _budgets_together(model, x, y, attacks, seeds, alive, batch_size)
        else:
            correct = _budgets_in_turn(model, x, y, attacks, seeds, alive, batch_size)
        out.update({eps: correct[:, j] for j, eps in enumerate(todo)})
    return {eps: out[eps] for eps in budgets if eps in out}


def _bounded_by(clean: Tensor, known: Mapping[float, Tensor], eps: float) -> Tensor:
    """Clean correctness AND the stored survivors of every smaller known budget."""
    alive = clean.clone()
    for e, ok in known.items():
        if e < eps:
            alive &= ok
    return alive


def _side_by_side(attacks: Sequence[Any]) -> bool:
    from bench.attacks.base import Attack

    first = attacks[0]
    return all(
        isinstance(a, Attack)
        and a.stepwise
        and type(a) is type(first)
        and a.spec.steps == first.spec.steps
        for a in attacks
    )


def _budgets_together(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attacks: Sequence[Any],
    seeds: Sequence[int],
    alive: Tensor,
    batch_size: int,
) -> Tensor:
    """The budgets overlapped (:func:`bench.attacks.budgets.correct_over_budgets`), per batch of
    the samples alive at the smallest budget; each budget draws its own start per batch."""
    from bench.attacks.budgets import correct_over_budgets

    idx = alive[:, 0].nonzero().flatten()
    device = model_device(model)
    size = max(batch_size, 1)

    def rows(start: int, stop: int) -> Tensor:
        out = [torch.zeros(0, len(attacks), dtype=torch.bool)]
        for b, first in enumerate(range(start, stop, size), start=start // size):
            part = idx[first : min(first + size, stop)]
            xb, yb = x[part].to(device, torch.float32), y[part].to(device)
            starts = []
            for attack, budget_seed in zip(attacks, seeds, strict=True):
                with seeded(batch_seed(budget_seed, b), device):
                    starts.append(attack.start(xb, None))
            out.append(
                correct_over_budgets(attacks, model, xb, yb, starts, alive[part], max_rows=size)
            )
        return torch.cat(out)

    correct = torch.zeros_like(alive)
    correct[idx] = sharded_rows(len(idx), batch_size, rows)
    return correct


def _budgets_in_turn(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attacks: Sequence[Any],
    seeds: Sequence[int],
    alive: Tensor,
    batch_size: int,
) -> Tensor:
    """One attack per budget, ascending, on the survivors of the smaller budgets only."""
    correct = alive.clone()
    for j, (attack, budget_seed) in enumerate(zip(attacks, seeds, strict=True)):
        if j:
            correct[:, j] &= correct[:, j - 1]
        idx = correct[:, j].nonzero().flatten()
        if len(idx):
            correct[idx, j] = correct_over_iterates(
                attack, model, x[idx], y[idx], batch_size=batch_size, seed=budget_seed
            )
    return correct
