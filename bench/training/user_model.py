"""A user's model in the harness: its factory (:mod:`models.user`), its weights and its identity.

``bench run --model-file file.py:build --weights FILE`` (or ``--model package.module:build``):
the weights are a safetensors file (read with ``safetensors.torch.load_file``) or a state dict
read with ``torch.load(weights_only=True)``; without ``--weights`` the factory's own (seeded)
weights are used. The checkpoint identity in the store is the sha256 of the weights' bytes plus
the factory's name and the sha256 of its source file, so the same weights under the same
factory code are one checkpoint wherever the files lie, and an edited factory is another.
Details: docs/decisions/trust.md, "Your own model"; docs/decisions/store.md, "Identity".
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from bench.training.checkpoint import SIDECAR_SUFFIX, file_sha256
from bench.training.identity import source_digest
from core.errors import UserError, first_line
from core.jsonfile import read_json
from models.user import FactoryRef, build_user_model, check_user_model, parse_factory

# 2: the factory's source bytes are part of the identity (docs/decisions/store.md, "Identity")
IDENTITY_VERSION = 2


@dataclass(frozen=True)
class UserModel:
    """A factory with its weights: ``identity`` is the checkpoint hash the store uses."""

    factory: FactoryRef
    weights: Path | None
    weights_sha256: str
    identity: str

    @property
    def name(self) -> str:
        return self.factory.name


def prepare_user_model(
    text: str, *, is_file: bool, weights: str | Path | None, dataset: str
) -> tuple[UserModel, list[str]]:
    """Build the model once, load its weights and check it on ``dataset``: (model, notes).

    Anything that does not fit (no such file, an output of the wrong shape, a tuple output,
    weights of another architecture) is a one-line :class:`UserError`."""
    ref = parse_factory(text, is_file=is_file)
    model = build_user_model(ref, dataset)
    path = None if weights is None else Path(weights)
    digest = load_weights(model, path) if path is not None else state_digest(model)
    notes = check_user_model(model, dataset, ref.name)
    source = source_digest(source_file(ref))
    key = f"user-model-v{IDENTITY_VERSION}|{ref.name}|{digest}|{source}"
    identity = hashlib.sha256(key.encode()).hexdigest()[:16]
    return UserModel(ref, path, digest, identity), notes


def source_file(ref: FactoryRef) -> str | None:
    """The factory's source file: the given file, or the importable module's origin."""
    if ref.path is not None:
        return str(ref.path)
    import importlib.util

    try:
        spec = importlib.util.find_spec(str(ref.module))
    except (ImportError, ValueError):
        return None
    origin = None if spec is None else spec.origin
    return origin if origin and Path(origin).is_file() else None


def load_user_model(user: UserModel, dataset: str, device: str | torch.device) -> nn.Module:
    """The model with its weights on ``device``, in eval mode (weights changed since -> error)."""
    model = build_user_model(user.factory, dataset)
    weights = user.weights
    digest = load_weights(model, weights) if weights is not None else state_digest(model)
    if digest != user.weights_sha256:
        raise UserError(f"the weights of {user.name} changed while the run was being planned")
    return model.to(device).eval()


def load_weights(model: nn.Module, path: Path) -> str:
    """Load ``path`` into ``model`` (strict); returns the file's sha256."""
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    state = _read_state(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise UserError(f"the weights {path} do not fit the model: {first_line(err)}") from None
    return file_sha256(path)


def _read_state(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise UserError(f"cannot read safetensors file {path}: {err}") from None
        return {**state, **_aliases(path, state)}
    try:
        with warnings.catch_warnings():  # its pickle-protocol warning would be a second line
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle errors of all kinds: one line
        raise UserError(
            f"cannot read {path} as a state dict (weights_only=True): {first_line(err)}"
        ) from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return dict(state)


def _aliases(path: Path, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Tied entries a racl-bench checkpoint stores once (its sidecar's ``aliases``)."""
    sidecar = path.with_name(path.name[: -len(path.suffix)] + SIDECAR_SUFFIX)
    if not sidecar.is_file():
        return {}
    meta = read_json(sidecar, "weights sidecar")  # a broken sidecar: one line naming it
    aliases = meta.get("aliases") if isinstance(meta, dict) else None
    if not isinstance(aliases, dict):
        return {}
    return {alias: state[target] for alias, target in aliases.items() if target in state}


def state_digest(model: nn.Module) -> str:
    """sha256 of the model's state dict as safetensors bytes (the weights the factory made)."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    return hashlib.sha256(save(tensors)).hexdigest()
