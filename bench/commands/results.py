"""``bench results``: print every result row of a store (a table, or JSON objects with --json);
``bench results merge A.db B.db ... --out C.db`` merges stores by content key."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FIELDS = (
    "model",
    "dataset",
    "training",
    "kind",
    "attack",
    "eps",
    "steps",
    "step_size",
    "source",
    "n",
    "correct",
    "accuracy",
    "preset",
    "data_slice",
    "seed",
    "checkpoint",
    "attack_key",
    "error",
    "key",
    "params",
    "flops",
    "forward_passes",
    "backward_passes",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "results",
        help="print the rows of a results store, or merge stores (results merge ... --out)",
        description="Print the rows of --store; or `bench results merge A.db B.db ... --out "
        "C.db`: one store from several (the same key with the same verdicts is one row; a key "
        "whose verdicts differ is refused unless --prefer settles it; docs/DISTRIBUTED.md).",
    )
    p.add_argument("action", nargs="?", choices=("merge",), help="merge: merge the STOREs")
    p.add_argument("stores", nargs="*", metavar="STORE", help="stores to merge (with merge)")
    p.add_argument("--store", help="results store (SQLite file) to print")
    p.add_argument("--model", help="only this model")
    p.add_argument("--json", action="store_true", help="a JSON list of row objects")
    p.add_argument("--out", help="merge: the new store to write (never an input, never replaced)")
    p.add_argument(
        "--prefer",
        choices=("first", "newest"),
        help="merge: settle a key whose verdicts differ by the earlier store on the command line "
        "(first) or the later row (newest); recorded in the merged store's run record",
    )
    p.set_defaults(func=run)


def row_object(row: dict) -> dict:
    """The public fields of a stored row (accuracy in percent; source null unless transfer)."""
    return {name: row.get(name) for name in FIELDS}


def run(args: argparse.Namespace) -> int:
    from bench.results.format import check_rows
    from bench.results.store import ResultStore
    from bench.results.summary_table import column_label
    from core.errors import UserError

    if args.action == "merge":
        return merge(args)
    if args.stores or args.out or args.prefer:
        raise UserError("STOREs, --out and --prefer go with `bench results merge`")
    if not args.store:
        raise UserError("--store is required (or `bench results merge STORE ... --out FILE`)")
    if not Path(args.store).is_file():
        raise UserError(f"no results store at {args.store}")
    filters = {"model": args.model} if args.model else {}
    with ResultStore(args.store, readonly=True) as store:  # reading writes nothing
        stored = store.rows(**filters)
        check_rows(stored, args.store)  # an impossible row (an edited store): named, exit 2
        rows = [row_object(r) for r in stored]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        acc = "ERR " + str(r["error"]) if r["error"] else f"{r['accuracy']:6.2f}%"
        print(
            f"{r['model']:<16} {r['training']:<8} {r['dataset']:<8} {r['kind']:<10} "
            f"{column_label(r):<24} n={r['n']:<6} {acc}"
        )
    print(f"{len(rows)} rows")
    return 0


def merge(args: argparse.Namespace) -> int:
    """Merge ``args.stores`` into ``args.out``; the trust checks are computed again over the
    merged rows (as one run over all of them would), recorded under the merge's run."""

    from bench.results.merge import merge_stores
    from bench.trust import run_checks
    from core.errors import UserError

    if args.store or args.model or args.json:
        raise UserError("bench results merge takes STOREs and --out (not --store/--model/--json)")
    if not args.out:
        raise UserError("bench results merge needs --out FILE (a new store)")

    def checks(store, run_id: int) -> None:  # noqa: ANN001 - a ResultStore
        for r in run_checks(store.rows(), store.indicator_rows()):
            store.add_trust(
                run_id, r.check, model=r.model, dataset=r.dataset, training=r.training,
                detail=r.detail, passed=r.passed,
            )  # fmt: skip

    done = merge_stores(args.stores, args.out, prefer=args.prefer, argv=args.argv, finish=checks)
    c = done.counts
    print(
        f"merged {len(args.stores)} stores into {done.out}: {c['results']} result rows, "
        f"{c['checkpoints']} checkpoints, {c['indicators']} indicator rows"
    )
    if done.replaced_failed:
        print(f"{done.replaced_failed} failed rows replaced by successful ones of the same key")
    for s in done.settled:
        print(f"settled by --prefer {s['rule']}: {s['table']} {s['key']} from {s['kept']}")
    return 0
