"""``bench zoo``: list the model zoo with parameter counts at paper scale (CIFAR-10).

Parameter counts exclude the auxiliary head, as in the DARTS family of papers, and are computed
on the ``meta`` device (no memory, a fraction of a second per model).
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "zoo",
        help="list the model zoo (parameters at paper scale, paper numbers, availability)",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--model", metavar="NAME", help="show one model in detail")
    parser.set_defaults(func=run)


def zoo_rows(names: list[str] | None = None) -> list[dict[str, Any]]:
    """One JSON-ready row per zoo entry (all entries, or ``names``)."""
    import models

    infos = [models.get_model_info(n) for n in names] if names else models.list_models()
    aliases = {target: alias for alias, target in models.ALIASES.items()}
    rows = []
    for info in infos:
        params = models.paper_scale_params_m(info.name) if info.available else None
        rows.append(
            {
                "name": info.name,
                "family": info.family,
                "params_m": None if params is None else round(params, 6),
                "paper_params_m": info.paper_params_m,
                "available": info.available,
                "reason": info.reason,
                "source": info.source,
                "genotype": info.genotype,
                "alias": aliases.get(info.name),
                "defaults": dict(info.defaults),
                "note": info.note,
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width text table of :func:`zoo_rows`."""

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    header = ("name", "family", "params(M)", "paper(M)", "status", "source")
    body = [
        (
            row["name"] + (f" ({row['alias']})" if row["alias"] else ""),
            row["family"],
            number(row["params_m"]),
            number(row["paper_params_m"]),
            "ok" if row["available"] else f"unavailable: {row['reason']}",
            row["source"],
        )
        for row in rows
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(4)]
    lines = []
    for row in [header, *body]:
        cells = [row[i].ljust(widths[i]) if i < 2 else row[i].rjust(widths[i]) for i in range(4)]
        lines.append("  ".join([*cells, row[4], row[5] if row[4] == "ok" else ""]).rstrip())
    lines.append("params(M): CIFAR-10, paper-scale defaults (see --model NAME), no auxiliary head")
    return "\n".join(lines)


def format_detail(row: dict[str, Any]) -> str:
    """A ``key: value`` view of one row."""
    return "\n".join(f"{key}: {json.dumps(value) if isinstance(value, dict) else value}"
                     for key, value in row.items())  # fmt: skip


def run(args: argparse.Namespace) -> int:
    rows = zoo_rows([args.model] if args.model else None)
    if args.json:
        print(json.dumps(rows, indent=1))
    elif args.model:
        print(format_detail(rows[0]))
    else:
        print(format_table(rows))
    return 0
