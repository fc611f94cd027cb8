"""The RACL paper's experiments (Tables 1-5, Figure 3) as data.

Each :class:`Experiment` names models, trainings, datasets and what to evaluate, with the
settings of the paper's section 3; presets (:mod:`bench.plan.presets`) scale them. Where each
setting comes from, and the MNIST budgets we chose: docs/DECISIONS.md, "Experiments".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.datasets import dataset_info
from core.enums import Dataset, Training
from core.errors import UserError
from racl_search.variants import TABLE5_VARIANTS

NAS_MODELS = ("amoebanet", "nasnet", "darts", "pc_darts", "racl_published")
TABLE1_AT_MODELS = (
    "resnet18",
    "densenet121",
    "amoebanet",
    "nasnet",
    "darts",
    "pc_darts",
    "robnet_small",
    "robnet_medium",
    "racl_published",
)
TABLE1_NATURAL_MODELS = tuple(m for m in TABLE1_AT_MODELS if not m.startswith("robnet"))


@dataclass(frozen=True)
class AttackPlan:
    """One attack of an experiment: ``parse_attack`` text, step rule and budget.

    ``step``: ``None`` = the attack's default (PGD: 2/255 at 8/255, 20/255 at 0.3), ``"eps/10"``
    = a fraction of eps, ``"2/255"`` = absolute. ``eps``: ``None`` = the dataset's budget.
    """

    text: str
    step: str | None = None
    eps: str | None = None

    def spec(self, dataset: Dataset, eps: float | None = None) -> Any:
        """The ``AttackSpec`` on ``dataset`` (``eps`` overrides the dataset's budget)."""
        from bench.attacks import parse_attack, parse_eps

        budget = parse_eps(self.eps) if self.eps is not None else eps
        if budget is None:
            budget = dataset_info(dataset).eps
        step = None
        if self.step is not None and self.step.startswith("eps/"):
            step = budget / float(self.step[4:])
        elif self.step is not None:
            step = parse_eps(self.step)
        return parse_attack(self.text, eps=budget, step_size=step, dataset=dataset)


@dataclass(frozen=True)
class TransferPlan:
    """Black-box transfer from one source model (trained as ``source_training``)."""

    source: str
    source_training: Training
    attacks: tuple[AttackPlan, ...]


@dataclass(frozen=True)
class Experiment:
    """One part of a paper experiment: models x trainings x datasets and what to evaluate."""

    name: str
    part: str
    title: str
    models: tuple[str, ...]
    trainings: tuple[Training, ...]
    datasets: tuple[Dataset, ...] = (Dataset.CIFAR10,)
    clean: bool = True
    whitebox: tuple[AttackPlan, ...] = ()
    transfer: TransferPlan | None = None
    matrix: AttackPlan | None = None
    step_sweep: AttackPlan | None = None
    step_checkpoints: tuple[int, ...] = ()
    eps_sweeps: tuple[AttackPlan, ...] = ()
    needs_search: bool = False


FGSM, MIM = AttackPlan("fgsm"), AttackPlan("mim")
PGD20 = AttackPlan("pgd20")
PGD10_EPS10 = AttackPlan("pgd10", step="eps/10")
TRUST_ATTACK = AttackPlan("pgd10", step="eps/5", eps="0.5")  # large-eps trust check

EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment(
        "table1",
        "with_at",
        "Table 1 (left): white-box, PGD-AT",
        TABLE1_AT_MODELS,
        (Training.PGD_AT,),
        whitebox=(FGSM, MIM, PGD20),
    ),
    Experiment(
        "table1",
        "without_at",
        "Table 1 (right): white-box, natural training",
        TABLE1_NATURAL_MODELS,
        (Training.NATURAL,),
        whitebox=(FGSM, MIM, PGD10_EPS10),
    ),
    Experiment(
        "table2",
        "blackbox",
        "Table 2: transfer from VGG-19 onto PGD-AT models",
        NAS_MODELS,
        (Training.PGD_AT,),
        transfer=TransferPlan("vgg19", Training.NATURAL, (FGSM, MIM, PGD10_EPS10)),
    ),
    Experiment(
        "table3",
        "matrix",
        "Table 3: PGD-10 transfer matrix (rows = source)",
        NAS_MODELS,
        (Training.PGD_AT,),
        matrix=PGD10_EPS10,
    ),
    Experiment(
        "table4",
        "defenses",
        "Table 4: RACL with PGD-AT vs TRADES, PGD-20",
        ("racl_published",),
        (Training.PGD_AT, Training.TRADES),
        datasets=(Dataset.CIFAR10, Dataset.CIFAR100, Dataset.MNIST),
        whitebox=(PGD20,),
    ),
    Experiment(
        "table5",
        "ablation",
        "Table 5: searched ablation genotypes, PGD-AT",
        tuple(TABLE5_VARIANTS),
        (Training.PGD_AT,),
        whitebox=(FGSM, MIM, PGD10_EPS10),
        needs_search=True,
    ),
    Experiment(
        "fig3",
        "sweeps",
        "Figure 3: PGD iterations and eps sweeps (PGD, FGSM)",
        tuple(m for m in TABLE1_AT_MODELS if m != "robnet_medium"),
        (Training.PGD_AT,),
        clean=True,
        step_sweep=PGD20,
        step_checkpoints=(1, 2, 5, 10, 20, 50, 100),
        eps_sweeps=(PGD20, FGSM),
    ),
)
EXPERIMENT_NAMES = tuple(dict.fromkeys(e.name for e in EXPERIMENTS))


def get_experiments(names: list[str] | tuple[str, ...]) -> list[Experiment]:
    """Every part of the named experiments, in registry order; unknown names -> UserError."""
    unknown = [n for n in names if n not in EXPERIMENT_NAMES]
    if unknown:
        raise UserError(
            f"unknown experiment {unknown[0]!r}; choose from: {', '.join(EXPERIMENT_NAMES)}"
        )
    return [e for e in EXPERIMENTS if e.name in names]


def sweep_budgets(dataset: Dataset, count: int | None = None) -> tuple[float, ...]:
    """The eps-sweep budgets for ``dataset`` (the first ``count``-spread subset if given)."""
    budgets = dataset_info(dataset).eps_sweep
    if count is None or count >= len(budgets):
        return budgets
    step = (len(budgets) - 1) / max(count - 1, 1)
    return tuple(budgets[round(i * step)] for i in range(count))
