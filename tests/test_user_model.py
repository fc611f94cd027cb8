"""Your own model from the CLI: train, run, report and submit a factory's model; its identity;
the one-line errors and notes when it does not fit."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bench.cli import main
from bench.training.user_model import prepare_user_model

USER_MODELS = Path(__file__).parent / "fixtures" / "user_models.py"
SMALL = f"{USER_MODELS}:small"


def _run(store: Path, *extra: str) -> list[str]:
    return ["run", "--model-file", SMALL, "--dataset", "mnist", "--n", "32", "--training",
            "natural", "--store", str(store), "--no-progress", "--json", *extra]  # fmt: skip


def test_model_file_runs_end_to_end(tmp_path, capsys, small_weights,
                                    validate_entry_with_robustbench):  # fmt: skip
    store = tmp_path / "s.db"
    args = _run(store, "--weights", str(small_weights), "--attacks", "fgsm,pgd20,autoattack")
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["failed"] == 0 and out["computed"] >= 4
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT DISTINCT model, checkpoint FROM results").fetchall()
        ckpt = conn.execute("SELECT config_json FROM checkpoints").fetchone()[0]
    assert [r[0] for r in rows] == ["user_models:small"]
    assert json.loads(ckpt)["factory"] == SMALL
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "rep"),
                 "--no-figures"]) == 0  # fmt: skip
    table = (tmp_path / "rep" / "tables" / "table1_without_at.md").read_text()
    assert "user_models:small" in table
    assert "Evaluation checks" in (tmp_path / "rep" / "index.md").read_text()
    entry_path = tmp_path / "entry.json"
    assert main(["submit", "user_models:small", "--store", str(store), "--out",
                 str(entry_path)]) == 0  # fmt: skip
    entry = json.loads(entry_path.read_text())
    assert entry["architecture"] == "user_models:small"
    assert float(entry["autoattack_acc"]) <= float(entry["clean_acc"]) > 90
    validate_entry_with_robustbench(entry)


def test_identity_is_the_weights_hash_and_the_factory_name(tmp_path, small_weights):
    first, _ = prepare_user_model(SMALL, is_file=True, weights=small_weights, dataset="mnist")
    moved = tmp_path / "elsewhere.safetensors"
    shutil.copyfile(small_weights, moved)
    same, _ = prepare_user_model(SMALL, is_file=True, weights=moved, dataset="mnist")
    assert same.identity == first.identity and same.name == "user_models:small"
    other, _ = prepare_user_model(f"{USER_MODELS}:scaled", is_file=True, weights=moved,
                                  dataset="mnist")  # fmt: skip
    assert other.identity != first.identity  # another factory, same weights
    pt = tmp_path / "state.pt"
    torch.save(load_file(str(small_weights)), pt)  # a plain state dict, read weights_only
    as_pt, _ = prepare_user_model(SMALL, is_file=True, weights=pt, dataset="mnist")
    assert as_pt.identity != first.identity  # other bytes, other checkpoint
    bare, _ = prepare_user_model(SMALL, is_file=True, weights=None, dataset="mnist")
    again, _ = prepare_user_model(SMALL, is_file=True, weights=None, dataset="mnist")
    assert bare.identity == again.identity  # the factory's own weights, seeded


def test_a_module_path_factory_and_cached_reruns(tmp_path, capsys, small_weights, monkeypatch):
    monkeypatch.syspath_prepend(str(USER_MODELS.parent))
    args = ["run", "--model", "user_models:small", "--weights", str(small_weights), "--dataset",
            "mnist", "--n", "16", "--attacks", "fgsm", "--training", "natural", "--store",
            str(tmp_path / "s.db"), "--json", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["computed"] > 0
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["computed"] == 0  # same weights: all cached


@pytest.mark.parametrize(
    ("factory", "extra", "message"),
    [
        ("tuple_out", [], "returns a tuple"),
        ("for_dataset", ["--dataset", "fashion_mnist"], "must be logits of shape (N, 10)"),
        ("nowhere", [], "no callable 'nowhere'"),
    ],
)
def test_a_model_that_does_not_fit_is_a_one_line_error(tmp_path, capsys, factory, extra, message):
    args = ["run", "--model-file", f"{USER_MODELS}:{factory}", "--attacks", "fgsm", "--dataset",
            "mnist", "--store", str(tmp_path / "s.db"), *extra]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "s.db").exists()


def test_bad_weights_and_flags_are_one_line_errors(tmp_path, capsys, small_weights):
    base = ["run", "--attacks", "fgsm", "--dataset", "mnist", "--store", str(tmp_path / "s.db")]
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a pickle")
    wrong = tmp_path / "wrong.pt"
    torch.save({"fc.weight": torch.zeros(3, 3)}, wrong)
    for extra, message in [
        (["--model-file", SMALL, "--weights", str(junk)], "weights_only=True"),
        (["--model-file", SMALL, "--weights", str(wrong)], "do not fit the model"),
        (["--model-file", SMALL, "--weights", str(tmp_path / "none.pt")], "not found"),
        (["--weights", str(small_weights)], "--weights goes with --model-file"),
        (["--model-file", f"{tmp_path}/missing.py:build"], "model file not found"),
        (["--model-file", SMALL, "--models", "darts"], "drop --models/--experiment"),
    ]:
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (extra, err)


def test_train_mode_randomness_is_noted_and_train_trains_a_factory(tmp_path, capsys):
    _, notes = prepare_user_model(f"{USER_MODELS}:in_train_mode", is_file=True, weights=None,
                                  dataset="mnist")  # fmt: skip
    assert len(notes) == 1 and "train mode" in notes[0] and "random" in notes[0]
    _, notes = prepare_user_model(f"{USER_MODELS}:noisy", is_file=True, weights=None,
                                  dataset="mnist")  # fmt: skip
    assert len(notes) == 1 and "random in eval mode" in notes[0]  # not "train mode (dropout?)"
    assert "eot=" in notes[0]
    _, notes = prepare_user_model(SMALL, is_file=True, weights=None, dataset="mnist")
    assert notes == []  # a module built in train mode without randomness: nothing to say
    assert main(["train", "darts", "--model-file", SMALL]) == 2
    assert "name one model" in capsys.readouterr().err
    args = ["train", "--model-file", SMALL, "--dataset", "mnist", "--training", "pgd_at",
            "--epochs", "1", "--n-train", "128", "--batch-size", "64", "--attack-steps", "1",
            "--no-progress", "--checkpoint-dir", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    assert "checkpoint:" in capsys.readouterr().out
    meta = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert meta["model"] == "user_models:small" and meta["training"]["training"] == "pgd_at"
    assert main(args) == 0  # cached: loaded into the factory's model, not retrained
