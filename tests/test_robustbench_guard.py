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
