"""``bench results``: print every result row of a store (a table, or JSON objects with --json)."""

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
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("results", help="print the rows of a results store")
    p.add_argument("--store", required=True, help="results store (SQLite file)")
    p.add_argument("--model", help="only this model")
    p.add_argument("--json", action="store_true", help="a JSON list of row objects")
    p.set_defaults(func=run)


def row_object(row: dict) -> dict:
    """The public fields of a stored row (accuracy in percent; source null unless transfer)."""
    return {name: row.get(name) for name in FIELDS}


def run(args: argparse.Namespace) -> int:
    from bench.results.store import ResultStore
    from bench.results.summary_table import column_label
    from core.errors import UserError

    if not Path(args.store).is_file():
        raise UserError(f"no results store at {args.store}")
    filters = {"model": args.model} if args.model else {}
    with ResultStore(args.store, readonly=True) as store:  # reading writes nothing
        rows = [row_object(r) for r in store.rows(**filters)]
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
