"""Presets: how the same experiments scale from seconds (``smoke``, for tests) through minutes on
a 2-core CPU (``demo``: real MNIST shipped offline, a scaled-down zoo, short PGD-AT) to the RACL
paper's settings (``paper``: CIFAR-10, 36 channels x 20 cells, 10k test images, a GPU job).

Demo budget (target <= 10 minutes on a 2-core CPU from a warm install, with adversarially
trained models the suite's own checks call robust): the cell networks have 8 channels x 4 cells
(normal, reduction, reduction, normal; fewer cells learn too little in one epoch); natural
training sees 4,000 MNIST images for one epoch, and PGD-AT and TRADES fine-tune those
checkpoints for one epoch over 2,000 images with 3 attack steps at eps 0.1, the budget of every
evaluation. White-box and transfer cells read 300 test images, the sweeps 200 (5 of the 7 eps
budgets, PGD checkpoints up to 20 steps); the trust checks' subsets are smaller (n_trust,
n_indicator, n_mono, n_gap). Attack steps run eager, channels_last (``--compile auto`` does not
repay a compile at these sizes). The figures behind these choices: docs/decisions/planner.md,
"The demo's robust models"; a run's own timings are in its ``summary_json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from bench.plan.experiments import EXPERIMENT_NAMES
from core.enums import Dataset, Training
from core.errors import UserError


@dataclass(frozen=True)
class PresetConfig:
    """How a preset scales the experiments.

    ``dataset``: every experiment runs on it (None = each experiment's paper datasets).
    ``models``: allowlist (None = all); ``transfer_source``: replaces Table 2's source.
    ``cell_overrides`` / ``width_overrides``: model constructor overrides for cell networks
    (``init_channels``, ``layers``) and ResNet/DenseNet/VGG (``width``). ``train``: TrainConfig
    fields replaced per training kind. ``n_eval`` test images (None = all), ``n_sweep`` for the
    sweeps, ``n_trust`` for the large-eps check; the trust checks' subsets: ``n_indicator``
    images per white-box cell for the attack-failure indicators, ``n_mono`` for the eps-check
    cells, ``n_gap`` for the AutoAttack gap check, with ``gap_targets`` target classes for its
    APGD-T (docs/decisions/trust.md).
    """

    name: str
    dataset: Dataset | None
    experiments: tuple[str, ...]
    n_eval: int | None
    n_sweep: int | None
    n_trust: int
    models: tuple[str, ...] | None = None
    transfer_source: str | None = None
    cell_overrides: dict[str, Any] = field(default_factory=dict)
    width_overrides: dict[str, Any] = field(default_factory=dict)
    model_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    train: dict[str, dict[str, Any]] = field(default_factory=dict)
    step_checkpoints: tuple[int, ...] | None = None
    eps_count: int | None = None
    batch_size: int = 128
    search_preset: str = "demo"
    recipes: bool = False
    # what `bench submit --run-autoattack` runs: the original standard AutoAttack, or for the
    # rehearsal one capped at two iterations per member (its entry is marked as no result)
    leaderboard_attack: str = "autoattack"
    # `--compile auto` compiles every architecture's attack steps on CUDA (the paper preset)
    compile_on_cuda: bool = False
    # the attack budget of every experiment (None: each dataset's, RACL 3.1); `--eps` replaces it
    eps: float | None = None
    # adversarial training (PGD-AT, TRADES) of a zoo model starts from the preset's natural
    # checkpoint of the same architecture (its hash is part of the key), not from scratch
    warm_start: bool = False

    def train_config(self, model: str, training: Training, dataset: Dataset):  # noqa: ANN201
        """``(TrainConfig, model overrides it needs, recipe name)`` of a checkpoint.

        With ``recipes`` (the paper preset): the model family's recipe (``bench.training.recipes``)
        with ``train``'s fields replaced. Without (smoke, demo): the recipe's adversarial budget
        (RACL 3.1, ``TrainConfig.paper``) with the short schedule of ``train`` - the scaling that
        docs/PROTOCOL.md tabulates field by field.
        """
        from bench.training.config import TrainConfig
        from bench.training.recipes import recipe_for

        changes = dict(self.train.get(training.value, {}))
        recipe = recipe_for(model, training, dataset)
        if self.recipes:
            return recipe.config(**changes), recipe.model_overrides(), recipe.name
        cfg = replace(TrainConfig.paper(training, dataset), **changes)
        return cfg, {}, f"{recipe.name} scaled by preset {self.name}"

    n_indicator: int = 32
    n_mono: int = 32
    n_gap: int = 128
    gap_targets: int = 9  # APGD-T's target classes in the gap check (standard AutoAttack: 9)

    def overrides_for(self, model: str) -> dict[str, Any]:
        """Constructor overrides for ``model`` under this preset (by the model's defaults)."""
        if model in self.model_overrides:
            return dict(self.model_overrides[model])
        from models import get_model_info

        defaults = get_model_info(model).defaults
        chosen = self.cell_overrides if "init_channels" in defaults else self.width_overrides
        return {k: v for k, v in chosen.items() if k in defaults}


# Short PGD-AT for the demo (docs/decisions/planner.md, "The demo's robust models"): one epoch
# at eps 0.1 with 3 attack steps of 2.5 eps / 3 (Madry et al. 2018's step rule), SGD lr 0.1
# (MNIST's default 0.01 leaves these few steps near chance), fine-tuning the natural checkpoint
# (``warm_start``): from scratch, one such epoch leaves the cell networks failing the AutoAttack
# gap check, from the natural weights it passes.
DEMO_EPS = 0.1
_SHORT_AT = {"attack_steps": 3, "lr": 0.1, "eps": DEMO_EPS, "attack_step_size": 2.5 * DEMO_EPS / 3}
# Rehearsal: one epoch over two batches of the largest recipe batch (128), held-out selection on
# 16 images when the recipe selects.
_REHEARSAL = {"epochs": 1, "n_train": 256, "n_holdout": 16, "select_steps": 1}
PRESETS: dict[str, PresetConfig] = {
    "smoke": PresetConfig(
        name="smoke",
        dataset=Dataset.MNIST,
        experiments=("table1", "table2", "table3", "fig3"),
        n_eval=64,
        n_sweep=32,
        n_trust=16,
        models=("darts", "pc_darts"),
        transfer_source="pc_darts",
        cell_overrides={"init_channels": 4, "layers": 3},
        width_overrides={"width": 4},
        train={
            "natural": {"epochs": 1, "n_train": 256, "batch_size": 64},
            "pgd_at": {"epochs": 1, "n_train": 256, "batch_size": 64, "attack_steps": 1},
            "trades": {"epochs": 1, "n_train": 256, "batch_size": 64, "attack_steps": 1},
        },
        step_checkpoints=(1, 2, 5, 10),
        eps_count=3,
        batch_size=64,
        search_preset="smoke",
        n_indicator=16,
        n_mono=16,
        n_gap=32,
        gap_targets=3,
    ),
    "demo": PresetConfig(
        name="demo",
        dataset=Dataset.MNIST,
        experiments=("table1", "table2", "table3", "table4", "fig3"),
        n_eval=300,
        n_sweep=200,  # the sweeps' survivors are attacked further at eps 0.1: fewer images
        n_trust=64,
        # RACL, its baseline PC-DARTS, a hand-designed network and the black-box source: with
        # robust models a fifth network costs about 3 of the 10 minutes (docs/decisions/planner.md)
        models=("pc_darts", "racl_published", "resnet18", "vgg19"),
        cell_overrides={"init_channels": 8, "layers": 4},
        width_overrides={"width": 8},
        train={
            "natural": {"epochs": 1, "n_train": 4000, "batch_size": 64, "lr": 0.1},
            "pgd_at": {"epochs": 1, "n_train": 2000, "batch_size": 64, **_SHORT_AT},
            "trades": {"epochs": 1, "n_train": 2000, "batch_size": 64, **_SHORT_AT},
        },
        step_checkpoints=(1, 2, 5, 10, 20),
        eps_count=5,
        batch_size=100,
        search_preset="demo",
        n_indicator=100,  # the indicators' attacks cost in proportion: docs/decisions/trust.md
        n_gap=48,  # APGD-CE + APGD-T run to the end on every survivor (about 85 % at eps 0.1)
        gap_targets=3,  # each target class is 100 model calls: see docs/decisions/trust.md
        eps=DEMO_EPS,
        warm_start=True,
    ),
    "paper": PresetConfig(
        name="paper",
        compile_on_cuda=True,
        dataset=None,
        experiments=EXPERIMENT_NAMES,
        n_eval=None,
        n_sweep=None,
        n_trust=500,
        batch_size=256,
        search_preset="paper",
        recipes=True,
        n_indicator=100,
        n_mono=500,
        n_gap=1000,
    ),
    # The paper preset at full model size and recipe batch sizes on a couple of batches: every
    # experiment, training kind and evaluation kind runs (shape, memory and code-path errors show
    # in minutes on a CPU); the numbers mean nothing. See docs/PROTOCOL.md, "Rehearsal".
    "rehearsal": PresetConfig(
        name="rehearsal",
        dataset=None,
        experiments=EXPERIMENT_NAMES,
        n_eval=32,
        n_sweep=16,
        n_trust=16,
        train={k: dict(_REHEARSAL) for k in ("natural", "pgd_at", "trades")},
        step_checkpoints=(1, 2),
        eps_count=2,
        batch_size=32,
        search_preset="smoke",
        recipes=True,
        n_indicator=8,  # full-size models on a CPU: the trust checks' subsets stay small
        n_mono=8,
        n_gap=16,
        gap_targets=1,
        leaderboard_attack="autoattack(iters=2)",
    ),
}


def get_preset(name: str) -> PresetConfig:
    """The preset called ``name``; unknown -> UserError."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
