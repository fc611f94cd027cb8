"""``bench search-seeds``: the RACL search over seeds and variants, trained and measured.

Searches each variant (default ``racl``, ``racl_no_cl``, ``pc_darts``, ``racl_rho0``, and a
``random`` cell matched to racl's parameter count; ``racl_paper_bound`` on request) at demo
scale for each seed, trains the derived network with the demo's PGD-AT, and writes
``<out>/results.json`` and ``<out>/table.md`` (docs/SEARCH.md, "Evidence over seeds").
"""

from __future__ import annotations

import argparse

from bench.inputs import MAX_EPOCHS, MAX_IMAGES, MAX_THREADS, count_arg, seed_arg


def register(subparsers: argparse._SubParsersAction) -> None:
    from bench.studies.seed_study import DEFAULT_VARIANTS, VARIANTS

    parser = subparsers.add_parser(
        "search-seeds",
        help="search, train and measure each search variant over seeds (the seed study)",
        description="Does the Lipschitz constraint change the searched cell beyond seed noise? "
        "Runs each variant x seed at demo scale; resumes what is cached.",
    )
    parser.add_argument("--seeds", type=seed_arg, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                        choices=list(VARIANTS))  # fmt: skip
    parser.add_argument("--out", default="runs/search-seeds", help="study folder")
    parser.add_argument("--preset", default="demo", choices=("smoke", "demo"))
    parser.add_argument(
        "--epochs", type=count_arg(1, MAX_EPOCHS), help="search epochs (default: the demo preset's)"
    )
    parser.add_argument(
        "--n-images", type=count_arg(2, MAX_IMAGES), help="search images (default: demo's)"
    )
    parser.add_argument(
        "--batch-size", type=count_arg(1, 1024), help="search batch (default: the preset's)"
    )
    parser.add_argument(
        "--n-train", type=count_arg(1, MAX_IMAGES), help="PGD-AT training images (default: demo's)"
    )
    parser.add_argument(
        "--n-eval", type=count_arg(1, MAX_IMAGES), default=200, help="test images (default 200)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--threads", type=count_arg(1, MAX_THREADS), help="CPU threads for torch (default: torch's)"
    )
    parser.add_argument("--data-dir", help="dataset folder (default $RACL_BENCH_DATA or ./data)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.commands.search import set_threads
    from bench.inputs import check_device, check_output_dir
    from bench.studies.seed_study import StudyConfig, run_study
    from bench.studies.seed_tables import study_markdown
    from core.atomic import atomic_write_text
    from core.errors import UserError

    check_device(args.device)  # before the first search
    check_output_dir(args.out)
    for name, values in (("--seeds", args.seeds), ("--variants", args.variants)):
        repeated = sorted({v for v in values if list(values).count(v) > 1}, key=str)
        if repeated:  # one seed counted twice would shrink the spread it reports
            raise UserError(f"{name} lists {repeated[0]} twice; give each once")
    set_threads(args.threads)
    given = (("epochs", args.epochs), ("n_images", args.n_images), ("batch_size", args.batch_size))
    search = {k: v for k, v in given if v}
    train = {"n_train": args.n_train} if args.n_train else {}
    config = StudyConfig(
        out_dir=Path(args.out), seeds=tuple(args.seeds), variants=tuple(args.variants),
        preset=args.preset,
        search=search, train=train, n_eval=args.n_eval, device=args.device,
        data_dir=args.data_dir,
    )  # fmt: skip
    rows = run_study(config)
    text = study_markdown(rows)
    atomic_write_text(Path(args.out) / "table.md", text)
    print(text)
    return 0
