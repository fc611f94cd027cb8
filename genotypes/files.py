"""Genotype JSON files: find by name or path, load with validation, save atomically, list.

Search order for a name: the folders in ``RACL_GENOTYPES_PATH`` (``os.pathsep``-separated), then
this package's folder. A file ``<name>.json`` dropped into any of them is found by its name. File
format: see ``docs/ARCHITECTURE.md``. Every error names the file and the fault.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from core.jsonfile import read_json
from genotypes.errors import GenotypeError
from genotypes.schema import Genotype, RobNetArch

ENV_VAR = "RACL_GENOTYPES_PATH"
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_DARTS_KEYS = ("normal", "normal_concat", "reduce", "reduce_concat")
_ROBNET_KEYS = ("cells", "share", "init_channels", "layers")

Architecture = Genotype | RobNetArch


@dataclass(frozen=True)
class GenotypeFile:
    """A loaded genotype file: the architecture plus its name, provenance and metadata."""

    name: str
    arch: Architecture
    source: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "robnet" if isinstance(self.arch, RobNetArch) else "darts"


def genotype_dirs() -> list[Path]:
    """Folders searched for ``<name>.json``: ``RACL_GENOTYPES_PATH`` entries, then the package."""
    extra = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    return [*extra, Path(__file__).resolve().parent]


def list_genotypes() -> list[str]:
    """Names of every genotype file in :func:`genotype_dirs` (first folder wins), sorted."""
    names: set[str] = set()
    for folder in genotype_dirs():
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.json") if _NAME.match(p.stem))
    return sorted(names)


def find_genotype_file(name_or_path: str | os.PathLike[str]) -> Path:
    """Resolve a genotype name or a file path to an existing file, else raise GenotypeError."""
    text = os.fspath(name_or_path)
    if _looks_like_path(text):
        path = Path(text).expanduser()
        if not path.is_file():
            raise GenotypeError(f"{path}: no such genotype file")
        return path
    if not _NAME.match(text):
        raise GenotypeError(f"invalid genotype name {text!r} (letters, digits, _ . - only)")
    for folder in genotype_dirs():
        candidate = folder / f"{text}.json"
        if candidate.is_file():
            return candidate
    close = difflib.get_close_matches(text, list_genotypes(), n=3, cutoff=0.5)
    hint = f"; did you mean: {', '.join(close)}" if close else ""
    raise GenotypeError(f"unknown genotype {text!r}{hint}")


def _looks_like_path(text: str) -> bool:
    return text.endswith(".json") or "/" in text or os.sep in text


def read_genotype_file(name_or_path: str | os.PathLike[str]) -> GenotypeFile:
    """Load and validate one genotype file, keeping its name, source and metadata."""
    path = find_genotype_file(name_or_path)
    data = read_json(path, "", GenotypeError)
    try:
        return _from_dict(data, path)
    except GenotypeError as err:
        raise GenotypeError(f"{path}: {err}") from None


def _from_dict(data: object, path: Path) -> GenotypeFile:
    if not isinstance(data, dict):
        raise GenotypeError("expected a JSON object at the top level")
    kind = data.get("kind", "darts")
    if kind not in ("darts", "robnet"):
        raise GenotypeError(f"kind {kind!r} is not 'darts' or 'robnet'")
    keys = _DARTS_KEYS if kind == "darts" else _ROBNET_KEYS
    missing = [k for k in keys if k not in data]
    if missing:
        raise GenotypeError(f"missing key(s) {', '.join(missing)} for kind {kind!r}")
    arch_type = Genotype if kind == "darts" else RobNetArch
    arch = arch_type(**{k: data[k] for k in keys})
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise GenotypeError("metadata must be a JSON object")
    source = data.get("source", "")
    if not isinstance(source, str):
        raise GenotypeError("source must be a string")
    return GenotypeFile(str(data.get("name") or path.stem), arch, source, path, metadata)


def load(name_or_path: str | os.PathLike[str]) -> Architecture:
    """Load a genotype (``Genotype`` or ``RobNetArch``) by name or by file path."""
    return read_genotype_file(name_or_path).arch


def load_genotype(name_or_path: str | os.PathLike[str]) -> Genotype:
    """Load a DARTS-format cell genotype; a RobNet file raises GenotypeError."""
    record = read_genotype_file(name_or_path)
    if not isinstance(record.arch, Genotype):
        raise GenotypeError(f"{record.path}: a RobNet architecture, not a cell genotype")
    return record.arch


def to_dict(
    arch: Architecture, *, name: str, source: str = "", metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON object of a genotype file."""
    if isinstance(arch, Genotype):
        body: dict[str, Any] = {
            "kind": "darts",
            "normal": [list(p) for p in arch.normal],
            "normal_concat": list(arch.normal_concat),
            "reduce": [list(p) for p in arch.reduce],
            "reduce_concat": list(arch.reduce_concat),
        }
    elif isinstance(arch, RobNetArch):
        body = {
            "kind": "robnet",
            "cells": [list(c) for c in arch.cells],
            "share": arch.share,
            "init_channels": arch.init_channels,
            "layers": arch.layers,
        }
    else:
        raise GenotypeError(f"cannot save a {type(arch).__name__}; expected Genotype/RobNetArch")
    return {"name": name, **body, "source": source, "metadata": dict(metadata or {})}


def format_json(data: dict[str, Any]) -> str:
    """Readable JSON: one top-level key per line, one pair (or RobNet cell) per line."""
    lines = []
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            inner = ",\n".join(f"    {json.dumps(v)}" for v in value)
            text = f"[\n{inner}\n  ]"
        else:
            text = json.dumps(value, sort_keys=isinstance(value, dict))
        lines.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}"


def save_genotype(
    genotype: Architecture,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    source: str = "",
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a genotype file atomically (temporary file + ``os.replace``); return its path.

    ``path`` is a ``.json`` file or a folder (then the file is ``<folder>/<name>.json``).
    """
    target = Path(path)
    if target.is_dir() or target.suffix != ".json":
        if not name:
            raise GenotypeError(f"{target}: give a .json file path or a name for the file")
        target = target / f"{name}.json"
    name = name or target.stem
    if not _NAME.match(name):
        raise GenotypeError(f"invalid genotype name {name!r} (letters, digits, _ . - only)")
    text = format_json(to_dict(genotype, name=name, source=source, metadata=metadata))
    target.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(target, text + "\n")
