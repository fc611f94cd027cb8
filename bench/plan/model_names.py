"""``--models`` names checked with the fault named: a broken genotype file, a genotype by path.

A genotype file on ``RACL_GENOTYPES_PATH`` that does not validate is listed in the zoo as
unavailable; asking for it by name reports the file and its fault (not "nothing to run"). A
``.json`` path is read (its fault reported if it has one), then refused with how to use it: a
model is named by its zoo name, so the store's rows stay keyed by name.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import UserError
from genotypes.names import zoo_name
from racl_search.variants import TABLE5_PREFIX


def looks_like_path(name: str) -> bool:
    """A ``--models`` entry that names a file rather than a zoo entry."""
    return name.endswith(".json") or os.sep in name or (os.altsep or os.sep) in name


def check_model_name(name: str) -> None:
    """A usable zoo name, else ModelError / GenotypeError (one line, the file and the fault)."""
    from models import ModelError, get_model_info

    if looks_like_path(name):
        _refuse_path(name)
    info = get_model_info(zoo_name(name))
    if not info.available and info.family == "darts-cell":  # its genotype file is broken
        raise ModelError(info.reason or f"{info.name} is unavailable")


def _refuse_path(name: str) -> None:
    from genotypes import read_genotype_file

    path = Path(name).expanduser()
    record = read_genotype_file(path)  # a missing or malformed file: GenotypeError naming it
    folder = path.resolve().parent
    raise UserError(
        f"--models takes zoo names, not files: to use {path}, add its folder to "
        f"RACL_GENOTYPES_PATH (export RACL_GENOTYPES_PATH={folder}) and pass --models "
        f"{record.path.stem}"
    )


def check_plan_models(models: list[str] | None) -> None:
    """Unknown model names -> ModelError (one line, exit 2) before anything runs."""
    if not models:
        return
    for name in models:
        if zoo_name(name).startswith(TABLE5_PREFIX):
            continue
        check_model_name(name)
    if len(set(models)) != len(models):
        raise UserError(f"a model is listed twice in --models {','.join(models)}")
