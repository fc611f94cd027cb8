"""core/robustbench_guard.py: pyautoattack answers ``import autoattack`` only when no real module
does, and a robustbench that does not import is an ImportError, never half-imported."""

from __future__ import annotations

import sys
import types

import pytest

import core.robustbench_guard as guard


def test_the_alias_serves_pyautoattack_under_robustbenchs_name(monkeypatch):
    monkeypatch.delitem(sys.modules, "autoattack", raising=False)
    monkeypatch.delitem(sys.modules, "autoattack.state", raising=False)
    monkeypatch.setattr(guard.importlib.util, "find_spec", lambda name: None)
    assert guard.alias_autoattack()
    import pyautoattack
    import pyautoattack.state

    assert sys.modules["autoattack"] is pyautoattack
    assert sys.modules["autoattack.state"] is pyautoattack.state
    assert guard.alias_autoattack()  # already in place: nothing changes


def test_a_real_autoattack_is_left_alone(monkeypatch):
    real = types.ModuleType("autoattack")
    monkeypatch.setitem(sys.modules, "autoattack", real)
    assert not guard.alias_autoattack()
    assert sys.modules["autoattack"] is real


@pytest.fixture
def robustbench_modules_kept():
    """The robustbench modules already imported, put back after the test removed them."""
    kept = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "robustbench"}
    yield
    sys.modules.update(kept)


def test_a_broken_robustbench_is_an_import_error(monkeypatch, robustbench_modules_kept):
    import core.torchvision_guard

    monkeypatch.setattr(guard.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(core.torchvision_guard, "import_torchvision", lambda: None)
    monkeypatch.setattr(guard, "alias_autoattack", lambda: True)
    sys.modules["robustbench.half"] = types.ModuleType("robustbench.half")

    def broken(name: str):  # noqa: ANN202
        raise AttributeError("corruptions_3d")

    monkeypatch.setattr(guard.importlib, "import_module", broken)
    with pytest.raises(ImportError, match="installed but does not import: corruptions_3d"):
        guard.import_robustbench()
    assert "robustbench.half" not in sys.modules  # removed, so a retry fails the same way


def test_the_original_autoattack_api_over_pyautoattack(tmp_path):
    """benchmark()'s calls: ``log_path`` in the constructor, ``bs`` and the images returned (or
    images and labels); the state's bool flags read as floats for their mean."""
    import torch

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 10)).eval()
    x, y = torch.rand(4, 1, 4, 4), torch.arange(4)
    log = tmp_path / "aa.log"
    attack = guard.OriginalAutoAttack(model, norm="Linf", eps=0.3, version="standard",
                                      device="cpu", log_path=str(log))  # fmt: skip
    x_adv = attack.run_standard_evaluation(x, y, bs=4, state_path=str(tmp_path / "s.json"))
    assert isinstance(x_adv, torch.Tensor) and x_adv.shape == x.shape
    assert (x_adv - x).abs().max() <= 0.3 + 1e-6
    assert "robust accuracy" in log.read_text()
    pair = attack.run_standard_evaluation(x, y, bs=4, return_labels=True)
    assert isinstance(pair, tuple) and len(pair) == 2
    flags = guard._FloatFlagsState.from_disk(str(tmp_path / "s.json")).robust_flags
    assert flags.dtype == torch.float32 and 0.0 <= flags.mean().item() <= 1.0
    from pyautoattack.state import EvaluationState

    raw = EvaluationState.from_disk(tmp_path / "s.json").robust_flags
    with pytest.raises(RuntimeError):  # what benchmark() met before: the mean of bools
        raw.mean()
