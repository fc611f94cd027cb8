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
    parser.add_argument(
        "--match",
        metavar="params|flops[=MODEL]",
        help="the width of every model whose parameters (or FLOPs per image) come closest to "
        "MODEL's (default racl_published) at paper scale on CIFAR-10",
    )
    parser.set_defaults(func=run)


def match_rows(text: str, names: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per available zoo model: its width knob, default and matched width, counts."""
    import models
    from bench.plan.capacity_match import match_width, parse_match
    from core.enums import Dataset

    measure, reference = parse_match(text)
    infos = [models.get_model_info(n) for n in names] if names else models.list_models()
    rows = []
    for info in (i for i in infos if i.available):
        m = match_width(info.name, reference, measure, Dataset.CIFAR10)
        rows.append({"name": info.name, "measure": measure, "reference": reference,
                     "width_key": m.key, "default_width": m.base, "width": m.width,
                     "value": m.value, "target": m.target, "gap": round(m.gap, 6),
                     "within": m.within})  # fmt: skip
    return rows


def format_match(rows: list[dict[str, Any]]) -> str:
    """A text table of :func:`match_rows`."""
    if not rows:
        return "no available model"
    scale, unit = (1e6, "M") if rows[0]["measure"] == "params" else (1e6, "MFLOPs")
    header = ("name", "knob", "default", "matched", "params(M)" if unit == "M" else unit, "gap")
    body = [(r["name"], r["width_key"], str(r["default_width"]), str(r["width"]),
             f"{r['value'] / scale:.3f}", f"{100 * r['gap']:+.1f}%" + ("" if r["within"] else " !"))
            for r in rows]  # fmt: skip
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in [header, *body]]  # fmt: skip
    r0 = rows[0]
    lines.append(f"target: {r0['reference']} {r0['target'] / scale:.3f} {unit} (CIFAR-10, paper "
                 "scale, no auxiliary head); '!' = no width within 5 %")  # fmt: skip
    return "\n".join(lines)


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
    if args.match:
        matched = match_rows(args.match, [args.model] if args.model else None)
        print(json.dumps(matched, indent=1) if args.json else format_match(matched))
        return 0
    rows = zoo_rows([args.model] if args.model else None)
    if args.json:
        print(json.dumps(rows, indent=1))
    elif args.model:
        print(format_detail(rows[0]))
    else:
        print(format_table(rows))
    return 0
