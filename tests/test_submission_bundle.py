"""bench submit --out DIR: the bundle for a zoo model and for a user's model, re-evaluated by
robustbench's own benchmark() in a process where racl-bench cannot be imported, image for
image against the store; --run-autoattack for a --model-file model; the refusals."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.report.eval_results import check_eval_results
from bench.report.submission_checks import leaderboard_check
from bench.results.format import unpack_per_sample
from core.data import eval_tensors

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SMALL = f"{FIXTURES / 'user_models.py'}:small"
BUNDLE_FILES = {"model.py", "weights.safetensors", "weights.pt", "autoattack.log", "ISSUE.md",
                "README.md", "zoo_entry.py", "SHA256SUMS"}  # fmt: skip


def _stored_bits(store: Path, model: str) -> dict[str, list[bool]]:
    with sqlite3.connect(store) as conn:
        rows = conn.execute(
            "SELECT kind, attack, per_sample, n FROM results WHERE model = ? AND n = "
            "(SELECT n FROM results WHERE model = ? AND attack = 'autoattack')",
            (model, model),
        ).fetchall()
    conn.close()
    bits = {}
    for kind, attack, blob, n in rows:
        if kind == "clean" or attack == "autoattack":
            bits["clean" if kind == "clean" else "robust"] = unpack_per_sample(blob, n).tolist()
    return bits


def _reevaluate(bundle: Path, tmp_path: Path, n: int, eps: float, batch: int) -> dict:
    """robustbench.eval.benchmark() on the bundle in a fresh process without racl-bench."""
    guard = tmp_path / "guard"
    (guard / "core").mkdir(parents=True)
    (guard / "core" / "__init__.py").write_text("")
    for name in ("robustbench_guard.py", "torchvision_guard.py"):
        shutil.copyfile(ROOT / "core" / name, guard / "core" / name)
    images = tmp_path / "images.pt"
    torch.save(eval_tensors("mnist", n), images)  # real MNIST, served by benchmark's data hook
    out = tmp_path / "reeval.json"
    args = [sys.executable, "-I", str(FIXTURES / "reevaluate_bundle.py"), str(bundle),
            str(guard), str(images), str(eps), str(batch), str(out)]  # fmt: skip
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["racl_bench_modules_before_guard"] == []  # model.py + weights alone
    assert set(result["modules"]) <= {"core", "core.robustbench_guard", "core.torchvision_guard"}
    assert "robust accuracy" in out.with_suffix(".log").read_text()  # log_path reached pyautoattack
    return result


def _check_bundle(bundle: Path, name: str) -> dict:
    files = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()}
    assert files >= BUNDLE_FILES, files
    entry = json.loads((bundle / f"model_info/mnist/Linf/{name}.json").read_text())
    assert leaderboard_check(entry).startswith("matches the leaderboard's model_info fields")
    yaml = pytest.importorskip("yaml")
    (results_file,) = (bundle / ".eval_results").glob("*.yaml")
    results = yaml.safe_load(results_file.read_text())
    check_eval_results(results)
    assert results[1]["value"] == float(entry["autoattack_acc"])
    sums = dict(line.split("  ")[::-1] for line in (bundle / "SHA256SUMS").read_text().split("\n")
                if line)  # fmt: skip
    from bench.training.checkpoint import file_sha256

    assert sums["weights.safetensors"] == file_sha256(bundle / "weights.safetensors")
    assert "robust accuracy" in (bundle / "autoattack.log").read_text()
    assert "Warning" in (bundle / "ISSUE.md").read_text()  # 64 of 10000 images, no leaderboard
    return entry


@pytest.mark.slow  # about 30 s: a smoke training, AutoAttack twice, a fresh robustbench process
def test_a_zoo_model_bundle_is_reevaluated_by_robustbench(tmp_path, robustbench_required):
    store, bundle = tmp_path / "s.sqlite", tmp_path / "bundle"
    args = ["submit", "darts", "--store", str(store), "--out", str(bundle), "--dataset", "mnist",
            "--run-autoattack", "--preset", "smoke", "--adversarial"]  # fmt: skip
    assert main(args) == 0
    entry = _check_bundle(bundle, "darts")
    assert "Genotype(" in (bundle / "model.py").read_text()
    x_adv = torch.load(bundle / "adversarial/darts_mnist_Linf.pt", weights_only=True)
    x, _ = eval_tensors("mnist", 64)
    assert x_adv.shape == x.shape and (x_adv - x).abs().max() <= 0.3 + 1e-6
    result = _reevaluate(bundle, tmp_path, 64, 0.3, 64)
    stored = _stored_bits(store, "darts")
    assert result["clean_bits"] == stored["clean"] and result["robust_bits"] == stored["robust"]
    assert f"{100 * result['robust']:.2f}" == entry["autoattack_acc"]


@pytest.mark.slow  # about 80 s: AutoAttack with survivors three times, a robustbench process
def test_a_user_model_bundle_is_reevaluated_by_robustbench(tmp_path, small_weights,
                                                           robustbench_required):  # fmt: skip
    store, bundle = tmp_path / "s.sqlite", tmp_path / "bundle"
    run = ["run", "--model-file", SMALL, "--weights", str(small_weights), "--dataset", "mnist",
           "--n", "32", "--eps", "0.05", "--attacks", "autoattack", "--training", "natural",
           "--store", str(store), "--no-progress"]  # fmt: skip
    assert main(run) == 0
    assert main(["submit", "user_models:small", "--store", str(store), "--out", str(bundle),
                 "--reported", "71.2"]) == 0  # fmt: skip
    entry = _check_bundle(bundle, "user_models_small")
    assert entry["reported"] == "71.2"
    assert (bundle / "model.py").read_text() == (FIXTURES / "user_models.py").read_text()
    result = _reevaluate(bundle, tmp_path, 32, 0.05, 128)
    stored = _stored_bits(store, "user_models:small")
    assert result["clean_bits"] == stored["clean"] and result["robust_bits"] == stored["robust"]
    assert 0 < sum(stored["robust"]) < sum(stored["clean"])  # AutoAttack had work to do


def test_run_autoattack_for_a_model_file(tmp_path, capsys, small_weights):
    store, out = tmp_path / "s.sqlite", tmp_path / "entry.json"
    base = ["submit", "user_models:small", "--store", str(store), "--out", str(out),
            "--dataset", "mnist", "--preset", "smoke", "--training", "natural"]  # fmt: skip
    assert main([*base, "--run-autoattack"]) == 2  # neither a zoo model nor in the store
    assert "pass --model-file" in capsys.readouterr().err
    assert main([*base, "--run-autoattack", "--model-file", SMALL, "--weights",
                 str(small_weights)]) == 0  # fmt: skip
    assert json.loads(out.read_text())["architecture"] == "user_models:small"
    out.unlink()
    assert main([*base, "--run-autoattack"]) == 0  # now the store names its factory
    assert out.is_file()


def test_what_a_maintainer_would_reject_is_refused(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    shutil.copyfile(FIXTURES / "report_store.sqlite", store)
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("")
    for extra, words in [
        (["--out", str(full)], "not empty"),
        (["--out", str(tmp_path / "b"), "--preset", "rehearsal"], "capped AutoAttack"),
        (["--out", str(tmp_path / "e.json"), "--adversarial"], "go with a bundle"),
        (["--out", str(tmp_path / "e.json"), "--reported", "high"], "--reported"),
    ]:
        assert main(["submit", "racl_published", "--store", str(store), *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], (extra, err)
    assert main(["submit", "racl_published", "--store", str(store), "--out",
                 str(tmp_path / "b")]) == 2  # fmt: skip
    assert "weights of checkpoint" in capsys.readouterr().err  # the fixture has no checkpoints


def test_a_forward_that_is_not_deterministic_is_refused():
    from bench.submission.rerun import check_deterministic
    from core.errors import UserError

    x = torch.rand(4, 1, 28, 28)
    steady = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    check_deterministic(steady, x)  # the control: nothing raised

    class Noisy(torch.nn.Module):
        def forward(self, x):  # noqa: ANN001, ANN202
            return steady(x) + torch.randn(len(x), 10)

    with pytest.raises(UserError, match="not deterministic"):
        check_deterministic(Noisy(), x)
