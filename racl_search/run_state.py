"""Resumable search state without pickle: one safetensors file of tensors + one JSON file.

Each finished epoch writes ``state-<epoch>.safetensors`` (model, architecture, optimizer moments,
RNG state) and then ``state.json`` naming it, both atomically (temporary file + ``os.replace``);
older tensor files are removed afterwards. A kill at any moment leaves the last finished epoch
loadable. Nested state (an optimizer's ``state_dict``) is split into tensors and a JSON skeleton
whose dict keys keep their types (``{"__dict__": [[key, value], ...]}``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from core.atomic import atomic_write, atomic_write_text
from core.errors import UserError, first_line
from core.jsonfile import read_json
from racl_search.errors import SearchError

STATE_JSON = "state.json"


def split_tensors(obj: Any, prefix: str, tensors: dict[str, Tensor]) -> Any:
    """Replace each tensor in a nested dict/list by a reference; collect it in ``tensors``."""
    if isinstance(obj, Tensor):
        key = prefix
        tensors[key] = obj.detach().cpu().clone().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {
            "__dict__": [[k, split_tensors(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]
        }
    if isinstance(obj, list | tuple):
        return [split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def join_tensors(obj: Any, tensors: dict[str, Tensor]) -> Any:
    """Inverse of :func:`split_tensors`."""
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {k: join_tensors(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [join_tensors(v, tensors) for v in obj]
    return obj


def save_run_state(run_dir: Path, epoch: int, state: dict[str, Any]) -> Path:
    """Write the state of finished ``epoch`` (nested dicts of tensors and JSON values)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    skeleton = split_tensors(state, "s", tensors)
    weights = run_dir / f"state-{epoch}.safetensors"
    atomic_write(weights, lambda tmp: save_file(tensors, str(tmp)))
    meta = {"epoch": epoch, "tensors": weights.name, "state": skeleton}
    atomic_write_text(run_dir / STATE_JSON, json.dumps(meta))
    for old in run_dir.glob("state-*.safetensors"):
        if old != weights:
            old.unlink(missing_ok=True)
    return weights


def load_run_state(run_dir: Path) -> tuple[int, dict[str, Any]] | None:
    """``(last finished epoch, state)`` or None when the folder holds no complete state."""
    meta_path = run_dir / STATE_JSON
    if not meta_path.is_file():
        return None
    meta = read_json_state(meta_path)
    try:
        weights, epoch, skeleton = run_dir / str(meta["tensors"]), int(meta["epoch"]), meta["state"]
    except (KeyError, TypeError, ValueError) as err:
        raise _corrupt(meta_path, f"missing or bad field {err}") from None
    if not weights.is_file():
        return None
    try:
        return epoch, join_tensors(skeleton, load_file(str(weights)))
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as err:
        raise _corrupt(weights, first_line(err)) from None


def read_json_state(path: Path) -> dict[str, Any]:
    """A run folder's JSON file as a dict; unreadable or not an object: SearchError naming it."""
    try:
        meta = read_json(path, "")
    except UserError as err:
        raise _corrupt(path, first_line(err).removeprefix(f"{path}: ")) from None
    if not isinstance(meta, dict):
        raise _corrupt(path, "not a JSON object")
    return meta


def _corrupt(path: Path, fault: str) -> SearchError:
    return SearchError(f"corrupt search state {path}: {fault}; rerun with --fresh to start over")


def saved_state(run_dir: Path, config_hash: str) -> tuple[int, dict[str, Any]] | None:
    """The state of ``run_dir``'s last finished epoch, if it belongs to ``config_hash``."""
    saved = load_run_state(run_dir)
    if saved is not None and run_dir_hash(run_dir) != config_hash:
        raise SearchError(
            f"{run_dir} holds a search with another config; use --fresh or another --name"
        )
    return saved


def run_dir_hash(run_dir: Path) -> str | None:
    """The config hash of the search whose state ``run_dir`` holds (None if none)."""
    meta_path = Path(run_dir) / "config.json"
    if not meta_path.is_file():
        return None
    return read_json_state(meta_path).get("config_hash")


def check_run_dir(run_dir: Path) -> None:
    """Read a run folder's JSON files (cheap, before a search starts): SearchError if corrupt."""
    if not (Path(run_dir) / STATE_JSON).is_file():
        return  # no finished epoch: config.json (cut short by a full disk?) is rewritten
    for name in ("config.json", STATE_JSON):
        path = Path(run_dir) / name
        if path.is_file():
            read_json_state(path)


def rng_state() -> dict[str, Tensor]:
    """The CPU (and CUDA, when present) generator states."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Tensor]) -> None:
    torch.set_rng_state(state["cpu"].to(torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].to(torch.uint8))


def clear_run_dir(run_dir: Path) -> None:
    """Remove a run folder's state, log and config (a fresh search)."""
    for pattern in ("state*.safetensors", "state.json", "log.jsonl", "config.json"):
        for path in run_dir.glob(pattern):
            path.unlink()


def log_row(run_dir: Path, row: dict[str, Any], log: Callable[[str], None]) -> None:
    """Append an epoch's row to ``log.jsonl`` and say it in one line."""
    path = run_dir / "log.jsonl"
    if path.is_file():  # a line cut short by a kill or a full disk is dropped, not glued to
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            path.write_bytes(data[: data.rfind(b"\n") + 1])
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    parts = [f"epoch {row['epoch']}"]
    for key, fmt in (
        ("train_loss", ".3f"), ("train_acc", ".1f"), ("arch_ce", ".3f"), ("val_acc", ".1f"),
        ("c", "+.4f"), ("theta", ".5f"), ("log_bound_median", ".2f"), ("log_bound_q_eta", ".2f"),
        ("elapsed_s", ".0f"),
    ):  # fmt: skip
        if key in row and not (isinstance(row[key], float) and math.isnan(row[key])):
            parts.append(f"{key}={row[key]:{fmt}}")
    log("  ".join(parts))


def check_finite(arch: torch.nn.Module, row: dict[str, Any], run_dir: Path) -> None:
    """A diverged search (a NaN or infinite loss or architecture parameter) stops here, before
    its state, log line or genotype is written: nothing of it joins the zoo."""
    bad = [k for k in ("train_loss", "val_loss") if not math.isfinite(float(row.get(k, 0.0)))]
    bad += [n for n, p in arch.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise SearchError(
            f"the search diverged at epoch {row['epoch']} (non-finite {', '.join(bad[:3])}); "
            f"no genotype written (state of the last finite epoch kept in {run_dir})"
        )
