"""What a ``bench run`` command line asks for, checked before any work: its dataset, seeds,
attacks, models and user model, and the plan they make.

The preset is looked up once per command (:func:`bench.plan.presets.get_preset`) and passed in;
the dataset a run evaluates on when none is named is decided in one place (:func:`run_dataset`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench.inputs import check_output_dir, check_seed
from core.datasets import dataset_info
from core.enums import Dataset, Training
from core.errors import UserError
from genotypes.names import zoo_name

if TYPE_CHECKING:
    from bench.plan.presets import PresetConfig
    from bench.plan.units import Plan
    from bench.results.store import ResultStore
    from bench.training.user_model import UserModel


def split_list(text: str | None) -> list[str] | None:
    """Split ``a,b,torchattacks:X(k=1,j=2)`` on top-level commas (not inside brackets)."""
    if text is None:
        return None
    items, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    items.append(cur.strip())
    return [i for i in items if i]


def run_dataset(dataset: str | None, preset: PresetConfig) -> Dataset:
    """The dataset of ad-hoc work: ``--dataset``, else the preset's, else CIFAR-10."""
    if dataset:
        return Dataset.parse(dataset)
    return preset.dataset if preset.dataset is not None else Dataset.CIFAR10


def parse_seeds(seed: int | None, seeds: str | None) -> list[int]:
    """The run's global seeds: ``--seeds a,b,c`` (distinct, >= 0) or ``[--seed]`` (default 0)."""
    if seeds is None:
        return [0 if seed is None else seed]
    if seed is not None:
        raise UserError("--seed and --seeds exclude each other: give the seeds in --seeds")
    try:
        values = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--seeds wants comma-separated integers, got {seeds!r}") from None
    if not values or len(set(values)) != len(values):
        raise UserError(f"--seeds wants distinct integers >= 0, got {seeds!r}")
    for value in values:
        check_seed(value, "--seeds")
    return values


def check_run_args(args: argparse.Namespace, preset: PresetConfig) -> None:
    """``--attacks`` and ``--n`` checked before the store is opened or a cell runs.

    Each attack is parsed once here; the planner parses it again at each experiment's budget,
    and the checks (names, keyword arguments and their types) do not depend on the budget. The
    planner checks ``--n`` again against each experiment's dataset.
    """
    from bench.attacks import parse_attack

    info = dataset_info(run_dataset(args.dataset, preset))
    if args.n is not None and args.n > info.test_size:
        raise UserError(f"--n {args.n} is above the {info.name} test set size ({info.test_size})")
    for text in split_list(args.attacks) or []:
        parse_attack(text, eps=info.budget, dataset=info.dataset)
    if args.checkpoint_dir:
        check_output_dir(args.checkpoint_dir, "--checkpoint-dir")


def user_model(args: argparse.Namespace, preset: PresetConfig) -> UserModel | None:
    """The ``--model-file`` / ``--model`` factory with its weights, checked (None without)."""
    text = args.model_file or args.model
    if text is None:
        if args.weights:
            raise UserError("--weights goes with --model-file or --model")
        return None
    if args.models or args.experiment:
        raise UserError("--model-file/--model runs ad-hoc attacks: drop --models/--experiment")
    from bench.training.user_model import prepare_user_model

    user, notes = prepare_user_model(
        text,
        is_file=args.model_file is not None,
        weights=args.weights,
        dataset=run_dataset(args.dataset, preset).value,
    )
    for note in notes:
        print(f"bench: note: {note}", file=sys.stderr)
    return user


def checkpoint_dir(args: argparse.Namespace) -> Path:
    """``--checkpoint-dir``, else ``checkpoints/`` beside the store."""
    if args.checkpoint_dir:
        return Path(args.checkpoint_dir)
    return Path(args.store).parent / "checkpoints"


def build_plan(
    args: argparse.Namespace,
    store: ResultStore,
    preset: PresetConfig,
    user: UserModel | None = None,
) -> Plan:
    """The plan of ``args`` under ``preset`` against ``store`` (its cached cells marked)."""
    from bench.attacks import parse_eps
    from bench.plan.capacity_match import parse_match
    from bench.plan.experiments import get_experiments
    from bench.plan.model_names import check_plan_models
    from bench.plan.planner import plan

    models, attacks = split_list(args.models), split_list(args.attacks)
    check_plan_models(models)
    user = user or user_model(args, preset)
    if user is not None:
        models = [user.name]
    names = split_list(args.experiment)
    if names and attacks:
        raise UserError("--attacks makes an ad-hoc experiment; drop --experiment or --attacks")
    if not names and not attacks and not models:
        names = list(preset.experiments)
    if not names and not attacks:
        attacks = ["fgsm", "mim", "pgd20"]
    experiments = get_experiments(names or [])
    # ad-hoc attacks need a dataset; experiments bring their own unless --dataset narrows them
    dataset = run_dataset(args.dataset, preset) if args.dataset or attacks else None
    eps = parse_eps(args.eps) if args.eps is not None else None
    if eps is not None and eps <= 0:
        raise UserError("--eps must be > 0")
    result = plan(
        experiments,
        preset,
        models,
        attacks,
        dataset,
        store,
        eps=eps,
        n=args.n,
        seed=0 if args.seed is None else args.seed,
        training=Training.parse(args.training),
        checkpoint_dir=checkpoint_dir(args),
        user_model=user,
        match=parse_match(args.match) if getattr(args, "match", None) else None,
    )
    if not result.cells:
        raise UserError("nothing to run: no experiment model matches --models")
    if models:
        planned = {c.target.model for c in result.cells}
        unused = [m for m in models if m not in planned and zoo_name(m) not in planned]
        if unused:
            raise UserError(f"model {unused[0]} is not in the chosen experiments")
    return result


def plan_for_run(
    args: argparse.Namespace,
    store: ResultStore,
    preset: PresetConfig,
    user: UserModel | None = None,
) -> Plan:
    """The plan, with the cells of ``--fresh`` deleted from the store (not on a dry run)."""
    result = build_plan(args, store, preset, user)
    if args.fresh and not args.dry_run:
        store.delete(c.key for c in result.cells)
        for c in result.cells:
            c.cached = False
    return result
