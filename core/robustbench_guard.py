"""The one place that imports robustbench (the optional ``leaderboard`` extra).

robustbench 1.1.1 does not import as installed from PyPI:

- it imports ``autoattack`` (``from autoattack import AutoAttack`` and
  ``from autoattack.state import EvaluationState`` in ``robustbench/eval.py``), the module name of
  the original AutoAttack code, which was never published on PyPI. ``pyautoattack==0.2.0`` is
  that code packaged as ``pyautoattack``; when no ``autoattack`` module is importable, the guard
  registers ``pyautoattack`` (and ``pyautoattack.state``) under the names robustbench asks for.
  That makes robustbench importable for what racl-bench uses of it, its leaderboard entry type
  (``robustbench.utils.ModelInfo``) and enums; robustbench's own ``benchmark()`` calls the
  original keyword API (``bs=...``), which pyautoattack renamed, and is not supported this way;
- it imports ``pkg_resources`` (``robustbench/loaders.py``), gone from setuptools 81: the
  extra pins ``setuptools<81`` (``pyproject.toml``);
- its data module imports torchvision, which goes through :mod:`core.torchvision_guard`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from types import ModuleType


def alias_autoattack() -> bool:
    """Make ``import autoattack`` give pyautoattack unless a real ``autoattack`` exists.

    Returns whether the alias is in place (False: a real module, or no pyautoattack)."""
    if "autoattack" in sys.modules:
        return sys.modules["autoattack"].__name__ == "pyautoattack"
    if importlib.util.find_spec("autoattack") is not None:
        return False
    try:
        package = importlib.import_module("pyautoattack")
        state = importlib.import_module("pyautoattack.state")
    except ImportError:
        return False
    sys.modules["autoattack"] = package
    sys.modules["autoattack.state"] = state
    return True


def import_robustbench() -> ModuleType:
    """Import robustbench after the fixes above; ImportError when it is not installed or does
    not import (a half-imported package is removed from ``sys.modules`` again)."""
    if importlib.util.find_spec("robustbench") is None:
        raise ImportError("robustbench is not installed (pip install -e '.[leaderboard]')")
    from core.torchvision_guard import import_torchvision

    import_torchvision()
    alias_autoattack()
    try:
        with warnings.catch_warnings():  # robustbench/loaders.py: "pkg_resources is deprecated"
            warnings.filterwarnings(
                "ignore", message="pkg_resources is deprecated", category=UserWarning
            )
            return importlib.import_module("robustbench")
    except Exception as err:  # e.g. setuptools>=81 has no pkg_resources: a broken install
        for name in [m for m in sys.modules if m == "robustbench" or m.startswith("robustbench.")]:
            del sys.modules[name]  # so that a later attempt fails the same way, not half-imported
        raise ImportError(f"robustbench is installed but does not import: {err}") from err
