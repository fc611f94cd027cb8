"""Tests of the seed study: genotype distances, shares, intervals, tables, one tiny real run."""

from __future__ import annotations

import json

import pytest

from bench.studies.seed_study import StudyConfig, edit_distance, parameter_free_fraction
from bench.studies.seed_tables import distance_table, study_markdown, summary_table, wilson
from core.errors import UserError
from genotypes import load_genotype


def _as_dict(genotype) -> dict:
    return {
        "normal": [list(p) for p in genotype.normal],
        "reduce": [list(p) for p in genotype.reduce],
    }


def test_edit_distance_counts_changed_edges_per_node():
    darts = _as_dict(load_genotype("darts"))
    assert edit_distance(darts, darts) == 0
    swapped = json.loads(json.dumps(darts))
    swapped["normal"][0], swapped["normal"][1] = swapped["normal"][1], swapped["normal"][0]
    assert edit_distance(darts, swapped) == 0  # a node's two edges are a multiset
    changed = json.loads(json.dumps(darts))
    changed["normal"][0][0] = "avg_pool_3x3" if darts["normal"][0][0] != "avg_pool_3x3" else "none"
    changed["reduce"][7][1] = (darts["reduce"][7][1] + 1) % 5
    assert edit_distance(darts, changed) == 2
    other = _as_dict(load_genotype("pc_darts"))
    assert 0 < edit_distance(darts, other) <= 16 and edit_distance(other, darts) == edit_distance(
        darts, other
    )


def test_parameter_free_fraction_and_wilson():
    darts = load_genotype("darts")  # DARTS V2: 5 of 16 edges are skips or pools
    ops = [op for op, _ in (*darts.normal, *darts.reduce)]
    expect = sum(op in ("max_pool_3x3", "avg_pool_3x3", "skip_connect") for op in ops) / 16
    assert parameter_free_fraction(darts) == expect > 0
    low, high = wilson(50, 200)
    assert low < 25.0 < high and high - low == pytest.approx(11.9, abs=0.3)
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        wilson(0, 0)


def test_study_config_rejects_bad_input(tmp_path):
    with pytest.raises(UserError, match="unknown variant"):
        StudyConfig(out_dir=tmp_path, variants=("darts",))
    with pytest.raises(UserError, match="seed"):
        StudyConfig(out_dir=tmp_path, seeds=())
    with pytest.raises(UserError, match="n-eval"):
        StudyConfig(out_dir=tmp_path, n_eval=0)


def test_tables_from_rows():
    g1 = _as_dict(load_genotype("darts"))
    g2 = _as_dict(load_genotype("pc_darts"))
    rows = [
        {"variant": v, "seed": s, "genotype": g, "parameter_free": 0.25, "log_bound": 10.0 + s,
         "clean_correct": 150, "pgd20_correct": 40, "n_eval": 200}
        for v, g in (("racl", g1), ("pc_darts", g2)) for s in (0, 1)
    ]  # fmt: skip
    text = study_markdown(rows)
    assert "| racl | 0 |" in text and "75.0 [" in text
    assert "| racl | 2 | 0.0 | 0.25 ± 0.00 | 10.5 ± 0.7 | 75.0 ± 0.0 |" in summary_table(rows)
    d = edit_distance(g1, g2)
    assert f"| racl | 0.0 | {d:.1f} |" in distance_table(rows)


def test_cli_runs_a_tiny_study_and_resumes(tmp_path, monkeypatch, capsys):
    from bench.cli import main

    monkeypatch.setenv("RACL_BENCH_NO_PROGRESS", "1")
    out = tmp_path / "study"
    argv = ["search-seeds", "--preset", "smoke", "--variants", "pc_darts", "--seeds", "0",
            "--n-eval", "16", "--out", str(out), "--threads", "1", "--epochs", "1"]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == 1 and rows[0]["variant"] == "pc_darts" and rows[0]["n_eval"] == 16
    assert 0 <= rows[0]["pgd20_correct"] <= rows[0]["clean_correct"] <= 16
    assert rows[0]["log_bound"] > float("-inf")
    assert "| pc_darts | 0 |" in (out / "table.md").read_text()
    assert "epoch 1" in capsys.readouterr().out  # the search ran and logged
    assert main(argv) == 0  # cached: nothing searched, trained or measured again
    assert "epoch 1" not in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text()) == rows
    assert len(list((out / "checkpoints").glob("*.safetensors"))) == 1
    with pytest.raises(SystemExit):
        main([*argv, "--variants", "darts"])


def test_sign_flip_test_is_exact_and_holm_adjusts():
    from bench.studies.seed_tables import holm, sign_flip_p

    assert sign_flip_p([1.0] * 8) == pytest.approx(2 / 256)  # only all-plus and all-minus
    assert sign_flip_p([0.0, 0.0]) == 1.0
    assert sign_flip_p([1.0, -1.0, 1.0, -1.0]) == 1.0
    # 3 of 8 seeds against: 2 * (1 + 8 + 28 + 56) / 256 of equal |sum|-or-larger assignments
    assert 0.05 < sign_flip_p([1, 1, 1, 1, 1, -1, -1, -1]) <= 1.0
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_claims_table_says_differs_only_when_the_seeds_agree():
    from bench.studies.seed_tables import claims_table

    g = _as_dict(load_genotype("darts"))

    def row(variant, seed, robust):
        return {
            "variant": variant,
            "seed": seed,
            "genotype": g,
            "parameter_free": 0.25,
            "log_bound": 10.0,
            "clean_correct": 150,
            "pgd20_correct": robust,
            "n_eval": 200,
        }

    apart = [row("racl", s, 100) for s in range(8)] + [row("pc_darts", s, 40) for s in range(8)]
    text = claims_table(apart)
    line = text.split("| pc_darts | PGD-20 % |")[1].splitlines()[0]
    assert line.startswith(" 8 | +30.00 | 0.008 | 0.008 |") and "**differs**" in line
    assert "| pc_darts | clean % | 8 | +0.00 | 1.000 | - | exploratory |" in text
    mixed = [row("racl", s, 100 if s % 2 else 40) for s in range(8)]
    mixed += [row("pc_darts", s, 40 if s % 2 else 100) for s in range(8)]
    line = claims_table(mixed).split("| pc_darts | PGD-20 % |")[1].splitlines()[0]
    assert "inconclusive" in line and "differs" not in line
    # the whole family of five primary claims at 8 seeds: 5 x 2/256 = 0.039 can still differ
    variants = ("racl", "pc_darts", "random", "racl_no_cl", "racl_rho0")
    five = [row(v, s, 100 if v == "racl" else 40) for v in variants for s in range(8)]
    verdicts = [ln for ln in claims_table(five).splitlines() if "PGD-20 %" in ln]
    assert sum("**differs**" in ln for ln in verdicts) == 3  # racl_rho0's PGD-20 is exploratory


def test_random_baseline_matches_racl_parameter_count(tmp_path, monkeypatch):
    import random

    from bench.studies import seed_study

    config = StudyConfig(out_dir=tmp_path, preset="smoke")
    target_genotype = load_genotype("darts")
    monkeypatch.setattr(seed_study, "_ensure_search", lambda *a: "darts")
    name = seed_study._random_cell(config, 3, print)
    meta = json.loads((tmp_path / "genotypes" / f"{name}.json").read_text())["metadata"]
    target = seed_study.cell_parameters(target_genotype, config)
    assert meta["target_params"] == target
    assert abs(meta["params"] - target) <= seed_study.RANDOM_MATCH * target
    random_genotype = seed_study.random_genotype(random.Random(0))
    assert all(op != "none" for op, _ in random_genotype.normal + random_genotype.reduce)
    assert seed_study._random_cell(config, 3, print) == name  # cached by its key
