"""Rewrite bench/report/robustbench_model_info.json from a checkout of RobustBench/robustbench.

Usage: ``python scripts/model_info_fields.py CHECKOUT`` (a git clone of
https://github.com/RobustBench/robustbench). It reads every
``model_info/<dataset>/<Linf|L2>/*.json`` of the checkout's HEAD (the corruptions leaderboards
have other fields and are left out) and records, per field, how many entries carry it and with
which JSON types, the field order of the entries, and the commit it read: the leaderboard's
current field set, which robustbench's pip release (1.1.1) does not know in full (it lacks
``unreliable`` and ``external``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "bench" / "report" / "robustbench_model_info.json"
TYPE_NAMES = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}


def _git(checkout: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(checkout), *args], check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


def collect(checkout: Path) -> dict:
    """The field set of the checkout's threat-model entries (see the module docstring)."""
    files = sorted(checkout.glob("model_info/*/*/*.json"))
    files = [f for f in files if f.parent.name in ("Linf", "L2")]
    counts: Counter[str] = Counter()
    types: dict[str, set[str]] = defaultdict(set)
    order: list[str] = []
    for path in files:
        entry = json.loads(path.read_text(encoding="utf-8"))
        for name, value in entry.items():
            counts[name] += 1
            types[name].add(TYPE_NAMES[type(value)])
            if name not in order:
                order.append(name)
    fields = {
        name: {
            "entries": counts[name],
            "types": sorted(types[name]),
            "required": counts[name] == len(files),
        }  # fmt: skip
        for name in order
    }
    return {
        "repository": "https://github.com/RobustBench/robustbench",
        "commit": _git(checkout, "rev-parse", "HEAD"),
        "commit_date": _git(checkout, "log", "-1", "--format=%cI"),
        "read": "model_info/<dataset>/<Linf|L2>/*.json (corruptions leaderboards left out)",
        "entries": len(files),
        "fields": fields,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0], "model_info").is_dir():
        print("usage: python scripts/model_info_fields.py ROBUSTBENCH_CHECKOUT", file=sys.stderr)
        return 2
    OUT.write_text(json.dumps(collect(Path(argv[0])), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
