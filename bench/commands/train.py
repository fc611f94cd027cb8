"""``bench train``: train one zoo model (natural, PGD-AT or TRADES) into the checkpoint cache.

``--model-file file.py:build`` (or ``--model package.module:build``) trains a user's own model
instead, with the same recipes; ``bench run --model-file ... --weights <checkpoint>`` then
evaluates it.

Under ``torchrun`` the same command trains with DistributedDataParallel: ``--batch-size`` is the
global batch (each of the W processes takes batch/W images per step, so the learning-rate
schedule is the one-process schedule); rank 0 writes the checkpoint and prints.
"""

from __future__ import annotations

import argparse
import ast
import sys

from bench.inputs import (
    MAX_BATCH,
    MAX_EPOCHS,
    MAX_IMAGES,
    MAX_STEPS,
    MAX_WIDTH,
    count_arg,
    minutes_arg,
    positive_float_arg,
    seed_arg,
)
from core.enums import Dataset, Device, Training


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a zoo model once and cache its checkpoint by config hash",
        description="Train MODEL on DATASET (paper adversarial budgets by default) and print "
        "the checkpoint path and config hash. A configuration already trained is loaded instead.",
    )
    p.add_argument("model_name", nargs="?", metavar="model", help="zoo model name (`bench zoo`)")
    own = p.add_mutually_exclusive_group()
    own.add_argument(
        "--model-file",
        metavar="FILE.py:FUNC",
        help="your own model's factory (runs the file's code: trust it)",
    )
    own.add_argument(
        "--model",
        metavar="PACKAGE.MODULE:FUNC",
        help="an importable factory (runs that module's code: trust it)",
    )
    p.add_argument("--recipe", help="train by a named recipe (see `bench recipes`); the options "
                   "given replace its settings")  # fmt: skip
    p.add_argument("--dataset", choices=Dataset.values(), help="default: the recipe's, or cifar10")
    p.add_argument("--training", choices=Training.values(), help="default: the recipe's, or pgd_at")
    p.add_argument("--epochs", type=count_arg(1, MAX_EPOCHS), help="default: the recipe's, or 1")
    p.add_argument("--batch-size", type=count_arg(1, MAX_BATCH),
                   help="global batch (split over the processes under torchrun); default: the "
                   "recipe's, or 128")  # fmt: skip
    p.add_argument(
        "--lr", type=positive_float_arg, help="learning rate (default: the paper setting)"
    )
    p.add_argument(
        "--n-train", type=count_arg(1, MAX_IMAGES), help="first N training images (default: all)"
    )
    p.add_argument("--eps", help="training budget, e.g. 8/255 (default: the paper's)")
    p.add_argument(
        "--attack-steps", type=count_arg(1, MAX_STEPS), help="adversary steps (default 7)"
    )
    p.add_argument("--attack-step-size", help="adversary step, e.g. 2/255")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--no-augment", action="store_true", help="no crop/flip augmentation")
    p.add_argument("--width", type=count_arg(1, MAX_WIDTH), help="shortcut for --override width=N")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="model override, e.g. layers=8 (repeatable)")  # fmt: skip
    p.add_argument("--checkpoint-dir", default="checkpoints")
    p.add_argument("--save-every-min", type=minutes_arg, default=10.0, metavar="M",
                   help="also save the training state within an epoch every M minutes "
                   "(default 10; 0: after every batch)")  # fmt: skip
    p.add_argument("--data-dir", help="dataset folder (default $RACL_BENCH_DATA or ./data)")
    p.add_argument("--device", default="auto", choices=Device.values())
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                   help="torch.compile the training steps (auto: on CUDA only; an execution "
                   "detail, not in the config hash)")  # fmt: skip
    p.set_defaults(func=run)


def parse_overrides(items: list[str], width: int | None = None) -> dict[str, object]:
    """``["layers=8", "auxiliary=True"]`` -> dict; values read as Python literals, else strings."""
    from core.errors import UserError

    out: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UserError(f"--override expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = text.strip()
    if width is not None:
        out["width"] = width
    return out


def _model(args: argparse.Namespace, overrides: dict[str, object]):  # noqa: ANN202
    """(name, builder): a zoo model (checked now, built by the trainer) or a user's factory."""
    from bench.training.checkpoint import build_model
    from core.errors import UserError

    text = args.model_file or args.model
    if (text is None) == (args.model_name is None):
        raise UserError("name one model: a zoo name, or --model-file / --model")
    if text is None:
        build_model(args.model_name, args.dataset, overrides)  # unknown model: fail fast
        return args.model_name, None
    if overrides:
        raise UserError("--override/--width apply to zoo models; a factory builds its own")
    from models.user import build_user_model, check_user_model, parse_factory

    ref = parse_factory(text, is_file=args.model_file is not None)
    for note in check_user_model(build_user_model(ref, args.dataset), args.dataset, ref.name):
        print(f"bench: note: {note}", file=sys.stderr)
    return ref.name, lambda: build_user_model(ref, args.dataset)


def _factory_inputs(args: argparse.Namespace) -> dict[str, str] | None:
    """A factory's source hash for the checkpoint hash (None for a zoo model)."""
    if args.model_file is None and args.model is None:
        return None
    from bench.training.identity import source_digest
    from bench.training.user_model import source_file
    from models.user import parse_factory

    ref = parse_factory(args.model_file or args.model, is_file=args.model_file is not None)
    return {"source": source_digest(source_file(ref))}


def run(args: argparse.Namespace) -> int:
    from bench.inputs import check_device, check_output_dir
    from core import distributed

    check_device(args.device)  # before any work
    check_output_dir(args.checkpoint_dir, "--checkpoint-dir")
    with distributed.session(args.device):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from bench.run.compile_policy import steps_compile
    from bench.training.config import TrainConfig, config_hash
    from bench.training.recipes import describe, get_recipe
    from bench.training.trainer import ensure_trained
    from core import distributed

    every_s = 60.0 * args.save_every_min
    recipe = get_recipe(args.recipe) if args.recipe else None
    _resolve_defaults(args, recipe)
    overrides = parse_overrides(args.override, args.width)
    own_factory = args.model_file is not None or args.model is not None
    if recipe is not None and not own_factory:  # a factory builds its own architecture
        overrides = {**recipe.model_overrides(), **overrides}
    name, builder = _model(args, overrides)
    inputs = _factory_inputs(args)
    settings = _settings(args)
    if recipe is not None:
        cfg = recipe.config(**settings)
        if distributed.context().is_main:
            print("\n".join(describe(recipe, settings)), flush=True)
    else:
        cfg = TrainConfig.paper(args.training, args.dataset, **settings)
    _, meta = ensure_trained(
        name,
        args.dataset,
        cfg,
        model_overrides=overrides,
        checkpoint_dir=args.checkpoint_dir,
        device=args.device,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        builder=builder,
        compile=steps_compile(args.compile, args.device),
        inputs=inputs,
        save_every_s=every_s,
    )
    if not distributed.context().is_main:
        return 0
    digest = config_hash(name, overrides, args.dataset, cfg, inputs)
    metrics = meta.get("metrics") or {}
    print(f"checkpoint: {args.checkpoint_dir}/{digest}.safetensors")
    print(f"config hash: {digest}  content hash: {meta['content_hash'][:16]}")
    if metrics.get("epochs"):
        last = metrics["epochs"][-1]
        print(f"train loss {last['loss']:.4f}  train acc {last['acc']:.2f}%  "
              f"({metrics['wall_time_s']:.1f} s)")  # fmt: skip
    return 0


def _resolve_defaults(args: argparse.Namespace, recipe) -> None:  # noqa: ANN001
    """Dataset and training from the recipe (a conflicting option is an error), else defaults."""
    from core.errors import UserError

    for key, fallback in (("dataset", "cifar10"), ("training", "pgd_at")):
        given = getattr(args, key)
        if recipe is None:
            setattr(args, key, given or fallback)
            continue
        own = getattr(recipe, key).value
        if given is not None and given != own:
            raise UserError(f"recipe {recipe.name} is for {key} {own}, not {given}")
        setattr(args, key, own)


def _settings(args: argparse.Namespace) -> dict[str, object]:
    """TrainConfig fields the options give (without a recipe: epochs 1 and batch 128 default)."""
    from bench.attacks import parse_eps

    settings: dict[str, object] = {"seed": args.seed}
    if args.recipe is None:
        settings.update(epochs=args.epochs or 1, batch_size=args.batch_size or 128)
    else:
        settings.update(
            {
                k: v
                for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size))
                if v is not None
            }
        )
    if args.n_train is not None:
        settings["n_train"] = args.n_train
    if args.no_augment:
        settings["augment"] = False
    if args.lr is not None:
        settings["lr"] = args.lr
    if args.eps is not None:
        settings["eps"] = parse_eps(args.eps)
    if args.attack_steps is not None:
        settings["attack_steps"] = args.attack_steps
    if args.attack_step_size is not None:
        settings["attack_step_size"] = parse_eps(args.attack_step_size)
    return settings
