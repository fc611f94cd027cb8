"""Content hashes of the inputs a checkpoint or a cell is made from, for their keys.

A zoo model built from a genotype (the package's ``genotypes/`` folder or ``RACL_GENOTYPES_PATH``)
is keyed by the sha256 of the parsed genotype's canonical JSON (``genotypes.to_dict`` without
name, source and metadata, keys sorted): reformatting a file keeps the key, changing an op
changes it. A user's model is keyed by its factory's source bytes and its weights
(``bench.training.user_model``). Why, and what an old store keeps: docs/decisions/store.md,
"Identity".
"""

from __future__ import annotations

import hashlib
import json


def genotype_name(model_name: str) -> str | None:
    """The genotype zoo model ``model_name`` is built from; None for a model without one (or
    a name the zoo does not know)."""
    from models import ModelError, get_model_info

    try:
        return get_model_info(model_name).genotype or None
    except ModelError:
        return None


def genotype_digest(model_name: str) -> str | None:
    """sha256 (hex) of the canonical genotype of zoo model ``model_name``; None for a model
    without one (or a Table 5 genotype not searched yet). A malformed file is a GenotypeError."""
    import genotypes

    name = genotype_name(model_name)
    return None if name is None else canonical_digest(genotypes.load(name))


def canonical_digest(arch: object) -> str:
    """sha256 of an architecture's canonical JSON (only what builds the network)."""
    import genotypes

    body = genotypes.to_dict(arch, name="")  # type: ignore[arg-type]
    for field in ("name", "source", "metadata"):
        body.pop(field, None)
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def source_digest(path: str | None) -> str:
    """sha256 of a factory's source file (empty string when there is no file)."""
    if not path:
        return ""
    from bench.training.checkpoint import file_sha256

    return file_sha256(path)
