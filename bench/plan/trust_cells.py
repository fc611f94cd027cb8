"""The cells the trust checks need beyond the experiments, planned for every checkpoint.

- the large-budget cell (``trust``): PGD-10 at eps 0.5 on ``n_trust`` images (the
  ``large_eps_near_zero`` check and the unconstrained-attack indicator);
- the eps-check cells (``trust:eps``): the checkpoint's strongest PGD at its main budget, run
  independently at half and 5/4 of that budget on the first ``n_mono`` images (``eps_monotone``;
  the main cell itself is the budget 1.0);
- the gap cell (``trust:gap``, adversarially trained checkpoints only): APGD-CE + APGD-T of the
  original AutoAttack (``gap_targets`` target classes for APGD-T; 9 is the standard version's)
  at the main budget on the first ``n_gap`` images, run on the images that strongest PGD cell
  leaves robust, as AutoAttack runs each member on the survivors of the previous ones
  (``autoattack_gap``); its spec names that PGD (``after``), its cell that cell.

Sizes are the preset's; why these attacks and fractions: docs/decisions/trust.md.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from bench.plan.experiments import TRUST_ATTACK, AttackPlan
from core.datasets import dataset_info
from core.enums import EvalKind, Training

if TYPE_CHECKING:
    from bench.plan.planner import Planner
    from bench.plan.units import Cell, ModelRef

GAP_ATTACK = "autoattack(version='custom',attacks='apgd-ce,apgd-t',targets={targets})"
EPS_CHECK_FRACTIONS = (0.5, 1.25)
ADVERSARIAL = (Training.PGD_AT, Training.TRADES)
TRUST_EXPERIMENTS = ("trust", "trust:eps", "trust:gap")


def add_trust_cells(planner: Planner) -> None:
    """Add the large-budget, eps-check and gap cells of every checkpoint of the plan."""
    refs = list(planner.refs.values())
    for ref in refs:
        sl = planner.slice_for(ref.dataset, _capped(planner, planner.preset.n_trust))
        planner.whitebox(ref, sl, TRUST_ATTACK.spec(ref.dataset), "trust")
    for ref in refs:
        cell = main_pgd(planner, ref)
        if cell is None:
            continue
        main = cell.spec
        mono = planner.slice_for(ref.dataset, _capped(planner, planner.preset.n_mono))
        for fraction in EPS_CHECK_FRACTIONS:
            budget = round(main.eps * fraction, 6)
            if 0.0 < budget <= 1.0:
                planner.whitebox(ref, mono, main.at_eps(budget), "trust:eps")
        if ref.training in ADVERSARIAL:
            _gap_cell(planner, ref, cell)


def _gap_cell(planner: Planner, ref: ModelRef, pgd: Cell) -> None:
    """APGD-CE + APGD-T on the survivors of ``pgd`` among its first ``n_gap`` images."""
    sl = planner.slice_for(ref.dataset, min(_capped(planner, planner.preset.n_gap), pgd.n))
    text = GAP_ATTACK.format(targets=planner.preset.gap_targets)
    base = AttackPlan(text).spec(ref.dataset, pgd.spec.eps)
    spec = dataclasses.replace(base, params=(*base.params, ("after", pgd.spec.key())))
    planner.whitebox(ref, sl, spec, "trust:gap")
    for c in planner.cells.values():
        if c.target.hash == ref.hash and c.spec is not None and c.spec.key() == spec.key():
            c.after = pgd.key


def main_budget(planner: Planner, ref: ModelRef) -> float:
    """The budget the run asked for (``--eps``), else the dataset's standard one."""
    return planner.req.eps if planner.req.eps is not None else dataset_info(ref.dataset).eps


def main_pgd(planner: Planner, ref: ModelRef) -> Cell | None:
    """The PGD white-box cell of ``ref`` at its main budget with the most steps, on the most
    images (None if none)."""
    budget = main_budget(planner, ref)
    cells = [
        c
        for c in planner.cells.values()
        if c.kind is EvalKind.WHITEBOX
        and c.target.hash == ref.hash
        and c.spec.name == "pgd"
        and abs(c.spec.eps - budget) < 1e-9
        and not set(c.experiments) <= set(TRUST_EXPERIMENTS)
    ]
    if not cells:
        return None
    return min(cells, key=lambda c: (-c.spec.steps, -c.n, c.spec.key(), c.key))


def _capped(planner: Planner, size: int) -> int:
    return min(size, planner.eval_n() or 10**9)
