"""Planner, runner and CLI on a tiny preset: structure, caching, cost rules, failures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import bench.run.handlers as handlers_mod
import bench.run.runner as runner_mod
from bench.cli import main
from bench.plan.cost import plan_json
from bench.plan.experiments import get_experiments
from bench.plan.planner import plan, share_step_runs
from bench.plan.presets import PRESETS, PresetConfig
from bench.plan.units import CellGroup
from bench.results.store import ResultStore
from bench.results.summary_table import summary_table
from bench.trust.row_checks import TrustResult
from core.enums import Dataset, EvalKind

TINY = PresetConfig(
    name="smoke",
    dataset=Dataset.MNIST,
    experiments=("table1", "table3", "fig3"),
    n_eval=16,
    n_sweep=16,
    n_trust=8,
    models=("darts", "resnet18"),
    transfer_source="resnet18",
    cell_overrides={"init_channels": 2, "layers": 2},
    width_overrides={"width": 2},
    train={
        "natural": {"epochs": 1, "n_train": 64, "batch_size": 32},
        "pgd_at": {"epochs": 1, "n_train": 64, "batch_size": 32, "attack_steps": 1},
    },
    step_checkpoints=(1, 5, 20),
    eps_count=2,
    batch_size=16,
)


def _plan(names, store=None, **kw):
    return plan(get_experiments(names), TINY, store=store, calibrate=False, **kw)


def test_plan_groups_follow_the_cost_rules():
    p = _plan(["table1", "table3", "fig3"])
    keys = [c.key for c in p.cells]
    assert len(keys) == len(set(keys))
    groups = p.groups()
    # table3 among the allowed NAS models is darts alone: its diagonal is white-box
    step = [g for g in groups if g[0] == "step_sweep"]
    assert len(step) == 2  # one run per checkpoint for its 3 checkpoints and the white-box PGD-20
    for g in step:
        kinds = sorted((c.kind.value, c.steps) for c in groups[g])
        assert kinds == [("step_sweep", 1), ("step_sweep", 5), ("step_sweep", 20), ("whitebox", 20)]
    eps = [g for g in groups if g[0] == "eps_sweep"]
    assert len(eps) == 4  # (PGD, FGSM) x 2 models, each with 2 budgets
    assert all(sorted(c.eps for c in groups[g]) == [c.eps for c in groups[g]] for g in eps)
    # the PGD-20 of the sweep starts where the white-box PGD-20 starts (same slice, same seed)
    for g in step:
        k20 = next(c for c in groups[g] if c.steps == 20)
        white = [c for c in p.cells if c.kind is EvalKind.WHITEBOX and c.target == k20.target
                 and c.spec.name == "pgd" and c.steps == 20]  # fmt: skip
        assert white and white[0].seed == k20.seed
    trust = [c for c in p.cells if c.experiments == ["trust"]]
    assert len(trust) == len(p.refs) and all(c.eps == 0.5 for c in trust)


def _shared(p):
    """(model, attack label) of the white-box cells a step sweep's run computes."""
    return sorted((c.target.model, c.spec.label()) for c in p.cells if _in_sweep(c))


def _in_sweep(cell) -> bool:
    return cell.kind is EvalKind.WHITEBOX and cell.group.kind is EvalKind.STEP_SWEEP


def test_whitebox_pgd_joins_only_a_step_sweep_that_runs_its_prefix():
    both = [("darts", "PGD-20"), ("resnet18", "PGD-20")]
    assert _shared(_plan(["table1", "fig3"])) == both
    # ad-hoc PGD-5 is the 5-step prefix too; PGD-30 is longer than the sweep's 20 steps, and
    # the early-stopping option is another attack
    attacks = ["pgd5", "pgd30", "pgd20(best_iterate=True)"]
    p = plan(get_experiments(["fig3"]), TINY, models=["darts"], attacks=attacks, calibrate=False)
    assert _shared(p) == [("darts", "PGD-5")]
    # the sweep reads other images than the white-box cells: nothing shared
    other = PresetConfig(**{**TINY.__dict__, "n_sweep": 8})
    assert _shared(plan(get_experiments(["table1", "fig3"]), other, calibrate=False)) == []
    # another step size, budget or attack seed is another run
    p = _plan(["table1", "fig3"])
    white = next(c for c in p.cells if _in_sweep(c))
    own = CellGroup(EvalKind.WHITEBOX, white.target.hash, white.data_slice, white.spec.key())
    variants = [
        dataclasses.replace(white, spec=dataclasses.replace(white.spec, step_size=0.05)),
        dataclasses.replace(white, spec=dataclasses.replace(white.spec, eps=0.2)),
        dataclasses.replace(white, seed=white.seed + 1),
        dataclasses.replace(white),  # the control: the same cell joins again
    ]
    variants = [dataclasses.replace(v, group=own) for v in variants]
    share_step_runs([*p.cells, *variants])
    assert [v.group.kind for v in variants] == [EvalKind.WHITEBOX] * 3 + [EvalKind.STEP_SWEEP]
    assert variants[-1].group == white.group


def test_plan_matrix_and_transfer_share_one_generation_per_source():
    p = plan(get_experiments(["table3"]), TINY, models=None, calibrate=False)
    tiny_nas = PresetConfig(**{**TINY.__dict__, "models": ("darts", "pc_darts", "nasnet")})
    p = plan(get_experiments(["table3"]), tiny_nas, calibrate=False)
    groups = p.groups()
    transfer = [g for g in groups if g[0] == "transfer"]
    assert len(transfer) == 3  # one generation per source
    for g in transfer:
        kinds = sorted(c.kind.value for c in groups[g])
        assert kinds == ["transfer", "transfer", "whitebox"]  # diagonal from the same run
        assert len({c.seed for c in groups[g]}) == 1


def test_plan_skips_unavailable_models_and_plans_searches():
    free = PresetConfig(**{**TINY.__dict__, "models": None})
    p = plan(get_experiments(["table1"]), free, models=["robnet_medium", "darts"],
             calibrate=False)  # fmt: skip
    assert [(s.model, s.experiment) for s in p.skipped] == [("robnet_medium", "table1")]
    p = plan(get_experiments(["table5"]), free, calibrate=False)
    assert len(plan_json(p)["needs_search"]) == 5 and p.missing


def test_execute_caches_and_reproduces(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    p = _plan(["table1", "fig3"], store)
    summary = runner_mod.execute(p, store, "cpu", progress=False)
    assert summary.failed == 0 and summary.computed == len(p.cells) and summary.exit_code == 0
    rows = {r["key"]: r for r in store.rows(decode_per_sample=True)}
    assert len(rows) == len(p.cells)
    for c in p.cells:
        row = rows[c.key]
        assert row["n"] == c.n and len(row["per_sample"]) == c.n
        assert row["correct"] == int(row["per_sample"].sum())
        assert row["params"] > 0 and row["flops"] > 0  # the evaluated model's capacity
        # the cell's effort (0 where its predictions were made for an earlier cell and reused)
        assert row["forward_passes"] >= 0 and row["backward_passes"] >= 0
    # robust correctness implies clean correctness, per sample
    clean = {(r["checkpoint"], r["data_slice"]): r["per_sample"] for r in rows.values()
             if r["kind"] == "clean"}  # fmt: skip
    for r in rows.values():
        ref = clean.get((r["checkpoint"], r["data_slice"]))
        if r["kind"] != "clean" and ref is not None:
            assert not (r["per_sample"] & ~ref).any()
    # effort: PGD-k spends k backward passes per attacked image and k + 1 forward (the last
    # iterate's verdict), k + 2 where the group also computed the clean predictions
    checked = 0
    for r in rows.values():
        ref = clean.get((r["checkpoint"], r["data_slice"]))
        if ref is None:  # a slice without a clean cell of its own
            continue
        attacked = int(ref.sum())
        if r["kind"] in ("whitebox", "step_sweep") and r["attack"] == "pgd":
            checked += 1
            assert round(r["backward_passes"] * r["n"]) == r["steps"] * attacked
            extra = round(r["forward_passes"] * r["n"]) - (r["steps"] + 1) * attacked
            assert extra in (0, r["n"]), (r["kind"], r["steps"], extra)
        if r["kind"] == "clean":
            assert r["backward_passes"] == 0.0 and r["forward_passes"] <= 1.0
    assert checked >= 3
    # iteration sweep at 20 == white-box PGD-20 (one run, prefix property, same seed)
    for c in p.cells:
        if c.kind is EvalKind.STEP_SWEEP and c.steps == 20:
            white = next(w for w in p.cells if w.kind is EvalKind.WHITEBOX and w.steps == 20
                         and w.target == c.target and w.data_slice == c.data_slice)  # fmt: skip
            np.testing.assert_array_equal(rows[c.key]["per_sample"], rows[white.key]["per_sample"])
    assert summary.trust and {t.check for t in summary.trust} >= {"robust_le_clean"}
    assert store.trust_rows(summary.run_id)
    run = store.runs()[-1]
    timings = json.loads(run["summary_json"])["timings"]
    assert run["status"] == "ok" and timings["train_s"] > 0 and "whitebox_s" in timings
    again = _plan(["table1", "fig3"], store)
    assert again.missing == []
    assert runner_mod.execute(again, store, "cpu", progress=False).computed == 0
    store.close()


def test_shared_whitebox_rows_equal_their_own_runs(tmp_path, monkeypatch):
    """A white-box PGD-20 computed by the step sweep's run is the row its own run writes."""
    ckpt = tmp_path / "checkpoints"
    pgd_at = {"epochs": 1, "n_train": 512, "batch_size": 32, "attack_steps": 1, "lr": 0.1}
    wide = dataclasses.replace(
        TINY, n_eval=64, n_sweep=64, models=("resnet18",), width_overrides={"width": 4},
        train={"pgd_at": pgd_at}, n_indicator=8, n_mono=8, n_gap=16, gap_targets=1,
    )  # fmt: skip

    def rows(name):
        store = ResultStore(tmp_path / f"{name}.db")
        # a small budget, so that PGD-1 and PGD-20 leave different images correct
        exps = get_experiments(["fig3"])
        p = plan(exps, wide, store=store, calibrate=False, eps=0.05, attacks=["pgd5", "pgd20"])
        runner_mod.execute(p, store, "cpu", progress=False, checkpoint_dir=ckpt)
        out = {r["key"]: r["per_sample"] for r in store.rows(decode_per_sample=True)}
        store.close()
        return p, out

    shared_plan, shared = rows("shared")
    assert _shared(shared_plan) == [("resnet18", "PGD-20"), ("resnet18", "PGD-5")]
    monkeypatch.setattr("bench.plan.planner.share_step_runs", lambda cells: None)
    alone_plan, alone = rows("alone")
    assert _shared(alone_plan) == []
    assert shared.keys() == alone.keys()
    sweeps = {}
    for c in shared_plan.cells:
        if c.kind is EvalKind.STEP_SWEEP:
            sweeps.setdefault(c.target.model, {})[c.steps] = shared[c.key]
    for by_steps in sweeps.values():  # the iterates differ: a wrong one would be caught
        assert (by_steps[1] != by_steps[20]).any()
    for key, bits in shared.items():
        np.testing.assert_array_equal(bits, alone[key], err_msg=key)


def test_failures_are_rows_and_are_retried(tmp_path, monkeypatch):
    store = ResultStore(tmp_path / "r.db")
    p = _plan(["table1"], store, models=["darts"])

    def boom(*args, **kwargs):
        raise RuntimeError("attack exploded")

    monkeypatch.setattr(handlers_mod, "whitebox_correct", boom)
    summary = runner_mod.execute(p, store, "cpu", progress=False)
    n_white = sum(c.kind is EvalKind.WHITEBOX for c in p.cells)
    assert summary.failed == n_white and summary.exit_code == 1
    assert summary.computed == len(p.cells) - n_white
    errors = [r for r in store.rows() if r["error"]]
    assert len(errors) == n_white and "attack exploded" in errors[0]["error"]
    assert store.runs()[-1]["status"] == "failed"
    monkeypatch.undo()
    retry = _plan(["table1"], store, models=["darts"])
    assert len(retry.missing) == n_white
    assert runner_mod.execute(retry, store, "cpu", progress=False).computed == n_white
    assert not [r for r in store.rows() if r["error"]]
    store.close()


def test_summary_table_flags_failed_trust():
    rows = [
        {"model": "darts", "training": "pgd_at", "dataset": "mnist", "kind": "clean",
         "attack": None, "eps": None, "steps": None, "accuracy": 90.0, "n": 10},
        {"model": "darts", "training": "pgd_at", "dataset": "mnist", "kind": "whitebox",
         "attack": "pgd", "eps": 8 / 255, "steps": 20, "accuracy": 95.0, "n": 10},
    ]  # fmt: skip
    bad = TrustResult("robust_le_clean", "darts", False, "PGD 95% > clean 90%", "mnist", "pgd_at")
    text = summary_table(rows, [bad])
    assert "PGD-20@8/255" in text and "FAIL(robust_le_clean)" in text and "95.0" in text


@pytest.fixture
def tiny_preset(monkeypatch):
    monkeypatch.setitem(PRESETS, "smoke", TINY)


def test_cli_dry_run_json_and_errors(tmp_path, capsys, tiny_preset):
    store = str(tmp_path / "r.db")
    args = ["run", "--preset", "smoke", "--store", store, "--experiment", "table1"]
    assert main([*args, "--dry-run", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dry_run"] and info["cached"] == 0 and info["to_compute"] == info["cells"] > 0
    assert info["estimate"]["total_s"] > 0
    assert not Path(store).exists()  # a dry run computes nothing and creates no store
    for bad, message in [
        (["--experiment", "table9"], "unknown experiment"),
        (["--models", "dartz"], "unknown model"),
        (["--eps", "3"], "eps must lie in [0, 1]"),
        (["--dataset", "imagenet"], "unknown dataset"),
    ]:
        assert main(["run", "--preset", "smoke", "--store", store, *bad, "--dry-run"]) == 2
        assert message in capsys.readouterr().err
    assert main(["run", "--preset", "nope", "--store", store, "--dry-run"]) == 2


def test_cli_adhoc_run_then_results(tmp_path, capsys, tiny_preset):
    store = str(tmp_path / "r.db")
    args = ["run", "--preset", "smoke", "--store", store, "--models", "resnet18",
            "--attacks", "fgsm,torchattacks:FGSM", "--training", "natural", "--json",
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["computed"] == 4 and first["failed"] == 0  # clean, 2 attacks, trust cell
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["computed"] == 0
    assert main([*args, "--fresh"]) == 0
    assert json.loads(capsys.readouterr().out)["computed"] == 4
    assert main(["results", "--store", store, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4
    for r in rows:
        assert {"model", "dataset", "training", "attack", "eps", "steps", "source", "n",
                "accuracy", "preset", "kind"} <= set(r)  # fmt: skip
    fgsm = [r for r in rows if r["attack"] in ("fgsm", "torchattacks:FGSM")]
    assert len(fgsm) == 2 and fgsm[0]["accuracy"] == pytest.approx(fgsm[1]["accuracy"])


def test_adhoc_models_outside_the_presets_allowlist_are_planned(tiny_preset):
    # the preset's model list scales the paper experiments; a model the user names explicitly
    # (e.g. a freshly searched genotype) is planned all the same
    assert "pc_darts" not in TINY.models
    adhoc = plan([], TINY, models=["pc_darts"], attacks=["fgsm"], calibrate=False)
    assert {c.target.model for c in adhoc.cells} == {"pc_darts"}
    paper = plan(get_experiments(["table1"]), TINY, models=["pc_darts"], calibrate=False)
    assert not paper.cells


def test_strict_exit_codes_and_the_json_carry_the_failures():
    from bench.run.summary import RunSummary

    bad = TrustResult("autoattack_gap", "darts", False, "gap +9 points", "mnist", "pgd_at")
    good = TrustResult("eps_monotone", "darts", True, "1 comparison ok", "mnist", "pgd_at")
    summary = RunSummary(run_id=1, trust=[good])
    assert summary.exit_code == summary.strict_exit_code() == 0
    summary.trust.append(bad)
    assert summary.exit_code == 0 and summary.strict_exit_code() == 3
    info = summary.to_json()
    assert info["trust_failed"] == 1
    assert info["trust_failed_by_model"] == {"darts/pgd_at/mnist": ["autoattack_gap"]}
    summary.failed = 1
    assert summary.strict_exit_code() == 1  # failed cells come first


def test_summary_table_shows_indicator_counts():
    row = {
        "model": "darts",
        "training": "pgd_at",
        "dataset": "mnist",
        "label": "PGD-20",
        "eps": 0.3,
        "counts": {"silent_success": [3, 30], "incomplete_optimization": None},
    }
    text = summary_table([], [], [row])
    assert "darts/pgd_at/mnist   PGD-20@0.3    3/30" in text and "silent" in text
    assert summary_table([], [], []) == summary_table([], [])


def test_run_passes_its_save_interval_to_training(tmp_path, capsys, tiny_preset, monkeypatch):
    import bench.training.trainer as training_mod

    seen = []
    real = training_mod.ensure_trained

    def spy(*args, **kwargs):
        seen.append(kwargs.get("save_every_s"))
        return real(*args, **kwargs)

    monkeypatch.setattr(training_mod, "ensure_trained", spy)
    args = ["run", "--preset", "smoke", "--store", str(tmp_path / "r.db"), "--models",
            "resnet18", "--attacks", "fgsm", "--training", "natural", "--json", "--no-progress",
            "--save-every-min", "0.5"]  # fmt: skip
    assert main(args) == 0
    assert seen == [30.0]
