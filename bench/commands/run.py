"""``bench run``: plan experiments (or an ad-hoc model x attack set) and compute them into the
results store; ``--dry-run`` prints the plan, ``--json`` a machine-readable summary."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench.inputs import MAX_IMAGES, MAX_THREADS, count_arg, minutes_arg, seed_arg

DEFAULT_STORE = "results/results.db"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="train, attack and evaluate into the results store (resumable)",
        description="Plan the cells of experiments (table1..table5, fig3) or of --models x "
        "--attacks, then compute only those missing from the store.",
    )
    p.add_argument("--experiment", help="comma-separated: table1,table2,table3,table4,table5,fig3")
    p.add_argument(
        "--preset", default="demo", help="smoke | demo | paper | rehearsal (default demo)"
    )
    p.add_argument("--dataset", help="cifar10 | cifar100 | mnist | fashion_mnist")
    p.add_argument("--models", help="comma-separated zoo names (filters the experiments)")
    own = p.add_mutually_exclusive_group()
    own.add_argument(
        "--model-file",
        metavar="FILE.py:FUNC",
        help="your own model: a factory returning an nn.Module (images in [0, 1]); the file's "
        "code runs, also under --dry-run: trust it",
    )
    own.add_argument(
        "--model",
        metavar="PACKAGE.MODULE:FUNC",
        help="your own model: an importable factory (as --model-file; its code runs)",
    )
    p.add_argument("--weights", help="weights of --model-file/--model: .safetensors or a "
                   "state dict (torch.load with weights_only=True)")  # fmt: skip
    p.add_argument(
        "--attacks",
        help="comma-separated, e.g. fgsm,pgd20,mim,autoattack,"
        "torchattacks:APGD(steps=10): an ad-hoc white-box experiment",
    )
    p.add_argument("--training", default="pgd_at", help="training of ad-hoc models")
    p.add_argument("--eps", help="budget replacing the dataset's (e.g. 8/255 or 0.3)")
    p.add_argument("--n", type=count_arg(1, MAX_IMAGES), help="number of test images")
    p.add_argument("--store", default=DEFAULT_STORE, help=f"store (default {DEFAULT_STORE})")
    p.add_argument(
        "--network-store",
        action="store_true",
        help="write --store although it is on a network filesystem (NFS, Lustre, GPFS, SMB, "
        "sshfs...; unsafe for several writers: docs/DISTRIBUTED.md); kept in the run record",
    )
    p.add_argument("--checkpoint-dir", help="default: <store dir>/checkpoints")
    p.add_argument("--data-dir", help="dataset folder (default $RACL_BENCH_DATA or ./data)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--fresh", action="store_true", help="delete the plan's cells first")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--seed", type=seed_arg, help="global seed: training and attacks (default 0)")
    p.add_argument(
        "--match",
        metavar="params|flops[=MODEL]",
        help="scale every zoo model's width to MODEL's (default racl_published) parameters or "
        "FLOPs per image at the preset's scale, within 5 %% where a width can (own checkpoints; "
        "use a store of its own)",
    )
    p.add_argument(
        "--seeds",
        help="comma-separated global seeds, e.g. 0,1,2: the whole plan once per seed (each "
        "seed trains its own checkpoints); replaces --seed",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=count_arg(1, MAX_THREADS),
                   help="CPU threads for torch (default: torch's)")  # fmt: skip
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="N processes share the run through the store's leases, the threads "
                   "split between them (default 1; docs/decisions/speed.md, Workers)")  # fmt: skip
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                   help="torch.compile the attack steps (auto: CUDA paper preset, or a CPU plan "
                   "whose estimate repays the compile; see docs/decisions/speed.md)")  # fmt: skip
    p.add_argument("--save-every-min", type=minutes_arg, default=10.0, metavar="M",
                   help="training of missing checkpoints also saves its state within an epoch "
                   "every M minutes (default 10; 0: after every batch)")  # fmt: skip
    p.add_argument("--amp", choices=("off", "bf16"), default="off",
                   help="bf16 autocast for attack generation (verdicts stay float32)")  # fmt: skip
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 3 when a trust check or an indicator of attack failure fails",
    )
    p.set_defaults(func=run)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _print_plan(result) -> None:  # noqa: ANN001
    from bench.plan.cost import plan_json

    info = plan_json(result)
    est = info["estimate"]
    print(
        f"plan ({info['preset']}, seed {info['seed']}): {info['cells']} cells, "
        f"{info['to_compute']} to compute, {info['cached']} cached, "
        f"{info['checkpoints']} checkpoints"
    )
    print(
        f"estimate: training {est['train_passes']:,} forward-equivalents (~{est['train_s']} s), "
        f"evaluation {est['eval_passes']:,} (~{est['eval_s']} s), total ~{est['total_s']} s"
    )
    if info["needs_search"]:
        print(
            f"needs search first (RACL search, preset {result.preset.search_preset}): "
            f"{', '.join(info['needs_search'])}"
        )
    for s in info["skipped"]:
        print(f"skipped [{s['experiment']}] {s['model']}: {s['reason']}")
    for label in info["missing"]:
        print(f"  to compute: {label}")


def run(args: argparse.Namespace) -> int:
    """Under torchrun only rank 0 opens the store and plans; every rank computes (sharded)."""
    from bench.inputs import check_device
    from core import distributed

    check_device(args.device)  # before any work, a dry run's plan included
    with distributed.session(args.device):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Plan and run once per seed (``--seeds``); JSON: one object, or a list for several seeds."""
    import contextlib

    import torch

    from bench.plan.presets import get_preset
    from bench.plan.run_request import check_run_args, parse_seeds, user_model
    from bench.run import workers
    from core import distributed

    me = workers.role()
    if me.helper:  # a helper of `--workers`: the first process's seed, threads and store
        overrides = {"fresh": False, "json": False, "no_progress": True, "dry_run": False}
        overrides.update(threads=me.threads, seed=me.seed, seeds=None, workers=1)
        args = argparse.Namespace(**{**vars(args), **overrides})
    workers.check_workers(args.workers, distributed.context().enabled)
    if args.workers > 1 and not args.dry_run:
        args.threads = workers.threads_each(args.workers, args.threads)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    seeds = parse_seeds(args.seed, args.seeds)
    preset = get_preset(args.preset)
    check_run_args(args, preset)  # before the store is opened
    main = distributed.context().is_main
    # a user's model is checked before the store is touched (a misfit creates no store)
    user = distributed.on_main(lambda: user_model(args, preset))
    # under torchrun only rank 0 opens the store: one writer, allowed on a network filesystem
    network_ok = args.network_store or distributed.context().enabled
    opened = _Stores(args.store, args.dry_run, network_ok) if main else None
    with opened if opened is not None else contextlib.nullcontext() as stores:
        done = [
            _run_seed(argparse.Namespace(**{**vars(args), "seed": s}), stores, preset, user)
            for s in seeds
        ]
    if main and args.json:
        docs = [doc for _, doc in done]
        print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2))
    codes = [code for code, _ in done]
    return 1 if 1 in codes else max(codes)  # failed cells (1) before failed checks (--strict: 3)


class _Stores:
    """The run's store. A dry run only reads (read-only, or an empty in-memory store when the
    file is absent); a run plans against an empty in-memory store until the file exists and
    creates it only when there is work to run, so a run that fails first creates no file."""

    def __init__(self, path: str, dry_run: bool, network_ok: bool = False) -> None:
        from bench.results.store import ResultStore

        self.path, self.dry_run, self.network_ok = path, dry_run, network_ok
        if not Path(path).exists():
            self.store = ResultStore(":memory:")
        else:
            self.store = ResultStore(path, readonly=dry_run, network_ok=network_ok)

    def writable(self):  # noqa: ANN201 - lazy type
        """The store file, created now if absent (never on a dry run)."""
        from bench.results.store import ResultStore

        if not self.dry_run and str(self.store.path) == ":memory:":
            self.store.close()
            self.store = ResultStore(self.path, network_ok=self.network_ok)
        return self.store

    def __enter__(self) -> _Stores:
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.close()


def _run_seed(args: argparse.Namespace, stores, preset, user) -> tuple[int, dict]:  # noqa: ANN001
    """Plan and execute (or print, on a dry run) for ``args.seed``: (exit code, JSON doc)."""
    import torch

    from bench.plan.cost import plan_json
    from bench.plan.run_request import checkpoint_dir, plan_for_run
    from bench.results.summary_table import summary_table
    from bench.run.compile_policy import describe_compile, run_options
    from bench.run.runner import execute
    from bench.run.workers import role
    from core import distributed

    main = distributed.context().is_main
    result = distributed.on_main(lambda: plan_for_run(args, stores.store, preset, user))
    if args.dry_run:
        if main and not args.json:
            _print_plan(result)
        return 0, ({"dry_run": True, **plan_json(result)} if main else {})
    store = stores.writable() if main else None  # rank 0's store only (none on the others)
    meta = {
        "argv": getattr(args, "argv", sys.argv[1:]),
        "torch_version": torch.__version__,
        "git_commit": _git_commit(),
    }
    log = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
    options = run_options(args.compile, args.amp, result, args.device)
    compiling = describe_compile(options, result) if main else None
    if compiling:
        log(compiling)
    helpers = _start_helpers(args, log)
    try:
        summary = execute(
            result,
            store,
            args.device,
            progress=not args.no_progress,
            checkpoint_dir=checkpoint_dir(args),
            data_dir=args.data_dir,
            run_meta=meta,
            attack_options={**options, "save_every_s": 60.0 * args.save_every_min},
            log=log,
        )
    except BaseException:
        if helpers is not None:
            helpers.stop()
        raise
    if helpers is not None:
        helpers.finish(lambda m: print(m, file=sys.stderr))
    code = summary.strict_exit_code() if args.strict else summary.exit_code
    if not main:
        return code, {}
    if role().helper:  # its summary line only: the first process prints the table
        print(_counts(summary), file=sys.stderr)
        return code, {}
    if not args.json:
        shown = [c.key for c in result.cells if c.experiments != ["trust:eps"]]
        print(summary_table(store.rows(key=shown), summary.trust, summary.indicators))
        print(f"\nseed {args.seed}: {_counts(summary)}; store {args.store}")
        for label, peak in summary.memory.items():
            print(f"peak memory {label}: {peak['peak_mib']:.0f} MiB ({peak['kind']})")
    return code, summary.to_json()


def _start_helpers(args: argparse.Namespace, log):  # noqa: ANN001, ANN202 - lazy types
    """The helpers of ``--workers N`` for this seed (None for one worker or in a helper)."""
    from bench.run.workers import Helpers, role

    if args.workers <= 1 or role().helper:
        return None
    log(f"workers: {args.workers} processes, {args.threads} thread(s) each, sharing the store")
    return Helpers.start(args.workers - 1, args.threads, args.seed, args.argv)


def _counts(summary) -> str:  # noqa: ANN001 - a RunSummary (lazy import)
    """``K computed, C cached, F failed; train T s, total S s`` of a run's summary."""
    t = summary.timings
    return (
        f"{summary.computed} computed, {summary.cached} cached, {summary.failed} failed; "
        f"train {t.get('train_s', 0):.1f} s, total {t.get('total_s', 0):.1f} s"
    )
