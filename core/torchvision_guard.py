"""The one place that imports torchvision (see docs/ENVIRONMENT notes in README).

torchvision 0.28.0 is the release built for torch 2.13.0, but its only wheel is a CUDA build.
With the CPU torch its C extension cannot load, and a plain ``import torchvision`` fails with
``RuntimeError: operator torchvision::nms does not exist`` because the Python side registers
fake kernels for ops whose schemas were never defined.

The guard: try to load the extension; if that fails, define the schemas of the two ops that
torchvision's import path touches (``nms`` and ``qnms``) so the import succeeds. Datasets,
transforms and models then work; only the C ops (nms, image decoding) stay unavailable, and
racl-bench uses none of them. On a machine where the extension loads (a CUDA torch with the
matching torchvision) nothing is changed.

Every module of racl-bench that needs torchvision calls :func:`import_torchvision`.
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

_schema_lib = None  # keeps the torch.library.Library alive for the life of the process


def _extension_loads() -> bool:
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    folder = list(spec.submodule_search_locations)[0]
    candidates = [f for f in os.listdir(folder) if f.startswith("_C") and f.endswith(".so")]
    if not candidates:
        return False
    try:
        torch.ops.load_library(os.path.join(folder, candidates[0]))
    except (OSError, RuntimeError):
        return False
    return True


def _define_missing_schemas() -> None:
    global _schema_lib
    import torch

    if _schema_lib is not None:
        return
    lib = torch.library.Library("torchvision", "DEF")  # noqa: TOR901 - must outlive this call
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define(
        "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    )
    _schema_lib = lib


def import_torchvision() -> ModuleType:
    """Import and return torchvision, applying the CPU-torch guard when needed."""
    import sys

    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    if importlib.util.find_spec("torchvision") is None:
        raise ModuleNotFoundError(
            "torchvision is not installed; run scripts/setup.sh (it installs the pinned stack)"
        )
    if not _extension_loads():
        _define_missing_schemas()
    import torchvision

    return torchvision
