"""``bench zoo``: the table, ``--json`` and the ``--model`` detail view."""

from __future__ import annotations

import json

import models
from bench.cli import main


def test_zoo_json_lists_every_model(capsys):
    assert main(["zoo", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {row["name"]: row for row in rows}
    assert set(by_name) == {info.name for info in models.list_models()}
    for row in rows:
        assert {"name", "family", "params_m", "paper_params_m", "available", "reason"} <= set(row)
        if row["available"]:
            assert isinstance(row["params_m"], float) and row["params_m"] > 0
            assert row["reason"] is None
    assert by_name["darts"]["params_m"] == 3.349342
    resnet = by_name["resnet18"]
    assert resnet["family"] == "resnet" and resnet["paper_params_m"] == 11.2
    medium = by_name["robnet_medium"]
    assert medium["params_m"] is None and not medium["available"]
    assert "never published" in medium["reason"] and medium["paper_params_m"] == 5.7


def test_zoo_table(capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["name", "family", "params(M)", "paper(M)"]
    darts = next(line for line in lines if line.startswith("darts "))
    assert "3.35" in darts and "3.30" in darts and " ok " in darts
    assert "racl_published (racl)" in out
    assert "unavailable: RobNet-medium" in out


def test_zoo_model_detail(capsys):
    assert main(["zoo", "--model", "racl"]) == 0
    out = capsys.readouterr().out
    assert "name: racl_published" in out and '"init_channels": 36' in out


def test_zoo_unknown_model_exits_2(capsys):
    assert main(["zoo", "--model", "dartz"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: unknown model 'dartz'; closest: darts")
    assert len(err.strip().splitlines()) == 1
