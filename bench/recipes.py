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
ADVRUSH = "AdvRush adv_train.py (Mok et al., ICCV 2021)"
TRADES_SRC = "TRADES train_trades_cifar10.py (Zhang et al., ICML 2019)"
RICE = "Rice et al., ICML 2020, 'Overfitting in adversarially robust deep learning', 3"
MADRY = "Madry et al., ICLR 2018, MNIST challenge config (mnist_challenge/config.json)"
RACL31 = "RACL paper 3.1"


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
        from bench.training import TrainConfig

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
        "epochs": Setting(600, DARTS),
        "batch_size": Setting(96, DARTS),
        "lr": Setting(0.025, DARTS),
        "schedule": Setting("cosine", DARTS + " (per epoch there, per iteration here)"),
        "momentum": Setting(0.9, DARTS),
        "weight_decay": Setting(3e-4, DARTS),
        "grad_clip": Setting(5.0, DARTS),
        "cutout": Setting(16, DARTS + " run with --cutout (length 16)"),
        "auxiliary_weight": Setting(0.4, DARTS),
        "drop_path_prob": Setting(
            0.2, DARTS + "; PC-DARTS uses 0.3: one value for every cell, DARTS's", CHOSEN
        ),
        "augment": Setting(True, DARTS + " (random crop 32 pad 4, horizontal flip)"),
    }


def _adversarial_cell(ds: Dataset) -> dict[str, Setting]:
    return {
        "epochs": Setting(200, ADVRUSH + ": 200 epochs of PGD-7 (RobNet: 150 + 20 warm-up)"),
        "batch_size": Setting(128, "TrainConfig default; not checked against AdvRush", CHOSEN),
        "lr": Setting(0.1, "the AT literature's SGD rate (Madry, Rice); not checked", CHOSEN),
        "schedule": Setting("cosine", "as the natural DARTS recipe", CHOSEN),
        "momentum": Setting(0.9, DARTS),
        "weight_decay": Setting(5e-4, RICE, CHOSEN),
        "grad_clip": Setting(5.0, DARTS),
        "auxiliary_weight": Setting(0.4, DARTS + " (no auxiliary head under AT: unused)"),
        "augment": Setting(True, "random crop 32 pad 4, horizontal flip (He et al. 2016)"),
        **_budget(ds, ADVRUSH + "; RACL 3.1"),
    }


def _adversarial_cnn(ds: Dataset) -> dict[str, Setting]:
    return {
        "epochs": Setting(200, RICE),
        "batch_size": Setting(128, RICE),
        "lr": Setting(0.1, RICE),
        "schedule": Setting("step", RICE + " (piecewise: x0.1 at 100 and 150)"),
        "lr_milestones": Setting((100, 150), RICE),
        "momentum": Setting(0.9, RICE),
        "weight_decay": Setting(5e-4, RICE),
        "grad_clip": Setting(0.0, RICE + " (no clipping)"),
        "augment": Setting(True, RICE),
        "n_holdout": Setting(1000, RICE + " (1,000 training images held out for validation)"),
        "keep": Setting("best", RICE + " (early stopping at the best robust epoch)"),
        "select_steps": Setting(10, RICE + " (PGD-10 on the held-out images)"),
        **_budget(ds, RACL31 + " (Rice et al. use PGD-10)"),
    }


def _trades(base: dict[str, Setting]) -> dict[str, Setting]:
    return {
        **base,
        "epochs": Setting(76, TRADES_SRC + " (--epochs 76); not checked against the source"),
        "schedule": Setting("step", TRADES_SRC + " (x0.1 at epoch 75)"),
        "lr_milestones": Setting((75,), TRADES_SRC),
        "weight_decay": Setting(2e-4, TRADES_SRC + "; not checked against the source"),
        "trades_beta": Setting(6.0, TRADES_SRC),
    }


def _mnist(training: Training) -> dict[str, Setting]:
    out = {
        "epochs": Setting(84, MADRY + ": 100,000 steps of batch 50 = 83.3 epochs, rounded up"),
        "batch_size": Setting(50, MADRY),
        "optimizer": Setting("adam", MADRY),
        "lr": Setting(1e-4, MADRY),
        "schedule": Setting("constant", MADRY),
        "weight_decay": Setting(0.0, MADRY),
        "grad_clip": Setting(0.0, MADRY + " (no clipping)"),
        "augment": Setting(False, MADRY + " (no augmentation)"),
    }
    if training is not Training.NATURAL:
        out.update(_budget(Dataset.MNIST))
    if training is Training.TRADES:
        out["trades_beta"] = Setting(6.0, TRADES_SRC)
    return out


def _recipe(family: str, training: Training, ds: Dataset) -> Recipe:
    name = f"{family}-{training.value}-{ds.value}"
    if ds in (Dataset.MNIST, Dataset.FASHION_MNIST):
        note = "Madry's MNIST schedule for every model; the budget is RACL 3.1's"
        return Recipe(name, family, training, ds, _mnist(training), note=note)
    if family == "cell" and training is Training.NATURAL:
        aux = {"auxiliary": Setting(True, DARTS + " run with --auxiliary")}
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
