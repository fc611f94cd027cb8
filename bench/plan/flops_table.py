"""Rewrite ``bench/plan/flops_table.json``: the FLOPs and leaf modules of every architecture the
presets plan, counted on the meta device (``python -m bench.plan.flops_table``; run it after a
preset or a model changes)."""

from __future__ import annotations

import json

from bench.plan.cost import TABLE, count_profile, table_key
from bench.plan.experiments import get_experiments
from bench.plan.planner import plan
from bench.plan.presets import PRESETS


def write_table() -> int:
    """Count every architecture the presets plan and write :data:`TABLE`; returns the count."""
    archs = set()
    for preset in PRESETS.values():
        p = plan(get_experiments(list(preset.experiments)), preset, calibrate=False)
        for ref in p.refs.values():
            name = "racl_published" if ref.needs_search else ref.model
            archs.add((name, ref.overrides, ref.dataset))
    table = {}
    for name, overrides, dataset in sorted(archs, key=str):
        flops, leaves = count_profile(name, overrides, dataset)
        if flops is not None:
            table[table_key(name, overrides, dataset)] = [flops, leaves]
    TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    return len(table)


if __name__ == "__main__":
    print(f"{write_table()} architectures written to {TABLE.name}")
