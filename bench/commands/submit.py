"""``bench submit``: write a RobustBench ``model_info`` entry from a stored AutoAttack result."""

from __future__ import annotations

import argparse
import re
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="write a RobustBench leaderboard entry (model_info JSON) for MODEL",
        description="Build a RobustBench model_info JSON from the store's standard AutoAttack "
        "result for MODEL (refused when there is none, unless --run-autoattack).",
    )
    parser.add_argument("model", metavar="MODEL", help="model name as stored (e.g. racl_published)")
    parser.add_argument("--store", required=True, help="results store (SQLite file)")
    parser.add_argument(
        "--network-store",
        action="store_true",
        help="write --store although it is on a network filesystem (NFS, Lustre, GPFS, SMB, "
        "sshfs...; unsafe for several writers: docs/DISTRIBUTED.md); kept in the run record",
    )
    parser.add_argument("--out", required=True, help="entry JSON to write")
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
        "AutoAttack, its entry marked as no result",
    )
    parser.add_argument(
        "--checkpoint-dir",
        help="for --run-autoattack: where the checkpoints are (default: <store "
        "dir>/checkpoints; the --checkpoint-dir of the bench run that trained them)",
    )
    parser.add_argument("--data-dir", help="for --run-autoattack: dataset folder (default "
                        "$RACL_BENCH_DATA or ./data)")  # fmt: skip
    parser.add_argument("--name", default="", help="paper title")
    parser.add_argument("--authors", default="", help="authors, comma-separated")
    parser.add_argument("--link", default="", help="link to the paper")
    parser.add_argument("--venue", default="", help="venue, e.g. 'NeurIPS 2021'")
    parser.add_argument("--architecture", help="architecture text (default: the model name)")
    parser.add_argument("--footnote", help="footnote (default: how it was evaluated)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bench.inputs import check_output_dir, check_output_file
    from bench.plan.presets import get_preset
    from bench.report.submission import (
        SubmissionMeta,
        build_entry,
        dataset_note,
        robustbench_check,
        write_entry,
    )
    from bench.results.names import capped_iterations
    from core.errors import UserError

    read = {
        "--store": args.store,
        "--checkpoint-dir": args.checkpoint_dir,
        "--data-dir": args.data_dir,
    }
    check_output_file(args.out, inputs=read)
    if args.link and not re.fullmatch(r"https?://[^\s<>\"']+", args.link):
        raise UserError(f"--link must be an http(s) address, got {args.link[:60]!r}")
    if args.checkpoint_dir:
        check_output_dir(args.checkpoint_dir, "--checkpoint-dir", inputs={"--store": args.store})
    meta = SubmissionMeta(
        name=args.name,
        authors=args.authors,
        link=args.link,
        venue=args.venue,
        architecture=args.architecture,
        footnote=args.footnote,
    )
    # a preset whose leaderboard attack is capped (the rehearsal): its entry is marked no result
    rehearsal = capped_iterations(get_preset(args.preset).leaderboard_attack) is not None
    kwargs = {"dataset": args.dataset, "threat_model": args.threat_model, "meta": meta,
              "rehearsal": rehearsal}  # fmt: skip
    try:
        entry = build_entry(args.store, args.model, **kwargs)
    except UserError:
        if not args.run_autoattack:
            raise
        from bench.run.leaderboard import run_autoattack

        failures = run_autoattack(args.store, args.model, args.dataset, args.threat_model,
                                  args.preset, checkpoint_dir=args.checkpoint_dir,
                                  data_dir=args.data_dir,
                                  network_ok=args.network_store)  # fmt: skip
        if failures:  # why there is no entry (the cell failed), not "no AutoAttack result"
            print(f"bench: error: the AutoAttack run failed: {failures[0]}", file=sys.stderr)
            return 1
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
