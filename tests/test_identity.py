"""Content-keyed identity: a checkpoint (and with it every cell) is keyed by what its genotype
holds and by a factory's source, never by a name alone (issue 16; docs/decisions/store.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import genotypes
from bench.cli import main
from bench.training.config import TrainConfig, config_hash
from bench.training.identity import canonical_digest, genotype_digest
from bench.training.user_model import prepare_user_model

PACKAGE = Path(genotypes.__file__).resolve().parent
USER_MODELS = Path(__file__).parent / "fixtures" / "user_models.py"
RUN = ["run", "--preset", "smoke", "--models", "mygeno", "--attacks", "fgsm", "--training",
       "natural", "--dataset", "mnist", "--n", "8", "--threads", "1", "--no-progress"]  # fmt: skip


@pytest.fixture
def geno_path(tmp_path, monkeypatch) -> Path:
    """``mygeno``: a copy of the DARTS genotype in a folder on RACL_GENOTYPES_PATH."""
    folder = tmp_path / "genotypes"
    folder.mkdir()
    data = json.loads((PACKAGE / "darts.json").read_text())
    data["name"] = "mygeno"
    path = folder / "mygeno.json"
    path.write_text(json.dumps(data, indent=2))
    monkeypatch.setenv(genotypes.ENV_VAR, str(folder))
    return path


def _edit(path: Path, change) -> None:  # noqa: ANN001
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _one_op(data: dict) -> None:
    data["normal"][0][0] = "max_pool_3x3" if data["normal"][0][0] != "max_pool_3x3" else "none"


def test_the_digest_follows_the_parsed_genotype_not_the_bytes(geno_path):
    first = genotype_digest("mygeno")
    assert first == canonical_digest(genotypes.load(PACKAGE / "darts.json"))  # name aside
    reordered = dict(reversed(list(json.loads(geno_path.read_text()).items())))
    reordered["source"], reordered["metadata"] = "elsewhere", {"note": 1}
    geno_path.write_text(json.dumps(reordered, indent=7))
    assert genotype_digest("mygeno") == first  # reformatted, same network
    _edit(geno_path, _one_op)
    assert genotype_digest("mygeno") != first
    assert genotype_digest("resnet18") is None  # no genotype: its hashes stay as they were


def test_the_checkpoint_hash_follows_the_genotype_and_given_inputs(geno_path):
    cfg = TrainConfig.paper("natural", "mnist")
    before = config_hash("mygeno", {}, "mnist", cfg)
    assert config_hash("mygeno", {}, "mnist", cfg) == before
    assert config_hash("mygeno", {}, "mnist", cfg, {"source": "x"}) != before
    _edit(geno_path, _one_op)
    assert config_hash("mygeno", {}, "mnist", cfg) != before
    plain = config_hash("resnet18", {}, "mnist", cfg)
    assert config_hash("resnet18", {}, "mnist", cfg, {}) == plain


def test_editing_a_genotype_changes_what_the_dry_run_finds_cached(geno_path, tmp_path, capsys):
    store = str(tmp_path / "r.db")
    assert main([*RUN, "--store", store]) == 0
    assert "(train" in capsys.readouterr().err

    def dry() -> dict:
        assert main([*RUN, "--store", store, "--dry-run", "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    cached = dry()
    assert cached["cached"] == cached["cells"] > 0 and cached["to_compute"] == 0
    geno_path.write_text(json.dumps(json.loads(geno_path.read_text()), indent=1))
    assert dry()["cached"] == cached["cells"]  # reformatting invalidates nothing
    _edit(geno_path, _one_op)
    changed = dry()
    assert changed["cached"] == 0 and changed["to_compute"] == cached["cells"]
    assert main([*RUN, "--store", store]) == 0
    trained = [line for line in capsys.readouterr().err.splitlines() if "checkpoint" in line]
    assert len(trained) == 1 and "(train" in trained[0]  # the old weights are not loaded
    checkpoints = sorted((tmp_path / "checkpoints").glob("*.json"))
    assert len(checkpoints) == 2  # one per genotype content


def test_a_factorys_source_is_part_of_its_identity(tmp_path):
    source = tmp_path / "factory.py"
    source.write_text(USER_MODELS.read_text())
    first, _ = prepare_user_model(f"{source}:small", is_file=True, weights=None, dataset="mnist")
    again, _ = prepare_user_model(f"{source}:small", is_file=True, weights=None, dataset="mnist")
    assert again.identity == first.identity
    source.write_text(USER_MODELS.read_text() + "\n# an edit that changes no weight\n")
    edited, _ = prepare_user_model(f"{source}:small", is_file=True, weights=None, dataset="mnist")
    assert edited.weights_sha256 == first.weights_sha256 and edited.identity != first.identity


def test_bench_train_keys_a_factorys_checkpoint_by_its_source(tmp_path):
    import argparse

    from bench.commands.train import _factory_inputs

    source = tmp_path / "factory.py"
    source.write_text(USER_MODELS.read_text())
    args = argparse.Namespace(model_file=f"{source}:small", model=None)
    first = _factory_inputs(args)
    assert first is not None and first == _factory_inputs(args)
    source.write_text(USER_MODELS.read_text() + "\n# edited\n")
    assert _factory_inputs(args) != first
    assert _factory_inputs(argparse.Namespace(model_file=None, model=None)) is None  # zoo model
