"""Speed target: ``bench report`` on a store of 10,000 result rows in at most 10 s (CI, 2 cores).

The store is the report fixture repeated over seeds (203 rows per seed, 50 seeds = 10,150 rows),
so every table, figure and the agreement section are produced from the full row count.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import time
from pathlib import Path

import pytest

from bench.report import build_report

SCRIPT = Path(__file__).resolve().parent.parent / "fixtures" / "make_report_store.py"
SEEDS = 50
TARGET_S = 10.0


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("make_report_store", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = module.make_store(tmp_path_factory.mktemp("speed") / "big.sqlite", seeds=SEEDS)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM results").fetchone()[0] >= 10_000
    return path


def test_report_on_10k_rows(benchmark, big_store, tmp_path):
    def run():
        start = time.perf_counter()
        report = build_report(big_store, tmp_path / "out")
        return report, time.perf_counter() - start

    report, elapsed = benchmark.pedantic(run, rounds=1, iterations=1)
    assert not [t for t in report.tables if t.skipped] and len(report.figures) == 4
    print(f"\nbench report on 10k rows: {elapsed:.2f} s (target {TARGET_S} s)")
    if not benchmark.disabled:  # a speed verdict only where benchmarks are enabled
        assert elapsed <= TARGET_S, f"report took {elapsed:.1f} s on 10k rows (target {TARGET_S} s)"
