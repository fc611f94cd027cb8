"""The seed study's tables (Markdown): one row per search, then a summary per variant.

Accuracies carry 95 % Wilson intervals (binomial, per row's test images); per-variant values
are mean and sample standard deviation over the seeds; edit distances (0 .. 16 edges) are
averaged over the seed pairs within a variant and over all cross pairs between two variants.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from typing import Any

from bench.studies.seed_study import edit_distance

Z95 = 1.959964


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion, in percent."""
    if n <= 0:
        raise ValueError("wilson needs n >= 1")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * (centre - half), 100 * (centre + half)


def _pct(correct: int, n: int) -> str:
    low, high = wilson(correct, n)
    return f"{100 * correct / n:.1f} [{low:.1f}, {high:.1f}]"


def _cell(pairs: Sequence[Sequence[Any]]) -> str:
    return ", ".join(f"{op} {i}" for op, i in pairs)


def rows_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per (variant, seed): genotype, parameter-free share, bound, accuracies."""
    lines = [
        "| variant | seed | normal cell | reduction cell | param-free | ln bound | clean % "
        "| PGD-20 % |",
        "|---|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        g = r["genotype"]
        lines.append(
            f"| {r['variant']} | {r['seed']} | {_cell(g['normal'])} | {_cell(g['reduce'])} "
            f"| {r['parameter_free']:.2f} | {r['log_bound']:.1f} "
            f"| {_pct(r['clean_correct'], r['n_eval'])} | {_pct(r['pgd20_correct'], r['n_eval'])} |"
        )
    return "\n".join(lines)


def _mean_sd(values: Sequence[float], fmt: str = ".2f") -> str:
    if len(values) < 2:
        return f"{values[0]:{fmt}}"
    return f"{statistics.mean(values):{fmt}} ± {statistics.stdev(values):{fmt}}"


def by_variant(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["variant"], []).append(r)
    return groups


def within_distances(group: Sequence[dict[str, Any]]) -> list[int]:
    pairs = itertools.combinations(group, 2)
    return [edit_distance(a["genotype"], b["genotype"]) for a, b in pairs]


def between_distances(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> list[int]:
    return [edit_distance(x["genotype"], y["genotype"]) for x in a for y in b]


def summary_table(rows: Sequence[dict[str, Any]]) -> str:
    """Per variant over seeds: within-variant distance, parameter-free share, bound, accuracy."""
    lines = [
        "| variant | seeds | edit distance within | param-free | ln bound | clean % | PGD-20 % |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for variant, group in by_variant(rows).items():
        within = within_distances(group)
        clean = [100 * r["clean_correct"] / r["n_eval"] for r in group]
        robust = [100 * r["pgd20_correct"] / r["n_eval"] for r in group]
        lines.append(
            f"| {variant} | {len(group)} | {_mean_sd(within, '.1f') if within else '-'} "
            f"| {_mean_sd([r['parameter_free'] for r in group])} "
            f"| {_mean_sd([r['log_bound'] for r in group], '.1f')} "
            f"| {_mean_sd(clean, '.1f')} | {_mean_sd(robust, '.1f')} |"
        )
    return "\n".join(lines)


def distance_table(rows: Sequence[dict[str, Any]]) -> str:
    """Mean edit distance between every two variants (diagonal: within a variant)."""
    groups = by_variant(rows)
    names = list(groups)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for a in names:
        cells = []
        for b in names:
            d = within_distances(groups[a]) if a == b else between_distances(groups[a], groups[b])
            cells.append(f"{statistics.mean(d):.1f}" if d else "-")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def study_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """All three tables, as pasted into docs/SEARCH.md."""
    return "\n\n".join([rows_table(rows), summary_table(rows), distance_table(rows)]) + "\n"
