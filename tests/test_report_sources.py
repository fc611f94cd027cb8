"""Table 2 and Table 3 in the smoke preset's configuration: Table 2's source (PC-DARTS, trained
naturally) is also a Table 3 source (PC-DARTS, PGD-AT); each cell must read the row of its own
source checkpoint, with one image count.

The rows are those the smoke preset plans (keys, slices, checkpoints, sources), written with
made-up outcomes that differ per cell, so a cell that pooled two rows or read the wrong one shows.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import bench.run.runner as runner_mod
from bench.plan.experiments import get_experiments
from bench.plan.planner import plan
from bench.plan.presets import PRESETS
from bench.report.build import ReportOptions, build_report
from bench.results.store import ResultStore
from core.enums import EvalKind, Training


@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory):
    smoke = PRESETS["smoke"]
    cells = plan(get_experiments(smoke.experiments), smoke, calibrate=False)
    path = tmp_path_factory.mktemp("smoke") / "smoke.db"
    with ResultStore(path) as store:
        run = store.begin_run({"preset": "smoke"})
        for ref in cells.refs.values():
            store.put_checkpoint(ref.hash, model=ref.model, dataset=ref.dataset.value,
                                 training=ref.training.value)  # fmt: skip
        for cell in cells.cells:
            right = zlib.crc32(cell.key.encode()) % cell.n  # a different count per cell
            row = runner_mod.result_row(cell, run, "smoke")
            bits = np.arange(cell.n) < right
            row.update(correct=int(right), accuracy=100.0 * right / cell.n, per_sample=bits)
            store.put_result(row)
        rows = store.rows(kind="transfer", attack="pgd")
    return path, cells, rows


def _row(rows, target: str, source: str, source_training: str, cells) -> dict:
    refs = {(r.model, r.training.value): r.hash for r in cells.refs.values()}
    ckpt = refs[(source, source_training)]
    (row,) = [r for r in rows if r["model"] == target and r["source_checkpoint"] == ckpt]
    return row


def test_smoke_report_has_tables_1_2_3_each_cell_from_its_source_checkpoint(smoke_store, tmp_path):
    path, cells, rows = smoke_store
    report = build_report(path, tmp_path / "report", ReportOptions(figures=False))
    tables = {t.key: t for t in report.tables}
    for key in ("table1_with_at", "table1_without_at", "table2", "table3"):
        assert not tables[key].skipped, (key, tables[key].skipped)
    matrix = tables["table3"]
    assert matrix.columns == ["darts", "pc_darts"] and [r.label for r in matrix.rows] == [
        "darts",
        "pc_darts",
    ]
    pc_to_darts = matrix.rows[1].cells[0]
    store_row = _row(rows, "darts", "pc_darts", Training.PGD_AT.value, cells)
    assert pc_to_darts.n == store_row["n"] == 64
    assert pc_to_darts.ours == pytest.approx(store_row["accuracy"])
    blackbox = tables["table2"]
    assert "PC-DARTS" in blackbox.title and "natural" in " ".join(blackbox.header)
    darts = next(r for r in blackbox.rows if r.label == "darts")
    pgd = darts.cells[blackbox.columns.index("PGD10")]
    natural_row = _row(rows, "darts", "pc_darts", Training.NATURAL.value, cells)
    assert pgd.n == 64 and pgd.ours == pytest.approx(natural_row["accuracy"])
    assert natural_row["accuracy"] != store_row["accuracy"]  # the two sources do differ
    assert all(c.n in (None, 64) for r in matrix.rows for c in r.cells)  # never pooled to 128
    assert {c.kind for c in cells.cells if c.source is not None} == {EvalKind.TRANSFER}
