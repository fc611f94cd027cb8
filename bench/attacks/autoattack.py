"""AutoAttack: Croce and Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020.

The ORIGINAL standard version (APGD-CE, APGD-T, FAB-T, Square with 5000 queries), run through the
``pyautoattack`` package (the original code, MIT). ``version='custom'`` with
``attacks='apgd-ce,apgd-t'`` runs only the listed members, with the standard version's settings
(one APGD restart, 9 target classes or ``targets=N``, 5000 Square queries): the trust checks'
gap attack. Its
progress messages go to the ``auto-attack`` logger (and any stray prints to this module's
logger), never to stdout.

``iters=N`` caps every member's iterations (APGD and FAB ``n_iter``, Square ``n_queries``) at N:
the rehearsal's way to run the whole AutoAttack code path at full model size in seconds. A
capped run is weaker than AutoAttack, carries ``iters`` in its key and label, and ``bench submit``
accepts it only for the rehearsal preset, marked as no result (bench.report.submission).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from bench.attacks.base import Attack, AttackText, frozen_eval, project
from bench.attacks.kwarg_types import ArgType, check_kwargs
from bench.inputs import check_seed
from bench.results.names import members_label
from core import fold
from core.enums import Norm
from core.errors import UserError

if TYPE_CHECKING:
    from bench.attacks.spec import AttackSpec

log = logging.getLogger(__name__)

# pyautoattack's AutoAttack.__init__ annotates version as Literal['custom', 'plus', 'rand',
# 'standard'] and seed as int; attacks is our comma-separated text, targets 1-9 (checked below)
AUTOATTACK_TYPES = {
    "version": ArgType("str", ("standard", "plus", "rand", "custom")),
    "seed": ArgType("int"),
    "attacks": ArgType("str"),
    "targets": ArgType("int"),
    "iters": ArgType("int"),
}


class AutoAttack(Attack):
    """The original AutoAttack (``version`` from params, ``standard`` by default; seed 0)."""

    name = "autoattack"
    title = "AutoAttack"
    default_steps = 100
    norms = (Norm.LINF, Norm.L2)
    key_fields = ("eps", "norm")
    stepwise = False

    @classmethod
    def parse(cls, text: AttackText) -> dict[str, Any]:
        """``autoattack(norm=..., version=..., seed=...)``; steps and step size do not apply."""
        params = text.params
        norm = Norm.parse(params.pop("norm", "Linf"))
        allowed = {"version", "seed", "attacks", "targets", "iters"}
        if set(params) - allowed:
            raise UserError(f"autoattack accepts only: norm, {', '.join(sorted(allowed))}")
        check_kwargs("autoattack", params, AUTOATTACK_TYPES)
        if "seed" in params:
            check_seed(params["seed"], "autoattack: seed")
        if params.get("iters", 1) < 1:  # check_kwargs has made it an int
            raise UserError(f"autoattack: iters must be a whole number >= 1, got {params['iters']}")
        params.setdefault("version", "standard")
        params.setdefault("seed", 0)
        if ("attacks" in params) != (params["version"] == "custom"):
            raise UserError("autoattack: version='custom' goes with attacks='apgd-ce,apgd-t,...'")
        if "attacks" in params:
            params["attacks"] = _members(params["attacks"])
        if "targets" in params and (not _whole(params["targets"]) or "attacks" not in params):
            raise UserError(
                "autoattack: targets=N (1-9 target classes of APGD-T) needs version='custom'"
            )
        return {
            "name": cls.name,
            "eps": text.eps,
            "steps": cls.default_steps,
            "step_size": None,
            "norm": norm,
            "params": tuple(params.items()),
        }

    @classmethod
    def label(cls, spec: AttackSpec) -> str:
        """``AutoAttack``, its members for a custom version, or the gap check's label."""
        return members_label(spec.key()) + ("-L2" if spec.norm is Norm.L2 else "")

    @property
    def folds(self) -> bool:
        """Whether AutoAttack's model calls go through the batch-norm-folded copy: for a
        ``version='custom'`` member subset (the gap check's APGD-CE + APGD-T) unless ``fold``
        is off; never for the standard, plus and rand versions, which run the original code on
        the model itself, as RobustBench's ``benchmark()`` does, so a leaderboard entry's images
        are the ones its re-run makes (docs/decisions/speed.md, "AutoAttack and the fold")."""
        return self.fold and dict(self.spec.params).get("version") == "custom"

    def frozen(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """:func:`frozen_eval` with this attack's own fold rule (:attr:`folds`)."""
        return frozen_eval(model, self.converts_model, self.folds)

    def iterate(
        self, model: nn.Module, x: Tensor, y: Tensor, init_delta: Tensor | None
    ) -> Iterator[Tensor]:
        from pyautoattack import AutoAttack as Original

        params = dict(self.spec.params)
        version = str(params.get("version", "standard"))
        members = str(params["attacks"]).split(",") if "attacks" in params else None
        net = _FoldedView(model, self.channels_last) if self.folds else model
        runner = Original(
            net,
            norm="Linf" if self.spec.norm is Norm.LINF else "L2",
            eps=self.spec.eps,
            version=version,
            seed=int(params.get("seed", 0)),
            device=x.device,
            attacks=members,
        )
        if members is not None:
            _standard_settings(runner, int(params.get("targets", 9)))
        if "iters" in params:
            _cap(runner, int(params["iters"]))
        stray = io.StringIO()
        with contextlib.redirect_stdout(stray), self._autocast(x.device):
            result = runner.run_standard_evaluation(x, y, batch_size=max(int(x.shape[0]), 1))
        if stray.getvalue().strip():
            log.debug("autoattack output:\n%s", stray.getvalue())
        x_adv = result[0] if isinstance(result, tuple) else result
        yield project(x_adv.float().to(x.device), x, self.spec.eps, self.spec.norm)


class _FoldedView(nn.Module):
    """The model as a folding AutoAttack calls it: through :func:`core.fold.call` (the folded
    copy where there is one, the model's own forward hooks, the effort counter's among them, run
    on its output), the images turned channels_last where the attack runs so."""

    def __init__(self, model: nn.Module, channels_last: bool) -> None:
        super().__init__()
        self.model = model
        self.channels_last = channels_last

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return fold.call(self.model, x, self.channels_last)


def _cap(runner: Any, iters: int) -> None:
    """Every member's iterations (APGD, APGD-T, FAB ``n_iter``; Square ``n_queries``) at most
    ``iters`` (the rehearsal's capped AutoAttack)."""
    for member in (runner.apgd, runner.apgd_targeted, runner.fab):
        member.n_iter = min(int(member.n_iter), iters)
    runner.square.n_queries = min(int(runner.square.n_queries), iters)


MEMBERS = ("apgd-ce", "apgd-t", "fab-t", "square", "apgd-dlr", "fab")


def _members(text: object) -> str:
    """The custom version's attacks as canonical text (``apgd-ce,apgd-t``); others: UserError."""
    names = [part.strip().lower() for part in str(text).split(",") if part.strip()]
    unknown = [n for n in names if n not in MEMBERS]
    if unknown or not names:
        raise UserError(f"autoattack attacks must be among {', '.join(MEMBERS)}, got {text!r}")
    return ",".join(names)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 9


def _standard_settings(runner: Any, targets: int = 9) -> None:
    """The standard version's settings on a custom run (pyautoattack's ``_set_version``), with
    ``targets`` target classes for APGD-T (standard: 9)."""
    runner.apgd.n_restarts = 1
    runner.apgd_targeted.n_target_classes = targets
    runner.apgd_targeted.n_restarts = 1
    runner.fab.n_restarts = 1
    runner.fab.n_target_classes = 9
    runner.square.n_queries = 5000
