"""The one place that imports robustbench (the optional ``leaderboard`` extra).

robustbench 1.1.1 does not import as installed from PyPI:

- it imports ``autoattack`` (``from autoattack import AutoAttack`` and
  ``from autoattack.state import EvaluationState`` in ``robustbench/eval.py``), the module name of
  the original AutoAttack code, which was never published on PyPI. ``pyautoattack==0.2.0`` is
  that code packaged as ``pyautoattack``; when no ``autoattack`` module is importable, the guard
  registers ``pyautoattack`` (and ``pyautoattack.state``) under the names robustbench asks for.
  That makes robustbench importable for its leaderboard entry type
  (``robustbench.utils.ModelInfo``) and enums;
- it imports ``pkg_resources`` (``robustbench/loaders.py``), gone from setuptools 81: the
  extra pins ``setuptools<81`` (``pyproject.toml``);
- its data module imports torchvision, which goes through :mod:`core.torchvision_guard`.

robustbench's own ``robustbench.eval.benchmark()`` then still fails here, in this order: it
builds ``AutoAttack(..., log_path=...)``, which pyautoattack's constructor does not take; it
calls ``run_standard_evaluation(x, y, bs=...)``, renamed ``batch_size`` there; pyautoattack
returns ``(x_adv, y_adv)`` where benchmark() expects the images; with ``aa_state_path`` it
takes ``.mean()`` of the stored bool flags, which torch refuses; and it can only load CIFAR or
ImageNet (downloaded). :func:`leaderboard_patches` mends these for the duration of a call:
:class:`OriginalAutoAttack` speaks the original AutoAttack's API over pyautoattack (``log_path``
becomes a file handler on pyautoattack's ``auto-attack`` logger; ``seed`` None, which draws
the clock there, is pinned to 0 so that a re-evaluation repeats), the state's flags are read as
floats, and benchmark's data hook (``robustbench.eval.load_clean_dataset``) serves the images
the caller gives (real MNIST in the tests, since CIFAR cannot be downloaded here).

This module imports nothing of racl-bench but :mod:`core.torchvision_guard`, so a process that
has only these two files (no racl-bench) can run benchmark() on a standalone model file.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any


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


@contextlib.contextmanager
def autoattack_log(path: str | Path | None) -> Iterator[None]:
    """Within the block, pyautoattack's ``auto-attack`` logger writes its messages (DEBUG and
    up, as they are) to ``path`` (appended); nothing when ``path`` is None."""
    if path is None:
        yield
        return
    logger = logging.getLogger("auto-attack")
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(level)


class OriginalAutoAttack:
    """The original AutoAttack's constructor and ``run_standard_evaluation`` over pyautoattack
    (the API robustbench's benchmark() calls); ``last`` keeps the images of the last run."""

    last: dict[str, Any] = {}

    def __init__(self, model: Any, norm: str = "Linf", eps: float = 0.3, seed: int | None = 0,
                 version: str = "standard", device: Any = "cpu", log_path: str | None = None,
                 verbose: bool = True, attacks_to_run: list[str] | None = None,
                 **_: Any) -> None:  # fmt: skip
        from pyautoattack import AutoAttack

        attacks = list(attacks_to_run) if attacks_to_run and version == "custom" else None
        seed = 0 if seed is None else int(seed)
        self.runner = AutoAttack(model, norm=norm, eps=eps, version=version, device=device,
                                 seed=seed, attacks=attacks)  # fmt: skip
        self.runner.verbose = bool(verbose)
        self.log_path = log_path

    def run_standard_evaluation(self, x_orig: Any, y_orig: Any, bs: int = 250,
                                return_labels: bool = False,
                                state_path: str | Path | None = None) -> Any:  # fmt: skip
        """The original signature: the adversarial images (and labels with ``return_labels``)."""
        state = None if state_path is None else Path(state_path)
        with autoattack_log(self.log_path):
            x_adv, y_adv = self.runner.run_standard_evaluation(x_orig, y_orig, batch_size=int(bs),
                                                              state_path=state)  # fmt: skip
        OriginalAutoAttack.last.update(x_adv=x_adv, y_adv=y_adv)
        return (x_adv, y_adv) if return_labels else x_adv


class _FloatFlagsState:
    """``EvaluationState.from_disk`` with the robust flags as floats (benchmark() takes their
    mean)."""

    @staticmethod
    def from_disk(path: str | Path) -> SimpleNamespace:
        from pyautoattack.state import EvaluationState

        state = EvaluationState.from_disk(Path(path))
        flags = None if state.robust_flags is None else state.robust_flags.float()
        return SimpleNamespace(robust_flags=flags)


@contextlib.contextmanager
def leaderboard_patches(x: Any, y: Any) -> Iterator[dict[str, Any]]:
    """Within the block, ``robustbench.eval.benchmark()`` runs here on the images ``x`` and
    labels ``y`` (its first ``n_examples``); yields a dict that holds the last run's
    ``x_adv``. Everything patched is put back on exit."""
    import_robustbench()
    evaluation = importlib.import_module("robustbench.eval")

    def serve(dataset: Any, n_examples: int | None, data_dir: str, prepr: Any) -> tuple:
        n = len(x) if n_examples is None else min(int(n_examples), len(x))
        return x[:n], y[:n]

    patched = {"AutoAttack": OriginalAutoAttack, "EvaluationState": _FloatFlagsState,
               "load_clean_dataset": serve}  # fmt: skip
    saved = {name: getattr(evaluation, name) for name in patched}
    OriginalAutoAttack.last.clear()
    try:
        for name, value in patched.items():
            setattr(evaluation, name, value)
        yield OriginalAutoAttack.last
    finally:
        for name, value in saved.items():
            setattr(evaluation, name, value)
