"""``bench run``: plan experiments (or an ad-hoc model x attack set) and compute them into the
results store; ``--dry-run`` prints the plan, ``--json`` a machine-readable summary."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench.inputs import minutes_arg, seed_arg

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
        help="your own model: a factory returning an nn.Module (images in [0, 1])",
    )
    own.add_argument(
        "--model",
        metavar="PACKAGE.MODULE:FUNC",
        help="your own model: an importable factory (as --model-file)",
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
    p.add_argument("--n", type=int, help="number of test images")
    p.add_argument("--store", default=DEFAULT_STORE, help=f"store (default {DEFAULT_STORE})")
    p.add_argument("--checkpoint-dir", help="default: <store dir>/checkpoints")
    p.add_argument("--data-dir", help="dataset folder (default $RACL_BENCH_DATA or ./data)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--fresh", action="store_true", help="delete the plan's cells first")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--seed", type=seed_arg, help="global seed: training and attacks (default 0)")
    p.add_argument(
        "--seeds",
        help="comma-separated global seeds, e.g. 0,1,2: the whole plan once per seed (each "
        "seed trains its own checkpoints); replaces --seed",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
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


def build_plan(args: argparse.Namespace, store, user=None):  # noqa: ANN001, ANN201 - lazy types
    from bench.attacks import parse_eps
    from bench.experiments import get_experiments
    from bench.planner import plan
    from bench.presets import get_preset
    from bench.runner import check_plan_models
    from core.enums import Dataset, Training
    from core.errors import UserError

    preset = get_preset(args.preset)
    models, attacks = split_list(args.models), split_list(args.attacks)
    check_plan_models(models)
    user = user or _user_model(args, preset)
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
    dataset = Dataset.parse(args.dataset) if args.dataset else None
    training = Training.parse(args.training)
    if attacks and dataset is None and preset.dataset is None:
        dataset = Dataset.CIFAR10
    if args.n is not None and args.n < 1:
        raise UserError(f"--n must be >= 1, got {args.n}")
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
        training=training,
        checkpoint_dir=_ckpt_dir(args),
        user_model=user,
    )
    if not result.cells:
        raise UserError("nothing to run: no experiment model matches --models")
    if models:
        planned = {c.target.model for c in result.cells}
        unused = [m for m in models if m not in planned and _zoo(m) not in planned]
        if unused:
            raise UserError(f"model {unused[0]} is not in the chosen experiments")
    return result


def _user_model(args: argparse.Namespace, preset):  # noqa: ANN001, ANN202 - lazy types
    """The ``--model-file`` / ``--model`` factory with its weights, checked (None without)."""
    from core.errors import UserError

    text = args.model_file or args.model
    if text is None:
        if args.weights:
            raise UserError("--weights goes with --model-file or --model")
        return None
    if args.models or args.experiment:
        raise UserError("--model-file/--model runs ad-hoc attacks: drop --models/--experiment")
    from bench.user_model import prepare_user_model
    from core.enums import Dataset

    dataset = args.dataset or (preset.dataset.value if preset.dataset else Dataset.CIFAR10.value)
    dataset = Dataset.parse(dataset).value
    user, notes = prepare_user_model(
        text, is_file=args.model_file is not None, weights=args.weights, dataset=dataset
    )
    for note in notes:
        print(f"bench: note: {note}", file=sys.stderr)
    return user


def _zoo(name: str) -> str:
    from bench.experiments import zoo_name

    return zoo_name(name)


def _ckpt_dir(args: argparse.Namespace) -> Path:
    if args.checkpoint_dir:
        return Path(args.checkpoint_dir)
    return Path(args.store).parent / "checkpoints"


def _plan_for_run(args: argparse.Namespace, store, user=None):  # noqa: ANN001, ANN202
    """The plan, with the cells of ``--fresh`` deleted from the store (not on a dry run)."""
    result = build_plan(args, store, user)
    if args.fresh and not args.dry_run:
        store.delete(c.key for c in result.cells)
        for c in result.cells:
            c.cached = False
    return result


def parse_seeds(seed: int | None, seeds: str | None) -> list[int]:
    """The run's global seeds: ``--seeds a,b,c`` (distinct, >= 0) or ``[--seed]`` (default 0)."""
    from bench.inputs import check_seed
    from core.errors import UserError

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


def check_run_args(args: argparse.Namespace, preset) -> None:  # noqa: ANN001
    """``--attacks`` and ``--n`` checked before the store is opened or a cell runs.

    Each attack is parsed once here; the planner parses it again at each experiment's budget,
    and the checks (names, keyword arguments and their types) do not depend on the budget. The
    planner checks ``--n`` again against each experiment's dataset.
    """
    from bench.attacks import parse_attack
    from bench.inputs import check_output_dir
    from core.datasets import dataset_info
    from core.enums import Dataset
    from core.errors import UserError

    chosen = args.dataset or (preset.dataset.value if preset.dataset else Dataset.CIFAR10.value)
    info = dataset_info(Dataset.parse(chosen))
    if args.n is not None and args.n > info.test_size:
        raise UserError(f"--n {args.n} is above the {info.name} test set size ({info.test_size})")
    for text in split_list(args.attacks) or []:
        parse_attack(text, eps=info.budget, dataset=info.dataset)
    if args.checkpoint_dir:
        check_output_dir(args.checkpoint_dir, "--checkpoint-dir")


def _print_plan(result) -> None:  # noqa: ANN001
    info = result.to_json()
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

    from bench import workers
    from bench.presets import get_preset
    from core import distributed

    me = workers.role()
    if me.helper:  # a helper of `--workers`: the first process's seed, threads and store
        overrides = {"fresh": False, "json": False, "no_progress": True, "dry_run": False}
        overrides.update(threads=me.threads, seed=me.seed, seeds=None, workers=1)
        args = argparse.Namespace(**{**vars(args), **overrides})
    if args.threads is not None and args.threads < 1:
        from core.errors import UserError

        raise UserError(f"--threads must be >= 1, got {args.threads}")
    workers.check_workers(args.workers, distributed.context().enabled)
    if args.workers > 1 and not args.dry_run:
        args.threads = workers.threads_each(args.workers, args.threads)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    seeds = parse_seeds(args.seed, args.seeds)
    check_run_args(args, get_preset(args.preset))  # before the store is opened
    main = distributed.context().is_main
    # a user's model is checked before the store is touched (a misfit creates no store)
    user = distributed.on_main(lambda: _user_model(args, get_preset(args.preset)))
    opened = _Stores(args.store, args.dry_run) if main else None
    with opened if opened is not None else contextlib.nullcontext() as stores:
        done = [
            _run_seed(argparse.Namespace(**{**vars(args), "seed": s}), stores, user) for s in seeds
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

    def __init__(self, path: str, dry_run: bool) -> None:
        from bench.store import ResultStore

        self.path, self.dry_run = path, dry_run
        if not Path(path).exists():
            self.store = ResultStore(":memory:")
        else:
            self.store = ResultStore(path, readonly=dry_run)

    def writable(self):  # noqa: ANN201 - lazy type
        """The store file, created now if absent (never on a dry run)."""
        from bench.store import ResultStore

        if not self.dry_run and str(self.store.path) == ":memory:":
            self.store.close()
            self.store = ResultStore(self.path)
        return self.store

    def __enter__(self) -> _Stores:
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.close()


def _run_seed(args: argparse.Namespace, stores, user) -> tuple[int, dict]:  # noqa: ANN001
    """Plan and execute (or print, on a dry run) for ``args.seed``: (exit code, JSON doc)."""
    import torch

    from bench.compiled import describe_compile, run_options
    from bench.runner import execute
    from bench.summary import summary_table
    from bench.workers import role
    from core import distributed

    main = distributed.context().is_main
    result = distributed.on_main(lambda: _plan_for_run(args, stores.store, user))
    if args.dry_run:
        if main and not args.json:
            _print_plan(result)
        return 0, ({"dry_run": True, **result.to_json()} if main else {})
    store = stores.writable() if main else None  # rank 0's store only (none on the others)
    meta = {"argv": sys.argv[1:], "torch_version": torch.__version__, "git_commit": _git_commit()}
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
            checkpoint_dir=_ckpt_dir(args),
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
    from bench.workers import Helpers, role

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
