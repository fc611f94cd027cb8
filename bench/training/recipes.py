"""Training recipes as data: one named recipe per (model family, training kind, dataset), every
setting with its source and whether the source states it or we chose it.

Families: ``cell`` (DARTS-style genotype networks: DARTS, PC-DARTS, NASNet, AmoebaNet, RobNet,
RACL, Table 5) and ``cnn`` (ResNet-18, DenseNet-121, VGG). The paper preset trains each checkpoint
by :func:`recipe_for`; docs/PROTOCOL.md is generated from this table (``bench recipes --markdown``)
and says how smoke and demo scale it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.enums import Dataset, Training
from core.errors import UserError

RACL = "racl"  # stated by the RACL paper
PUBLISHED = "published"  # stated by the public code or paper named in the source
CHOSEN = "chosen"  # our choice (the source says why)

DARTS = "DARTS cnn/train.py (Liu et al., ICLR 2019)"
# Files read (repository, path, stored commit) and the lines cited: docs/PROTOCOL.md, "Sources".
PCDARTS = "PC-DARTS train.py"  # yuhuixu1993/PC-DARTS @0bf477a, derived from DARTS's
ADVRUSH = "AdvRush advrush/adv_train.py"  # nutellamok/advrush @e6fcb7b (Mok et al., ICCV 2021)
WSR = "Wsr-NAS retrain/train_adv_mgpu_cifar.py"  # zhicheng2T0/Wsr-NAS @885af4c (RACL's group)
TRADES_SRC = "TRADES train_trades_cifar10.py"  # yaodongyu/TRADES @e20f7b9 (Zhang et al., ICML 2019)
RICE = "Rice et al. train_cifar.py"  # locuslab/robust_overfitting @263b826 (ICML 2020)
RICE_PAPER = "Rice et al., ICML 2020, 'Overfitting in adversarially robust deep learning', 3"
MADRY = "Madry et al. mnist_challenge"  # MadryLab/mnist_challenge config.json, train.py
ROBNET = "RobNet experiments/RobNet_large_cifar10/config.py"  # gmh14/RobNets @195a41f
RACL31 = "RACL paper 3.1"
NOT_CHECKED = "not checked against the source (not in the index searched)"


def at(source: str, *lines: int) -> str:
    """``source`` with the line numbers it is read at (``file:12,34``)."""
    return f"{source}:{','.join(str(n) for n in lines)}"


def _darts(value_line: int, note: str = "") -> str:
    """DARTS's file (not checked) and the PC-DARTS line where the same value stands."""
    return f"{DARTS}, {NOT_CHECKED}; same in {at(PCDARTS, value_line)}{note}"


@dataclass(frozen=True)
class Setting:
    """One hyperparameter: its value, where it comes from, and who states it."""

    value: Any
    source: str
    origin: str = PUBLISHED


@dataclass(frozen=True)
class Recipe:
    """A training protocol: TrainConfig fields and model constructor overrides, each sourced."""

    name: str
    family: str
    training: Training
    dataset: Dataset
    settings: dict[str, Setting]
    model: dict[str, Setting] = field(default_factory=dict)
    note: str = ""

    def config(self, **overrides: Any):  # noqa: ANN201 - TrainConfig (lazy import)
        """The TrainConfig of this recipe, ``overrides`` replacing fields."""
        from bench.training.config import TrainConfig

        values = {k: s.value for k, s in self.settings.items()}
        return TrainConfig(training=self.training, **{**values, **overrides})

    def model_overrides(self) -> dict[str, Any]:
        """Model constructor overrides the recipe needs (the auxiliary head)."""
        return {k: s.value for k, s in self.model.items()}


def _budget(dataset: Dataset, steps_source: str = RACL31) -> dict[str, Setting]:
    """The paper's training adversary for a dataset (RACL 3.1)."""
    if dataset in (Dataset.MNIST, Dataset.FASHION_MNIST):
        return {
            "eps": Setting(76.5 / 255, RACL31, RACL),
            "attack_step_size": Setting(20 / 255, RACL31, RACL),
            "attack_steps": Setting(7, "RACL 3.1 states 7 steps for CIFAR; used for MNIST", CHOSEN),
        }
    return {
        "eps": Setting(8 / 255, RACL31, RACL),
        "attack_step_size": Setting(2 / 255, RACL31, RACL),
        "attack_steps": Setting(7, steps_source, RACL),
    }


def _darts_natural() -> dict[str, Setting]:
    return {
        "epochs": Setting(600, _darts(29)),
        "batch_size": Setting(96, _darts(23)),
        "lr": Setting(0.025, _darts(24)),
        "schedule": Setting("cosine", _darts(103, " (per epoch there, per iteration here)")),
        "momentum": Setting(0.9, _darts(25)),
        "weight_decay": Setting(3e-4, _darts(26)),
        "grad_clip": Setting(5.0, _darts(41)),
        "cutout": Setting(16, _darts(36, " (run with --cutout)")),
        "auxiliary_weight": Setting(0.4, _darts(34)),
        "drop_path_prob": Setting(
            0.2,
            f"DARTS's 0.2 as issue 11 quotes it, {NOT_CHECKED}; {at(PCDARTS, 37)} has 0.3, "
            f"ramped linearly ({at(PCDARTS, 108)}): one value for every cell, DARTS's",
            CHOSEN,
        ),
        "augment": Setting(
            True, DARTS + " (random crop 32 pad 4, horizontal flip); " + NOT_CHECKED
        ),
    }


def _adversarial_cell(ds: Dataset) -> dict[str, Setting]:
    same = f"; the same default in {WSR}"
    return {
        "epochs": Setting(
            200, at(ADVRUSH, 28) + f" ({at(WSR, 33)}: 201; {at(ROBNET, 28, 30)}: 150 + 20 warm-up)"
        ),
        "batch_size": Setting(64, at(ADVRUSH, 22) + same + ":27"),
        "lr": Setting(0.1, at(ADVRUSH, 23) + same + ":28"),
        "schedule": Setting("step", at(ADVRUSH, 206, 208) + " (x0.1 from epoch 99, 0-based)"),
        "lr_milestones": Setting((99, 149), at(ADVRUSH, 206, 208)),
        "momentum": Setting(0.9, at(ADVRUSH, 24) + same + ":29"),
        "weight_decay": Setting(1e-4, at(ADVRUSH, 25) + same + ":30"),
        "grad_clip": Setting(5.0, at(ADVRUSH, 45, 163)),
        "drop_path_prob": Setting(0.0, at(ADVRUSH, 41)),
        "auxiliary_weight": Setting(0.4, DARTS + " (no auxiliary head under AT: unused)"),
        "augment": Setting(True, "random crop 32 pad 4, horizontal flip (He et al. 2016)", CHOSEN),
        **_budget(ds, at(ADVRUSH, 30) + "; RACL 3.1"),
    }


def _adversarial_cnn(ds: Dataset) -> dict[str, Setting]:
    return {
        "epochs": Setting(200, at(RICE, 133)),
        "batch_size": Setting(128, at(RICE, 131)),
        "lr": Setting(0.1, at(RICE, 135)),
        "schedule": Setting("step", at(RICE, 134, 248) + " (piecewise: x0.1 at 100 and 150)"),
        "lr_milestones": Setting((100, 150), at(RICE, 250, 252)),
        "momentum": Setting(0.9, at(RICE, 230)),
        "weight_decay": Setting(5e-4, at(RICE, 230)),
        "grad_clip": Setting(0.0, RICE + " (no clipping in the file)"),
        "augment": Setting(True, at(RICE, 183, 197) + " (crop 32 after 4-pixel padding, flip)"),
        "n_holdout": Setting(
            1000,
            RICE_PAPER + f" (1,000 held out; {at(RICE, 186, 188)} loads the split that "
            f"generate_validation.py writes, {NOT_CHECKED})",
        ),
        "keep": Setting("best", RICE_PAPER + " (early stopping at the best robust epoch)"),
        "select_steps": Setting(10, at(RICE, 140) + " (PGD-10, also on the held-out images)"),
        **_budget(ds, RACL31 + f" ({at(RICE, 140)}: PGD-10)"),
    }


def _trades(base: dict[str, Setting]) -> dict[str, Setting]:
    return {
        **base,
        "epochs": Setting(76, at(TRADES_SRC, 20)),
        "batch_size": Setting(128, at(TRADES_SRC, 16)),
        "lr": Setting(0.1, at(TRADES_SRC, 24)),
        "momentum": Setting(0.9, at(TRADES_SRC, 26)),
        "schedule": Setting("step", at(TRADES_SRC, 140, 155) + " (x0.1 from 1-based epoch 75)"),
        "lr_milestones": Setting((74,), at(TRADES_SRC, 140, 155) + " (0-based 74)"),
        "weight_decay": Setting(2e-4, at(TRADES_SRC, 22)),
        "trades_beta": Setting(6.0, at(TRADES_SRC, 36)),
    }


def _mnist(training: Training) -> dict[str, Setting]:
    steps = at(MADRY + " config.json", 7, 11)
    out = {
        "epochs": Setting(84, steps + ": 100,000 steps of batch 50 = 83.3 epochs, rounded up"),
        "batch_size": Setting(50, at(MADRY + " config.json", 11)),
        "optimizer": Setting("adam", at(MADRY + " train.py", 39)),
        "lr": Setting(1e-4, at(MADRY + " train.py", 39)),
        "schedule": Setting("constant", at(MADRY + " train.py", 39) + " (no schedule)"),
        "weight_decay": Setting(0.0, MADRY + " train.py (none)"),
        "grad_clip": Setting(0.0, MADRY + " train.py (no clipping)"),
        "augment": Setting(False, MADRY + " train.py (no augmentation)"),
    }
    if training is not Training.NATURAL:
        out.update(_budget(Dataset.MNIST))
    if training is Training.TRADES:
        out["trades_beta"] = Setting(6.0, at(TRADES_SRC, 36))
    return out


def _recipe(family: str, training: Training, ds: Dataset) -> Recipe:
    name = f"{family}-{training.value}-{ds.value}"
    if ds in (Dataset.MNIST, Dataset.FASHION_MNIST):
        note = "Madry's MNIST schedule for every model; the budget is RACL 3.1's"
        return Recipe(name, family, training, ds, _mnist(training), note=note)
    if family == "cell" and training is Training.NATURAL:
        aux = {"auxiliary": Setting(True, _darts(33, " (run with --auxiliary)"))}
        note = "DARTS's 600-epoch evaluation protocol (RACL Table 1 without AT)"
        return Recipe(name, family, training, ds, {**_darts_natural()}, aux, note=note)
    base = _adversarial_cell(ds) if family == "cell" else _adversarial_cnn(ds)
    if family == "cnn" and training is Training.NATURAL:
        settings = {
            k: Setting(
                v.value, v.source + "; their PGD-AT schedule, here without the adversary", CHOSEN
            )
            for k, v in base.items()
            if k not in ("eps", "attack_step_size", "attack_steps")
        }
        return Recipe(name, family, training, ds, settings, note="Rice et al.'s schedule")
    if training is Training.TRADES:
        return Recipe(name, family, training, ds, _trades(base), note="TRADES's schedule")
    return Recipe(name, family, training, ds, base)


FAMILIES = ("cell", "cnn")
RECIPES: dict[str, Recipe] = {
    r.name: r for r in (_recipe(f, t, d) for f in FAMILIES for t in Training for d in Dataset)
}


def family_of(model: str) -> str:
    """``cell`` for genotype networks (those with ``init_channels``), else ``cnn``."""
    from models import ModelError, get_model_info

    try:
        defaults = get_model_info(model).defaults
    except ModelError:
        return "cell"  # Table 5 models not yet searched are cell networks
    return "cell" if "init_channels" in defaults else "cnn"


def recipe_for(model: str, training: str | Training, dataset: str | Dataset) -> Recipe:
    """The recipe the paper preset trains ``model`` by."""
    return RECIPES[
        f"{family_of(model)}-{Training.parse(training).value}-{Dataset.parse(dataset).value}"
    ]


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; unknown -> UserError."""
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r}; see `bench recipes` for the names")
    return RECIPES[name]


def describe(recipe: Recipe, changes: dict[str, Any] | None = None) -> list[str]:
    """Lines that show a recipe: each setting with its origin and source; ``changes`` (values
    given on the command line) marked as such."""
    changes = changes or {}
    lines = [
        f"recipe {recipe.name} ({recipe.note or recipe.family})"
        if recipe.note
        else f"recipe {recipe.name}"
    ]
    for key, s in {**recipe.settings, **recipe.model}.items():
        if key in changes:
            lines.append(f"  {key} = {changes[key]!r}  [given; recipe: {s.value!r}]")
        else:
            lines.append(f"  {key} = {s.value!r}  [{s.origin}: {s.source}]")
    for key in sorted(set(changes) - set(recipe.settings) - set(recipe.model)):
        lines.append(f"  {key} = {changes[key]!r}  [given]")
    return lines
