"""Bad numbers, empty strings, hostile files and names, and user code that exits are one-line
refusals (issue 33). Each case was a traceback, an "internal error", a silent default or a
written file on the code before; the store and output cases are in tests/test_reliability.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_reliability import _one_line

from bench.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "report_store.sqlite"


USER_MODELS = Path(__file__).parent / "fixtures" / "user_models.py"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["run", "--threads", "99999999999999999999", "--dry-run"], ["--threads", "[1, 1024]"]),
        (["run", "--n", "0", "--dry-run"], ["--n", "must lie in"]),
        (["run", "--dataset", "", "--dry-run"], ["--dataset is empty"]),
        (["run", "--attacks", "", "--dry-run"], ["--attacks is empty"]),
        (["run", "--model-file", "", "--dry-run"], ["--model-file is empty"]),
        (["run", "--attacks", "pgd" + "9" * 5000, "--dataset", "mnist", "--dry-run"],
         ["at most 1000000 steps"]),
        (["run", "--attacks", "pgd99999999999", "--dataset", "mnist", "--dry-run"],
         ["at most 1000000 steps"]),
        (["run", "--attacks", "torchattacks:PGD(alpha=1e999)", "--dataset", "mnist",
          "--dry-run"], ["alpha=inf is not a finite number"]),
        (["run", "--attacks", "torchattacks:PGD(steps=3,steps=4)", "--dataset", "mnist",
          "--dry-run"], ["steps is given twice"]),
        (["train", "resnet18", "--dataset", "mnist", "--epochs", "0"], ["--epochs", "[1,"]),
        (["train", "resnet18", "--dataset", "mnist", "--batch-size", "0"], ["--batch-size"]),
        (["train", "resnet18", "--dataset", "mnist", "--width", "100000000"], ["--width"]),
        (["train", "resnet18", "--dataset", "mnist", "--lr", "1e300"], ["--lr"]),
        (["search", "--preset", "smoke", "--name", "x", "--rho", "inf"], ["--rho", "finite"]),
        (["search", "--preset", "smoke", "--name", "x", "--rho", "1e308"], ["--rho"]),
        (["search", "--preset", "smoke", "--name", "x", "--log-lipschitz-target", "nan"],
         ["--log-lipschitz-target"]),
        (["search", "--preset", "smoke", "--name", "x", "--threads", "99999"], ["--threads"]),
        (["search-seeds", "--seeds", "1", "1", "--out", "{tmp}/study"], ["--seeds lists 1 twice"]),
        (["search", "--preset", "smoke", "--name", "resnet18"], ["a zoo model's name"]),
        (["run", "--attacks", "torchattacks:MultiAttack", "--dataset", "mnist", "--dry-run"],
         ["combines other attacks"]),
        (["submit", "racl_published", "--store", str(FIXTURE), "--out", "{tmp}/e.json",
          "--link", "javascript:alert(1)"], ["--link must be an http(s) address"]),
    ],
)  # fmt: skip
def test_bad_numbers_and_empty_strings_are_one_line_refusals(tmp_path, capsys, argv, words):
    argv = [part.replace("{tmp}", str(tmp_path)) for part in argv]
    try:  # argparse's refusals end in SystemExit(2), the checks' in main's return value
        code = main([*argv, "--store", str(tmp_path / "r.db")] if argv[0] == "run" else argv)
    except SystemExit as done:
        code = done.code
    assert code == 2
    _one_line(capsys, *words)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("factory", "words"),
    [("nan_logits", "NaN or infinite"), ("complex_logits", "complex64"), ("meta_logits", "meta")],
)
def test_logits_that_are_no_real_numbers_are_refused(tmp_path, capsys, factory, words):
    argv = ["run", "--model-file", f"{USER_MODELS}:{factory}", "--dataset", "mnist",
            "--attacks", "fgsm", "--n", "8", "--store", str(tmp_path / "r.db")]  # fmt: skip
    assert main(argv) == 2
    _one_line(capsys, factory, words)
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("import sys\nsys.exit(7)\n", "cannot import"),
        ("def build():\n    raise SystemExit('bye')\n", "failed: it called sys.exit('bye')"),
        ("def build():\n    raise KeyboardInterrupt\n", "failed: it raised KeyboardInterrupt"),
    ],
)
def test_user_code_that_exits_is_a_one_line_refusal_naming_the_file(
    tmp_path, capsys, source, words
):
    code = tmp_path / "mine.py"
    code.write_text(source)
    argv = ["run", "--model-file", f"{code}:build", "--dataset", "mnist", "--attacks", "fgsm",
            "--n", "4", "--store", str(tmp_path / "r.db")]  # fmt: skip
    assert main(argv) == 2  # not 7, not 130: the suite's own exit code
    _one_line(capsys, str(code), words)
    assert not (tmp_path / "r.db").exists()


def test_a_hostile_genotype_file_is_unavailable_not_a_crash(tmp_path, monkeypatch, capsys):
    import json

    (tmp_path / "deep.json").write_text('{"name": "deep", "kind": "darts", "normal": '
                                        + "[" * 200_000 + "]" * 200_000 + "}")  # fmt: skip
    (tmp_path / "bigint.json").write_text('{"name": "bigint", "kind": "darts", "normal": '
                                          '[["skip_connect", ' + "9" * 5000 + "]]}")  # fmt: skip
    (tmp_path / "huge.json").write_text(json.dumps({
        "name": "huge", "kind": "robnet", "cells": [["11"] * 14], "share": True,
        "init_channels": 4, "layers": 10**6, "source": "x"}))  # fmt: skip
    monkeypatch.setenv("RACL_GENOTYPES_PATH", str(tmp_path))
    assert main(["zoo"]) == 0  # one bad file no longer breaks the zoo for every model
    out = capsys.readouterr().out
    for name, fault in (("deep", "nested too deeply"), ("bigint", "unreadable JSON"),
                        ("huge", "layers: expected a positive int at most 1000")):  # fmt: skip
        line = next(line for line in out.splitlines() if line.startswith(name))
        assert "unavailable" in line and fault in line, line
        assert main(["run", "--models", name, "--dry-run"]) == 2
        _one_line(capsys, fault)


def test_a_malformed_torchrun_environment_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "abc")
    monkeypatch.setenv("RANK", "0")
    assert main(["run", "--dry-run", "--store", str(tmp_path / "r.db")]) == 2
    _one_line(capsys, "WORLD_SIZE='abc'")


@pytest.fixture(scope="module")
def search_data():
    from core.data import load_split

    x, y = load_split("mnist", "train", None)
    return x[:600], y[:600]


def _search(config, data, tmp_path, name="s", **kw):  # noqa: ANN001, ANN202
    from racl_search.search import run_search

    return run_search(config, *data, name=name, out_dir=tmp_path / "geno",
                      run_dir=tmp_path / "run", progress=False, log=lambda m: None,
                      **kw)  # fmt: skip


def test_search_state_that_cannot_be_true_is_refused_and_torn_files_are_not(tmp_path, search_data):
    import json

    from racl_search.config import make_config
    from racl_search.errors import SearchError

    config = make_config("smoke", epochs=2)
    assert _search(config, search_data, tmp_path, stop_after_epoch=1) is None
    state = tmp_path / "run" / "state.json"
    good = json.loads(state.read_text())
    for epoch in (-5, 10**6, 2):  # the state of a search of 2 epochs says 1 finished
        state.write_text(json.dumps({**good, "epoch": epoch}))
        with pytest.raises(SearchError, match=f"epoch {epoch + 1} of 2"):
            _search(config, search_data, tmp_path)
        assert not (tmp_path / "geno" / "s.json").exists()
    state.write_text(json.dumps(good))
    log = tmp_path / "run" / "log.jsonl"
    log.write_text(log.read_text() + '{"epoch": 9, "train_lo')  # a line cut short
    assert _search(config, search_data, tmp_path) is not None
    rows = [json.loads(line) for line in log.read_text().splitlines()]  # every line whole
    assert [r["epoch"] for r in rows] == [1, 2]
    fresh = tmp_path / "fresh"
    (fresh / "run").mkdir(parents=True)
    (fresh / "run" / "config.json").write_text("")  # a full disk's 0-byte file, no state yet
    assert _search(config, search_data, fresh) is not None


def test_a_search_that_diverges_writes_no_genotype(tmp_path, search_data, monkeypatch):
    import racl_search.search as search_mod
    from racl_search.config import make_config
    from racl_search.errors import SearchError

    run_epoch = search_mod.run_epoch

    def diverging(mods, *args, **kwargs):  # noqa: ANN001, ANN202
        out = run_epoch(mods, *args, **kwargs)
        for p in mods.arch.parameters():
            p.data.fill_(float("nan"))  # what rho = inf did to the architecture
        return out

    monkeypatch.setattr(search_mod, "run_epoch", diverging)
    with pytest.raises(SearchError, match="diverged at epoch 1"):
        _search(make_config("smoke", epochs=2), search_data, tmp_path)
    assert not (tmp_path / "geno").exists() or not list((tmp_path / "geno").iterdir())
    assert not (tmp_path / "run" / "state.json").exists()


def test_the_seed_study_cache_is_keyed_on_what_its_rows_depend_on(tmp_path):
    from bench.studies.seed_study import StudyConfig, _row_key

    base = StudyConfig(out_dir=tmp_path, n_eval=20)
    key = _row_key(base, "racl", 0)
    assert key == _row_key(StudyConfig(out_dir=tmp_path / "elsewhere", n_eval=20), "racl", 0)
    for other in (StudyConfig(out_dir=tmp_path, n_eval=40),
                  StudyConfig(out_dir=tmp_path, n_eval=20, device="cuda"),
                  StudyConfig(out_dir=tmp_path, n_eval=20, data_dir="/data")):  # fmt: skip
        assert _row_key(other, "racl", 0) != key  # --n-eval 40 no longer reads 20's rows


@pytest.mark.parametrize("stem", ["a|b", "<img src=x>", "[x](javascript:1)", "=cmd", "t`x`"])
def test_a_model_file_whose_name_carries_markup_is_refused(tmp_path, capsys, stem):
    code = tmp_path / f"{stem}.py"
    code.write_text((USER_MODELS).read_text())
    argv = ["run", "--model-file", f"{code}:small", "--dataset", "mnist", "--attacks", "fgsm",
            "--n", "4", "--store", str(tmp_path / "r.db")]  # fmt: skip
    assert main(argv) == 2
    _one_line(capsys, "rename the file")
    assert not (tmp_path / "r.db").exists()


def test_markdown_and_csv_tables_escape_hostile_names():
    import csv
    import io

    from bench.report.render import to_csv, to_markdown
    from bench.report.table_model import Cell, Row, Table

    hostile = "x|<script>alert(1)</script>[a](b)"
    table = Table(
        "t1",
        "Title",
        ["FGSM"],
        rows=[Row(hostile, None, (Cell(50.0, n=4),)), Row("=HYPERLINK(1)", None, (Cell(25.0),))],
    )
    md = to_markdown(table)
    row = next(line for line in md.splitlines() if "script" in line)
    assert row.count(" | ") == 2 and "<script>" not in row  # three cells, no raw tag
    assert "\\|" in row and "\\<script\\>" in row
    rows = list(csv.reader(io.StringIO(to_csv(table)), delimiter=","))
    labels = [r[0] for r in rows if r and not r[0].startswith("#")][1:]
    assert labels == [hostile, "'=HYPERLINK(1)"]  # the quote keeps a spreadsheet from running it


def test_a_closed_stdout_is_one_line_not_an_internal_error():
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "bench.cli", "zoo"], stderr=subprocess.PIPE,
                          text=True, preexec_fn=lambda: os.close(1), timeout=300)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "bench: error: standard output is closed; nothing to write to"
