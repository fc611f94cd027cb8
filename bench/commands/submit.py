"""``bench submit``: a RobustBench entry from a stored AutoAttack result, alone (``--out X.json``)
or as a PR-ready bundle folder (``--out DIR``): docs/decisions/submission.md."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="write a RobustBench leaderboard entry or a PR-ready submission bundle for MODEL",
        description="Build a RobustBench model_info entry from the store's standard AutoAttack "
        "result for MODEL (refused when there is none, unless --run-autoattack). --out X.json "
        "writes the entry alone; any other --out is a bundle folder: the entry, a standalone "
        "model.py, the weights, the AutoAttack log, the issue form, a model card and Hugging "
        "Face eval results.",
    )
    parser.add_argument("model", metavar="MODEL", help="model name as stored (e.g. racl_published "
                        "or mymodels:masked for your own model)")  # fmt: skip
    parser.add_argument("--store", required=True, help="results store (SQLite file)")
    parser.add_argument(
        "--network-store",
        action="store_true",
        help="write --store although it is on a network filesystem (NFS, Lustre, GPFS, SMB, "
        "sshfs...; unsafe for several writers: docs/DISTRIBUTED.md); kept in the run record",
    )
    parser.add_argument("--out", required=True, help="entry JSON (a path ending in .json, or "
                        "an existing file) or a new or empty bundle folder")  # fmt: skip
    parser.add_argument("--dataset", help="dataset of the entry (needed if several are stored)")
    parser.add_argument("--threat-model", default="Linf", help="Linf (default) or L2")
    parser.add_argument(
        "--run-autoattack",
        action="store_true",
        help="run the missing AutoAttack cell with the harness first (bench.run.runner)",
    )
    parser.add_argument(
        "--preset",
        default="demo",
        help="preset for --run-autoattack (demo); rehearsal: the full-size rehearsal's capped "
        "AutoAttack, its entry marked as no result (never a bundle)",
    )
    parser.add_argument("--training", default="pgd_at",
                        help="training label of the cells --run-autoattack adds (pgd_at; "
                        "your model: what it was trained with)")  # fmt: skip
    parser.add_argument("--model-file", help="your model for --run-autoattack: FILE.py:FUNCTION")
    parser.add_argument("--model-module", dest="model_module",
                        help="your model for --run-autoattack: pkg.module:FUNCTION")  # fmt: skip
    parser.add_argument("--weights", help="weights of --model-file (safetensors or state dict)")
    parser.add_argument(
        "--checkpoint-dir",
        help="where the checkpoints are (default: <store dir>/checkpoints; the --checkpoint-dir "
        "of the bench run that trained them)",
    )
    parser.add_argument("--data-dir", help="dataset folder (default $RACL_BENCH_DATA or "
                        "./data)")  # fmt: skip
    parser.add_argument("--name", default="", help="paper title")
    parser.add_argument("--authors", default="", help="authors, comma-separated")
    parser.add_argument("--link", default="", help="link to the paper")
    parser.add_argument("--venue", default="", help="venue, e.g. 'NeurIPS 2021'")
    parser.add_argument("--architecture", help="architecture text (default: the model name)")
    parser.add_argument("--footnote", help="footnote (default: how it was evaluated)")
    parser.add_argument("--reported",
                        help="the robust accuracy the paper reports, e.g. 53.29 (default: the "
                        "paper's table for a zoo model, else ours, said so)")  # fmt: skip
    parser.add_argument("--zoo-name", help="bundle: the model-zoo name (default from MODEL)")
    parser.add_argument("--adversarial", action="store_true",
                        help="bundle: also write the adversarial images (.pt)")  # fmt: skip
    parser.set_defaults(func=run)


def _is_bundle(out: str) -> bool:
    """A bundle folder unless ``out`` ends in ``.json`` or is an existing file (the entry)."""
    path = Path(out)
    return not str(out).lower().endswith(".json") and not (path.exists() and not path.is_dir())


def _check_args(args: argparse.Namespace) -> None:
    from bench.inputs import check_output_dir, check_output_file
    from core.errors import UserError

    read = {"--store": args.store, "--checkpoint-dir": args.checkpoint_dir,
            "--data-dir": args.data_dir}  # fmt: skip
    if _is_bundle(args.out):
        target = check_output_dir(args.out, "--out", inputs=read)
        if target.is_dir() and any(target.iterdir()):
            raise UserError(f"--out {target} is a folder that is not empty; give a new or "
                            "empty folder for the bundle (or X.json for the entry)")  # fmt: skip
    else:
        check_output_file(args.out, inputs=read)
        if args.adversarial or args.zoo_name:
            raise UserError("--adversarial and --zoo-name go with a bundle folder as --out")
    if args.link and not re.fullmatch(r"https?://[^\s<>\"']+", args.link):
        raise UserError(f"--link must be an http(s) address, got {args.link[:60]!r}")
    if args.checkpoint_dir:
        check_output_dir(args.checkpoint_dir, "--checkpoint-dir", inputs={"--store": args.store})
    if args.model_file and args.model_module:
        raise UserError("give --model-file or --model-module, not both")
    if args.weights and not (args.model_file or args.model_module):
        raise UserError("--weights goes with --model-file or --model-module")
    if args.reported is not None:
        from bench.report.submission_evidence import check_reported

        check_reported(args.reported)


def run(args: argparse.Namespace) -> int:
    from bench.plan.presets import get_preset
    from bench.report.submission import SubmissionMeta, build_submission
    from bench.results.names import capped_iterations
    from core.errors import UserError

    _check_args(args)
    meta = SubmissionMeta(name=args.name, authors=args.authors, link=args.link,
                          venue=args.venue, architecture=args.architecture,
                          footnote=args.footnote, reported=args.reported)  # fmt: skip
    # a preset whose leaderboard attack is capped (the rehearsal): its entry is marked no result
    rehearsal = capped_iterations(get_preset(args.preset).leaderboard_attack) is not None
    if rehearsal and _is_bundle(args.out):
        raise UserError(f"preset {args.preset} runs a capped AutoAttack, which is no result: a "
                        "bundle needs the standard AutoAttack (use --out X.json to see the "
                        "marked entry)")  # fmt: skip
    kwargs = {"dataset": args.dataset, "threat_model": args.threat_model, "meta": meta,
              "rehearsal": rehearsal}  # fmt: skip
    try:
        sub = build_submission(args.store, args.model, **kwargs)
    except UserError:
        if not args.run_autoattack:
            raise
        failures = _run_autoattack(args)
        if failures:  # why there is no entry (the cell failed), not "no AutoAttack result"
            print(f"bench: error: the AutoAttack run failed: {failures[0]}", file=sys.stderr)
            return 1
        sub = build_submission(args.store, args.model, **kwargs)
    entry = sub.entry
    path = _write_bundle(args, sub) if _is_bundle(args.out) else _write_entry(entry, args.out)
    print(f"wrote {path}: clean {entry['clean_acc']}%, AutoAttack {entry['autoattack_acc']}% "
          f"at eps {entry['eps']} ({entry['dataset']})")  # fmt: skip
    for line in _validation_lines(entry, args.threat_model):
        print(line)
    return 0


def _run_autoattack(args: argparse.Namespace) -> list[str]:
    from bench.plan.presets import get_preset
    from bench.plan.run_request import run_dataset
    from bench.run.leaderboard import run_autoattack, user_model_for

    dataset = run_dataset(args.dataset, get_preset(args.preset)).value
    factory = args.model_file or args.model_module
    user = user_model_for(args.store, args.model, factory, args.model_file is not None,
                          args.weights, dataset)  # fmt: skip
    return run_autoattack(args.store, args.model, args.dataset or (dataset if user else None),
                          args.threat_model, args.preset, checkpoint_dir=args.checkpoint_dir,
                          data_dir=args.data_dir, network_ok=args.network_store, user=user,
                          training=args.training)  # fmt: skip


def _write_entry(entry: dict, out: str) -> Path:
    from bench.report.submission import write_entry

    try:
        return write_entry(entry, out)
    except OSError as err:  # a full disk names the file (exit 1); see docs/decisions/errors.md
        raise OSError(err.errno, err.strerror, err.filename or out) from None


def _validation_lines(entry: dict, threat_model: str) -> list[str]:
    from bench.report.submission import dataset_note, leaderboard_check, robustbench_check

    lines = [leaderboard_check(entry), robustbench_check(entry, threat_model)]
    note = dataset_note(entry)
    return [*lines, note] if note else lines


def _write_bundle(args: argparse.Namespace, sub: object) -> Path:
    """The bundle folder (docs/decisions/submission.md, "The bundle")."""
    from bench.plan.presets import get_preset
    from bench.report.eval_results import benchmark_name, eval_results, to_yaml
    from bench.report.submission_docs import issue_markdown, model_card
    from bench.submission.bundle import (
        write_documents,
        write_model_files,
        write_sums,
        zoo_name,
    )
    from bench.submission.evaluated_model import checkpoint_row
    from models.export import zoo_stanza

    row = sub.row.to_dict()
    if "robust" not in sub.bits or "clean" not in sub.bits:
        from core.errors import UserError

        raise UserError("the store lacks the per-image verdicts of the entry's AutoAttack or "
                        "clean cell; run them again (bench run --fresh)")  # fmt: skip
    import torch

    stored = {k: torch.from_numpy(v) for k, v in sub.bits.items()}
    name = zoo_name(args.zoo_name or args.model)
    out = Path(args.out)
    facts = write_model_files(out, store=args.store, row=row, stored=stored, name=name,
                              threat_model=sub.threat_model, entry=sub.entry,
                              batch_size=get_preset(str(row["preset"])).batch_size,
                              checkpoint_dir=args.checkpoint_dir, data_dir=args.data_dir,
                              adversarial=args.adversarial)  # fmt: skip
    config = checkpoint_row(args.store, str(row["checkpoint"])).get("config_json") or "{}"
    plain = {
        "zoo_name": name, "entry_path": facts.entry_path, "files": facts.files,
        "stanza": zoo_stanza(name, facts.builder), "n": facts.n,
        "adversarial": facts.adversarial, "agree_robust": facts.agree_robust,
        "model_kind": facts.model_kind, "training": _json(config), "versions": _versions(),
    }  # fmt: skip
    results = eval_results(sub.entry, sub.threat_model, sub.aa.n, sub.created_at)
    documents = {
        "ISSUE.md": issue_markdown(sub, plain),
        "README.md": model_card(sub, plain),
        f".eval_results/{benchmark_name(sub.entry['dataset'], sub.threat_model)}.yaml":
            to_yaml(results),
        "zoo_entry.py": plain["stanza"],
    }  # fmt: skip
    write_documents(out, documents)
    write_sums(out)
    return out


def _json(text: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("torch", "pyautoattack", "robustbench", "safetensors"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found
