"""bench report: golden tables from the fixture store, every output file, orientation, flags."""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.report import ReportOptions, build_report
from bench.report.agreement import Tau
from bench.report.loading import load_store
from bench.report.paper import NameMap
from bench.report.render import to_markdown
from bench.report.scope import ReportContext
from bench.report.sweeps import load_sweep
from bench.report.table_model import Cell, cell_text, format_eps
from core.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures"
STORE = FIXTURES / "report_store.sqlite"
GOLDEN = FIXTURES / "report_store.golden"
SCRIPT = FIXTURES / "make_report_store.py"
TABLES = ("table1_with_at", "table1_without_at", "table2", "table3", "table4", "table5")
FIGURES = ("figure3a", "figure3b", "figure3c", "transfer_heatmap")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return build_report(STORE, out)


def load_fixture_script():
    spec = importlib.util.spec_from_file_location("make_report_store", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(report, key):
    return next(t for t in report.tables if t.key == key)


def _golden_files():
    names = [f"{t}.{ext}" for t in TABLES for ext in ("md", "tex", "csv")]
    return [*names, "agreement.md"]


def test_fixture_store_regenerates_golden_tables(report):
    if os.environ.get("RACL_UPDATE_GOLDEN") == "1":  # regenerate after an intended change
        GOLDEN.mkdir(exist_ok=True)
        for name in _golden_files():
            src = report.out_dir / ("tables" if name != "agreement.md" else "") / name
            shutil.copyfile(src, GOLDEN / name)
    for name in _golden_files():
        produced = report.out_dir / ("tables" if name != "agreement.md" else "") / name
        assert produced.read_text() == (GOLDEN / name).read_text(), name


def test_fixture_script_rebuilds_the_same_store_content(tmp_path):
    fresh = load_fixture_script().make_store(tmp_path / "fresh.sqlite")
    with sqlite3.connect(STORE) as b:  # the committed store keeps its older schema's columns
        columns = [r[1] for r in b.execute("PRAGMA table_info(results)")]
    query = f"SELECT {', '.join(columns)} FROM results ORDER BY key"
    with sqlite3.connect(fresh) as a, sqlite3.connect(STORE) as b:
        rows_a = [r for r in a.execute(query)]
        rows_b = [r for r in b.execute(query)]
    assert rows_a == rows_b and len(rows_a) == 202


def test_every_table_and_figure_file_is_written(report):
    for key in TABLES:
        for ext in ("md", "tex", "csv"):
            path = report.out_dir / "tables" / f"{key}.{ext}"
            assert path.stat().st_size > 200, path
    for key in FIGURES:
        png = (report.out_dir / "figures" / f"{key}.png").read_bytes()
        pdf = (report.out_dir / "figures" / f"{key}.pdf").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
        assert pdf[:5] == b"%PDF-"
    for name in ("index.md", "index.html", "agreement.md"):
        assert (report.out_dir / name).stat().st_size > 1000
    # the fixture store predates effort accounting (schema 6): only the effort view is skipped
    assert dict(report.skipped_figures).keys() == {"figure3a_effort"}
    assert not [t for t in report.tables if t.skipped]


def test_report_is_deterministic(report, tmp_path):
    again = build_report(STORE, tmp_path / "again")
    assert len(again.files) == len(report.files) == 6 * 3 + 4 * 2 + 4  # + checks.md
    for path in report.files:
        twin = tmp_path / "again" / path.relative_to(report.out_dir)
        assert twin.read_bytes() == path.read_bytes(), path.name


def test_table3_rows_are_sources_columns_targets(report):
    table = _table(report, "table3")
    labels = [r.label for r in table.rows]
    assert labels == table.columns == ["amoebanet", "nasnet", "darts", "pc_darts", "racl_published"]
    racl, amoeba = labels.index("racl_published"), labels.index("amoebanet")
    # The fixture's matrix is asymmetric: racl_published -> amoebanet = 71, the reverse = 96.
    assert table.rows[racl].cells[amoeba].ours == pytest.approx(71.0)
    assert table.rows[amoeba].cells[racl].ours == pytest.approx(96.0)
    # paper's orientation too: source AmoebaNet -> target RACL = 69.19, RACL -> AmoebaNet = 64.99
    assert table.rows[amoeba].cells[racl].paper == pytest.approx(69.19)
    assert table.rows[racl].cells[amoeba].paper == pytest.approx(64.99)
    with open(report.out_dir / "tables" / "table3.csv") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    by_source = {r["row"]: r for r in rows}
    assert by_source["racl_published"]["amoebanet_ours"] == "71.00"
    # the diagonal is the white-box PGD-10 of the model itself
    assert table.rows[amoeba].cells[amoeba].ours == pytest.approx(81.0)


def test_cells_show_ours_paper_and_difference(report):
    table = _table(report, "table1_with_at")
    row = next(r for r in table.rows if r.label == "racl_published")
    assert row.paper_row == "racl"
    assert cell_text(row.cells[1]) == "93.0 [86, 97] (57.4, +35.6)"  # FGSM: 93.0 vs paper 57.44
    frame = pd.read_csv(report.out_dir / "tables" / "table1_with_at.csv", comment="#")
    racl = frame[frame["row"] == "racl_published"].iloc[0]
    assert racl["FGSM_ours"] == 93.0 and racl["FGSM_paper"] == 57.44
    assert racl["FGSM_diff"] == pytest.approx(35.56)
    assert racl["FGSM_n"] == 100 and racl["FGSM_seeds"] == 1
    # darts PGD20 is 84/100: Wilson 95 % = [75.58, 89.90] (hand-computed in test_report_stats)
    darts = frame[frame["row"] == "darts"].iloc[0]
    assert (darts["PGD20_ci_low"], darts["PGD20_ci_high"]) == (75.58, 89.90)
    tex = (report.out_dir / "tables" / "table1_with_at.tex").read_text()
    assert "84.0 & [75.6, 89.9] & 44.9 (+39.1)" in tex


def test_headers_state_dataset_preset_images_and_comparability(report):
    header = "\n".join(_table(report, "table1_with_at").header)
    assert "MNIST" in header and "preset: demo" in header and "eps = 0.3" in header
    assert "Test images per cell: 100" in header and "PGD20: 20 step(s), step size 0.01" in header
    assert "not comparable in absolute terms" in header


def test_trust_failures_mark_cells_and_earlier_failures_that_later_passed_do_not(report):
    table = _table(report, "table1_with_at")
    marks = {r.label: {m for c in r.cells for m in c.marks} for r in table.rows}
    assert marks["pc_darts"] and not marks["darts"] and not marks["racl_published"]
    assert any("robust_le_clean" in f and "pc_darts" in f for f in table.footnotes)
    md = (report.out_dir / "tables" / "table1_with_at.md").read_text()
    assert "82.0 [73, 88] (41.9, +40.1) †1" in md


def test_failed_cell_is_shown_with_its_error(report):
    table = _table(report, "table1_without_at")
    robnet = next(r for r in table.rows if r.label == "robnet_small")
    mim = robnet.cells[table.columns.index("MIM")]
    assert mim.failed and mim.ours is None and mim.marks
    assert any("out of memory" in f for f in table.footnotes)


def test_table4_maps_racl_training_rows_and_spans_datasets(report):
    table = _table(report, "table4")
    assert table.columns == ["mnist", "fashion_mnist"]
    rows = {r.label: r for r in table.rows}
    at = rows["racl_published / PGD-AT"]
    assert at.paper_row == "racl" and at.cells[0].paper == pytest.approx(99.5)
    assert at.cells[1].ours == pytest.approx(78.0)  # fashion_mnist at its own eps (0.1)
    assert rows["racl_published / TRADES"].paper_row == "trades"


def test_table5_maps_ablation_names_to_paper_rows(report):
    table = _table(report, "table5")
    assert [r.paper_row for r in table.rows] == [
        "without_cl",
        "eta0.9_rho0.01",
        "eta0.9_rho0.0001",
        "eta0.7_rho0.001",
        "eta0.9_rho0.001",
    ]


def test_agreement_has_kendall_tau_and_claims(report):
    text = (report.out_dir / "agreement.md").read_text()
    taus = {(t.table, t.column): t for t in report.taus}
    assert taus[("table5", "PGD10")].tau == pytest.approx(1.0)
    assert taus[("table4", "fashion_mnist")].text() == "n/a"  # no paper values
    claims = {c.text: c for c in report.claims}
    table4 = next(c for c in report.claims if "Table 4" in c.where)
    # fashion_mnist: TRADES 80 > PGD-AT 78 in the fixture, 2 discordant images: p = 0.5
    assert table4.ours == "inconclusive" and "p=0.500" in table4.detail
    asymmetry = next(c for c in report.claims if "transfer more strongly" in c.text)
    assert asymmetry.ours == "held" and "(p<0.001)" in asymmetry.detail  # 71 vs 96
    assert all(c.paper in ("held", "-", "not run") for c in claims.values())
    assert "Kendall" in text and "| held |" in text and "McNemar" in text
    lo, hi = taus[("table1_with_at", "PGD20")].ci
    assert lo <= taus[("table1_with_at", "PGD20")].tau <= hi


def test_tau_interval_says_when_it_spans_zero():
    assert Tau("t", "c", 0.33, 4, (-0.33, 0.67)).ci_text() == "[-0.33, +0.67] (spans 0)"
    assert Tau("t", "c", 0.67, 4, (0.33, 1.0)).ci_text() == "[+0.33, +1.00]"
    assert Tau("t", "c", None, 2).ci_text() == "n/a"


def test_sweep_points_carry_their_band(report):
    ctx = ReportContext.build(load_store(STORE), report.scope, NameMap({}))
    series = load_sweep(ctx, "figure3a").series
    assert series and all(s.low and s.high for s in series)
    for s in series:
        assert all(lo <= y <= hi for lo, y, hi in zip(s.low, s.y, s.high, strict=True))


def test_index_pages_hold_environment_tables_and_embedded_figures(report):
    md = (report.out_dir / "index.md").read_text()
    assert "fixture0" in md and "attack 340.2 s" in md and "2.13.0" in md
    assert "![Figure 3a" in md
    html = (report.out_dir / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    assert "<caption>Table 3: transferability" in html and "<script" not in html


def _store_without_transfer(tmp_path):
    path = tmp_path / "partial.sqlite"
    shutil.copyfile(STORE, path)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM results WHERE kind IN ('transfer', 'step_sweep')")
    return path


def test_missing_rows_skip_tables_and_figures_with_a_reason(tmp_path):
    report = build_report(_store_without_transfer(tmp_path), tmp_path / "out")
    skipped = {t.key: t.skipped for t in report.tables if t.skipped}
    assert set(skipped) == {"table2", "table3"}
    assert "transfer" in skipped["table3"]
    assert dict(report.skipped_figures).keys() == {"figure3a", "figure3a_effort",
                                                   "transfer_heatmap"}  # fmt: skip
    index = (tmp_path / "out" / "index.md").read_text()
    assert "- table3: skipped (no transfer-matrix rows" in index
    assert not (tmp_path / "out" / "tables" / "table3.md").exists()


def test_explicit_model_map_compares_a_searched_genotype(tmp_path):
    path = tmp_path / "renamed.sqlite"
    shutil.copyfile(STORE, path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE results SET model = 'my_search' WHERE model = 'racl_published'")
    options = ReportOptions(model_map={"my_search": "racl"}, figures=False)
    report = build_report(path, tmp_path / "out", options)
    row = next(r for r in _table(report, "table1_with_at").rows if r.label == "my_search")
    assert row.paper_row == "racl" and row.cells[1].paper == pytest.approx(57.44)


def test_bad_store_and_scope_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no results store"):
        build_report(tmp_path / "missing.sqlite", tmp_path / "out")
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database at all, just text" * 10)
    with pytest.raises(UserError):
        build_report(junk, tmp_path / "out")
    with pytest.raises(UserError, match="no results for dataset 'cifar10'"):
        build_report(STORE, tmp_path / "out", ReportOptions(dataset="cifar10"))


def test_cli_report_and_exit_code_2(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["report", "--store", str(STORE), "--out", str(out), "--no-figures"]) == 0
    assert (out / "tables" / "table1_with_at.tex").exists()
    assert main(["report", "--store", str(tmp_path / "none.db"), "--out", str(out)]) == 2
    assert "bench: error: no results store" in capsys.readouterr().err
    assert main(["report", "--store", str(STORE), "--out", str(out), "--map", "bad"]) == 2


def test_cell_text_and_eps_formatting():
    assert cell_text(Cell(47.2, 49.3)) == "47.2 (49.3, -2.1)"
    assert cell_text(Cell(47.2, None)) == "47.2 (-)"
    assert cell_text(Cell(None, 49.3)) == "- (49.3)"
    assert cell_text(Cell(None, None, failed=True)) == "failed"
    assert cell_text(Cell(1.93, 1.93)) == "1.9 (1.9, +0.0)"
    assert cell_text(Cell(47.2, 49.3, ci=(40.3, 54.2))) == "47.2 [40, 54] (49.3, -2.1)"
    assert format_eps(8 / 255) == "8/255" and format_eps(0.3) == "0.3" and format_eps(0.1) == "0.1"


def test_latex_is_booktabs_and_escaped(report):
    tex = (report.out_dir / "tables" / "table3.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "racl\\_published" in tex and "racl_published" not in tex
    md = to_markdown(_table(report, "table3"))
    assert md.count("\n|") == 2 + 5
