"""``bench search``: run a RACL (or PC-DARTS / without-CL) search and write a genotype.

RACL: Dong et al., "Adversarially Robust Neural Architecture Search with Confidence Learning",
AAAI 2021. The genotype lands in the first folder of ``genotypes.genotype_dirs()`` (or
``--out-dir``) as ``<name>.json``, so ``bench zoo`` and ``create_model(name)`` find it.

Under ``torchrun`` the supernet weights train with DistributedDataParallel (each global batch
split over the processes) and the architecture parameters stay identical on every rank; rank 0
writes the run folder and the genotype and prints.
"""

from __future__ import annotations

import argparse

from bench.inputs import (
    MAX_EPOCHS,
    MAX_THREADS,
    count_arg,
    finite_arg,
    positive_float_arg,
    seed_arg,
)

METHODS = ("racl", "racl_no_cl", "pc_darts")
STRENGTHS = ("median", "mean", "lcb")
BOUNDS = ("operator", "paper")  # racl_search.options.BoundMode (kept torch-free here)
PENALTIES = ("phr", "paper")  # racl_search.options.Penalty
CONFIDENCES = ("exact", "paper")  # racl_search.options.Confidence
TARGETS = ("relative", "start")  # racl_search.options.Target


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search a cell genotype with RACL (or PC-DARTS) and add it to the zoo",
        description="Search a DARTS-space cell with RACL's Lipschitz confidence constraint "
        "(or the PC-DARTS / without-CL baselines) and write genotypes/<name>.json.",
    )
    parser.add_argument("--name", required=True, help="genotype name (letters, digits, _ . -)")
    parser.add_argument("--preset", default="demo", choices=("smoke", "demo", "paper"))
    parser.add_argument("--dataset", help="dataset (default: the preset's: mnist / cifar10)")
    parser.add_argument("--method", default="racl", choices=METHODS)
    parser.add_argument("--eta", type=float, default=0.9, help="confidence level (default 0.9)")
    parser.add_argument("--rho", type=positive_float_arg, default=1e-3,
                        help="ADMM penalty, finite and > 0 (default 0.001)")  # fmt: skip
    parser.add_argument(
        "--log-lipschitz-target",
        type=finite_arg(-1e6, 1e6),
        help="ln lambda*, fixed (default: see --target)",
    )
    parser.add_argument(
        "--target",
        default="relative",
        choices=TARGETS,
        help="default ln lambda*: the starting architecture's bound under the current weights "
        "(relative, default) or the bound at the first architecture step, frozen (start)",
    )
    parser.add_argument("--strength", default="median", choices=STRENGTHS)
    parser.add_argument(
        "--bound",
        default="operator",
        choices=BOUNDS,
        help="per-op Lipschitz constants: operator norms (default) or the paper's reading",
    )
    parser.add_argument(
        "--penalty",
        default="phr",
        choices=PENALTIES,
        help="constraint term: phr (inequality, default) or paper (Eq. 17 as written)",
    )
    parser.add_argument(
        "--confidence",
        default="exact",
        choices=CONFIDENCES,
        help="chance constraint: exact log-normal quantile with the shared sampling's variance "
        "(default) or paper (Phi^-1(eta) sigma^2, cells independent, Eq. 16-17)",
    )
    parser.add_argument(
        "--live-sigma",
        action="store_true",
        help="the constraint reads the current sigma (the paper) instead of the starting one",
    )
    parser.add_argument("--seed", type=seed_arg, default=0)
    parser.add_argument("--epochs", type=count_arg(1, MAX_EPOCHS),
                        help="override the preset's epochs")  # fmt: skip
    parser.add_argument(
        "--rho-scale",
        type=positive_float_arg,
        help="multiply rho for short searches (preset default: paper 1, demo 150, smoke 100)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    parser.add_argument("--data-dir", help="dataset folder (default $RACL_BENCH_DATA or ./data)")
    parser.add_argument("--out-dir", help="genotype folder (default: first of genotype_dirs())")
    parser.add_argument("--run-dir", help="log/checkpoint folder (default runs/search/<name>)")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", dest="resume", action="store_true", default=True,
                        help="continue after the last finished epoch (default)")  # fmt: skip
    resume.add_argument("--fresh", dest="resume", action="store_false",
                        help="start over, discarding the run folder's state")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="torch.compile the supernet's mixed ops in the training steps "
                        "(auto: paper preset on CUDA; an execution detail, not in the config "
                        "hash; see docs/decisions/speed.md)")  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core import distributed

    check_search_args(args)
    with distributed.session(args.device):
        return _run(args)


def check_search_args(args: argparse.Namespace) -> None:
    """Name, device and output folders, checked before the search starts (one line, exit 2)."""
    from bench.inputs import check_device, check_name, check_output_dir

    check_name(args.name)
    from core.errors import UserError
    from genotypes.names import ALIASES
    from models.registry import BUILTIN

    if args.name in BUILTIN or args.name in ALIASES:
        raise UserError(f"--name {args.name} is a zoo model's name; give the search its own name")
    check_device(args.device)
    from racl_search.api import default_out_dir, default_run_dir

    check_output_dir(args.out_dir or default_out_dir(), "--out-dir")
    run_dir = args.run_dir or default_run_dir(args.name)
    check_output_dir(run_dir, "--run-dir")
    if args.resume:  # a corrupt state file is named now, not after the data has loaded
        from racl_search.run_state import check_run_dir

        check_run_dir(run_dir)


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads`` for ``--threads`` (None: torch's default)."""
    if threads is None:
        return
    from core.errors import UserError

    if threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")
    if threads > MAX_THREADS:
        raise UserError(f"--threads must be at most {MAX_THREADS}, got {threads}")
    import torch

    torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.run.compile_policy import search_compile
    from core import distributed
    from racl_search.api import search
    from racl_search.config import COMPILE_ON_CUDA, make_config

    set_threads(args.threads)
    config = make_config(
        args.preset, dataset=args.dataset, method=args.method, eta=args.eta, rho=args.rho,
        log_lipschitz_target=args.log_lipschitz_target, strength=args.strength,
        bound=args.bound, penalty=args.penalty, target=args.target, seed=args.seed,
        epochs=args.epochs, confidence=args.confidence, live_sigma=args.live_sigma or None,
        rho_scale=args.rho_scale,
    )  # fmt: skip
    result = search(
        config,
        args.name,
        device=str(distributed.device_for(args.device)),
        data_dir=args.data_dir,
        out_dir=Path(args.out_dir) if args.out_dir else None,
        run_dir=Path(args.run_dir) if args.run_dir else None,
        resume=args.resume,
        progress=not args.no_progress,
        compile=search_compile(args.compile, args.device, COMPILE_ON_CUDA[args.preset]),
    )
    if not distributed.context().is_main:
        return 0
    meta = result.metadata
    print(f"wrote {result.path}")
    print(f"genotype {result.name}: {result.genotype}")
    c = meta.get("final_c")
    if c is not None:
        held = "holds" if c <= 0 else "violated"
        print(f"final c = {c:+.4f} ({held}), theta = {meta.get('theta'):.5f}")
    print(f"search time {meta['search_time_s']:.0f} s over {meta['epochs']} epochs")
    return 0
