"""Checkpoints: safetensors round trip, content-hash verification, no pickle, clear errors."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from torch import nn

from bench.training import checkpoint as ckpt
from core.errors import UserError
from models import create_model

META = {"model": "resnet18", "dataset": "mnist", "model_overrides": {"width": 4}}


def small_model() -> nn.Module:
    torch.manual_seed(0)
    model = create_model("resnet18", dataset="mnist", width=4)
    with torch.no_grad():  # non-trivial BN buffers, so buffers are checked too
        model(torch.rand(4, 1, 28, 28))
    return model.eval()


def test_round_trip_same_logits_and_sidecar(tmp_path):
    model = small_model()
    info = ckpt.save_checkpoint(model, tmp_path / "m1", {**META, "metrics": {"acc": 1.0}})
    assert info.weights.name == "m1.safetensors" and info.sidecar.name == "m1.json"
    assert info.content_hash == ckpt.file_sha256(info.weights)
    loaded, meta = ckpt.load_checkpoint(info.weights)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=0)
    assert meta["content_hash"] == info.content_hash and meta["format_version"] == 1
    assert meta["metrics"] == {"acc": 1.0} and meta["model_overrides"] == {"width": 4}
    assert not loaded.training
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_no_pickle_is_used(tmp_path, monkeypatch):
    model = small_model()

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle/torch.load must not be used")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(torch, "save", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    info = ckpt.save_checkpoint(model, tmp_path / "m", META)
    ckpt.load_checkpoint(tmp_path / "m")
    assert info.weights.read_bytes()[8:9] == b"{"  # safetensors: 8-byte length, JSON header


def test_hash_mismatch_rejected(tmp_path):
    info = ckpt.save_checkpoint(small_model(), tmp_path / "m", META)
    raw = bytearray(info.weights.read_bytes())
    raw[-1] ^= 0xFF
    info.weights.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="content hash mismatch"):
        ckpt.load_checkpoint(info.sidecar)


def test_truncated_file_with_matching_hash_rejected_in_one_line(tmp_path):
    info = ckpt.save_checkpoint(small_model(), tmp_path / "m", META)
    info.weights.write_bytes(info.weights.read_bytes()[:100])
    meta = json.loads(info.sidecar.read_text())
    meta["content_hash"] = ckpt.file_sha256(info.weights)
    info.sidecar.write_text(json.dumps(meta))
    with pytest.raises(UserError) as err:
        ckpt.load_checkpoint(tmp_path / "m")
    assert "corrupt checkpoint" in str(err.value) and "\n" not in str(err.value)


def test_garbage_sidecar_and_unknown_model(tmp_path):
    info = ckpt.save_checkpoint(small_model(), tmp_path / "m", META)
    meta = json.loads(info.sidecar.read_text())
    info.sidecar.write_text("not json {")
    with pytest.raises(UserError, match="not valid JSON"):
        ckpt.load_checkpoint(tmp_path / "m")
    info.sidecar.write_text(json.dumps({**meta, "model": "no_such_net"}))
    with pytest.raises(UserError, match="cannot rebuild") as err:
        ckpt.load_checkpoint(tmp_path / "m")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="no checkpoint"):
        ckpt.load_checkpoint(tmp_path / "absent")


def test_wrong_architecture_rejected(tmp_path):
    info = ckpt.save_checkpoint(small_model(), tmp_path / "m", META)
    meta = json.loads(info.sidecar.read_text())
    info.sidecar.write_text(json.dumps({**meta, "model_overrides": {"width": 8}}))
    with pytest.raises(UserError, match="does not fit"):
        ckpt.load_checkpoint(tmp_path / "m")


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 4, bias=False)
        self.head = nn.Linear(4, 4, bias=False)
        self.head.weight = self.embed.weight  # shared tensor
        self.conv = nn.Conv2d(2, 2, 3).to(memory_format=torch.channels_last)

    def forward(self, x):
        return self.head(self.embed(x))


def test_shared_and_non_contiguous_tensors(tmp_path, monkeypatch):
    model = Tied()
    monkeypatch.setattr(ckpt, "build_model", lambda name, dataset, overrides: Tied())
    info = ckpt.save_checkpoint(model, tmp_path / "tied", {"model": "tied", "dataset": "mnist"})
    loaded, meta = ckpt.load_checkpoint(info.weights)
    assert meta["aliases"] == {"head.weight": "embed.weight"}
    assert torch.equal(loaded.head.weight, model.embed.weight)
    assert torch.equal(loaded.conv.weight, model.conv.weight)
