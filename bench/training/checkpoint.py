"""Checkpoints without pickle: safetensors weights plus a JSON sidecar, with a content hash.

``<stem>.safetensors`` holds the state dict (contiguous tensors; entries that alias another
entry's storage are stored once and listed under ``aliases`` in the sidecar). ``<stem>.json``
holds how to rebuild the model (``model``, ``model_overrides``, ``dataset``), the genotype, the
training config, metrics, ``content_hash`` (sha256 of the safetensors file) and
``format_version``. Both files are written atomically (temporary file + ``os.replace``), the
weights first, so a sidecar only exists for complete weights. Loading verifies the hash and uses
``safetensors.torch.load_file`` (never ``torch.load``), then a strict ``load_state_dict``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from core.atomic import atomic_write, atomic_write_text
from core.errors import UserError, first_line
from core.jsonfile import read_json

FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class CheckpointInfo:
    """Where a checkpoint was written and its identity."""

    weights: Path
    sidecar: Path
    content_hash: str

    @property
    def stem(self) -> Path:
        return _stem(self.weights)


def save_checkpoint(model: nn.Module, path_stem: str | Path, meta: dict) -> CheckpointInfo:
    """Write ``<stem>.safetensors`` and ``<stem>.json`` (``meta`` needs ``model``, ``dataset``)."""
    from safetensors.torch import save_file

    missing = [k for k in ("model", "dataset") if k not in meta]
    if missing:
        raise ValueError(f"checkpoint meta lacks {', '.join(missing)}")
    stem = _stem(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    tensors, aliases = _storable_state(model.state_dict())
    weights = _with(stem, WEIGHTS_SUFFIX)
    atomic_write(weights, lambda tmp: save_file(tensors, str(tmp)))
    digest = file_sha256(weights)
    sidecar_meta = {
        "model_overrides": {},
        "genotype": None,
        "training": None,
        "metrics": {},
        **meta,
        "aliases": aliases,
        "content_hash": digest,
        "format_version": FORMAT_VERSION,
    }
    text = json.dumps(sidecar_meta, indent=2, sort_keys=True, default=str)
    sidecar = _with(stem, SIDECAR_SUFFIX)
    atomic_write_text(sidecar, text + "\n")
    return CheckpointInfo(weights, sidecar, digest)


def read_meta(path: str | Path) -> dict:
    """The sidecar of a checkpoint (given its stem, weights or sidecar path)."""
    sidecar = _with(_stem(path), SIDECAR_SUFFIX)
    if not sidecar.exists():
        raise UserError(f"no checkpoint at {sidecar}")
    meta = read_json(sidecar, "corrupt checkpoint sidecar")
    if not isinstance(meta, dict) or "model" not in meta or "content_hash" not in meta:
        raise UserError(f"corrupt checkpoint sidecar {sidecar} (missing model/content_hash)")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise UserError(f"checkpoint {sidecar} has a newer format; upgrade racl-bench")
    return meta


def load_checkpoint(
    path: str | Path, *, device: str | torch.device = "cpu", model: nn.Module | None = None
) -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint (or take ``model``, e.g. a user's factory's) and load
    its verified weights (model in eval mode)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta = read_meta(path)
    weights = _with(_stem(path), WEIGHTS_SUFFIX)
    if not weights.is_file():
        raise UserError(f"checkpoint weights missing: {weights}")
    if file_sha256(weights) != meta["content_hash"]:
        raise UserError(f"corrupt checkpoint {weights}: content hash mismatch")
    model = _rebuild(meta, weights) if model is None else model
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"corrupt checkpoint {weights}: {first_line(err)}") from None
    for alias, target in meta.get("aliases", {}).items():
        state[alias] = state[target]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        message = f"checkpoint {weights} does not fit its model: {first_line(err)}"
        raise UserError(message) from None
    return model.to(device).eval(), meta


def build_model(name: str, dataset: str, overrides: dict) -> nn.Module:
    """``models.create_model`` (a seam: tests may substitute a factory)."""
    from models import create_model

    return create_model(name, dataset=dataset, **overrides)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _rebuild(meta: dict, weights: Path) -> nn.Module:
    from genotypes import GenotypeError
    from models import ModelError

    try:
        return build_model(meta["model"], meta["dataset"], dict(meta.get("model_overrides") or {}))
    except (ModelError, GenotypeError) as err:  # the sidecar names a model we cannot build
        message = f"checkpoint {weights}: cannot rebuild its model: {first_line(err)}"
        raise UserError(message) from None
    except UserError:  # e.g. a dataset that is unavailable: already one line for the user
        raise
    except Exception as err:  # noqa: BLE001 - unknown model, bad override: one line for the user
        message = f"checkpoint {weights}: cannot rebuild its model: {first_line(err)}"
        raise UserError(message) from None


def _storable_state(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Contiguous, storage-disjoint tensors plus ``alias -> stored name`` for identical views."""
    tensors: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    storages: set[int] = set()
    for name, tensor in state.items():
        tensor = tensor.detach()
        ptr = tensor.untyped_storage().data_ptr() if tensor.numel() else None
        view = (ptr, tensor.storage_offset(), tuple(tensor.shape), tensor.stride(), tensor.dtype)
        if ptr is not None and view in seen:
            aliases[name] = seen[view]
            continue
        shared = ptr is not None and ptr in storages
        tensors[name] = tensor.clone() if shared else tensor.contiguous()
        if ptr is not None:
            seen[view] = name
            storages.add(ptr)
    return {name: _compact(t) for name, t in tensors.items()}, aliases


def _compact(tensor: Tensor) -> Tensor:
    """A tensor owning exactly its bytes (a view into a larger storage is copied)."""
    if tensor.numel() and tensor.untyped_storage().nbytes() != tensor.nbytes:
        return tensor.clone()
    return tensor


def _stem(path: str | Path) -> Path:
    path = Path(path)
    for suffix in (WEIGHTS_SUFFIX, SIDECAR_SUFFIX):
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def _with(stem: Path, suffix: str) -> Path:
    return stem.with_name(stem.name + suffix)
