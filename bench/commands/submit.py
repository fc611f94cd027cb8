"""``bench submit``: write a RobustBench ``model_info`` entry from a stored AutoAttack result."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="write a RobustBench leaderboard entry (model_info JSON) for MODEL",
        description="Build a RobustBench model_info JSON from the store's standard AutoAttack "
        "result for MODEL (refused when there is none, unless --run-autoattack).",
    )
    parser.add_argument("model", metavar="MODEL", help="model name as stored (e.g. racl_published)")
    parser.add_argument("--store", required=True, help="results store (SQLite file)")
    parser.add_argument("--out", required=True, help="entry JSON to write")
    parser.add_argument("--dataset", help="dataset of the entry (needed if several are stored)")
    parser.add_argument("--threat-model", default="Linf", help="Linf (default) or L2")
    parser.add_argument(
        "--run-autoattack",
        action="store_true",
        help="run the missing AutoAttack cell with the harness first (bench.runner)",
    )
    parser.add_argument("--preset", default="demo", help="preset for --run-autoattack (demo)")
    parser.add_argument("--name", default="", help="paper title")
    parser.add_argument("--authors", default="", help="authors, comma-separated")
    parser.add_argument("--link", default="", help="link to the paper")
    parser.add_argument("--venue", default="", help="venue, e.g. 'NeurIPS 2021'")
    parser.add_argument("--architecture", help="architecture text (default: the model name)")
    parser.add_argument("--footnote", help="footnote (default: how it was evaluated)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bench.inputs import check_output_file
    from bench.report.submission import (
        SubmissionMeta,
        build_entry,
        dataset_note,
        robustbench_check,
        write_entry,
    )
    from core.errors import UserError

    check_output_file(args.out)
    meta = SubmissionMeta(
        name=args.name,
        authors=args.authors,
        link=args.link,
        venue=args.venue,
        architecture=args.architecture,
        footnote=args.footnote,
    )
    kwargs = {"dataset": args.dataset, "threat_model": args.threat_model, "meta": meta}
    try:
        entry = build_entry(args.store, args.model, **kwargs)
    except UserError:
        if not args.run_autoattack:
            raise
        from bench.leaderboard_run import run_autoattack

        run_autoattack(args.store, args.model, args.dataset, args.threat_model, args.preset)
        entry = build_entry(args.store, args.model, **kwargs)
    try:
        path = write_entry(entry, args.out)
    except OSError as err:  # a full disk names the file (exit 1); see docs/decisions/errors.md
        raise OSError(err.errno, err.strerror, err.filename or args.out) from None
    print(f"wrote {path}: clean {entry['clean_acc']}%, AutoAttack {entry['autoattack_acc']}% "
          f"at eps {entry['eps']} ({entry['dataset']})")  # fmt: skip
    print(robustbench_check(entry, args.threat_model))
    note = dataset_note(entry)
    if note:
        print(note)
    return 0
